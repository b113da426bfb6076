"""The one mapping from taskq errors to google.rpc.Status, and the servicer guard using it.

Every error carries an ErrorInfo (reason, domain taskq.dev, metadata) and, where one fits, a
BadRequest, PreconditionFailure, ResourceInfo or RetryInfo. An exception that is not a
TaskqError is a bug: it is logged with its traceback and answered INTERNAL, so the server
keeps serving; the bad-input catalogue in tests/api checks that none occurs.
"""

from __future__ import annotations

import functools
import logging

import grpc
from google.protobuf import duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from taskq.api.services import MalformedRequest
from taskq.core.errors import DOMAIN, InvalidArgument, StorageUnavailable, TaskqError
from taskq.store.base import StoreError

log = logging.getLogger(__name__)


def to_status(error: TaskqError) -> status_pb2.Status:
    status = status_pb2.Status(code=error.code.value, message=error.message)
    status.details.add().Pack(
        error_details_pb2.ErrorInfo(reason=error.reason, domain=DOMAIN, metadata=error.metadata)
    )
    if error.violations:
        status.details.add().Pack(
            error_details_pb2.BadRequest(
                field_violations=[
                    error_details_pb2.BadRequest.FieldViolation(
                        field=violation.field, description=violation.description, reason=violation.reason
                    )
                    for violation in error.violations
                ]
            )
        )
    if error.preconditions:
        status.details.add().Pack(
            error_details_pb2.PreconditionFailure(
                violations=[
                    error_details_pb2.PreconditionFailure.Violation(
                        type=violation.type, subject=violation.subject, description=violation.description
                    )
                    for violation in error.preconditions
                ]
            )
        )
    if error.resource is not None:
        resource_type, resource_name = error.resource
        status.details.add().Pack(
            error_details_pb2.ResourceInfo(resource_type=resource_type, resource_name=resource_name)
        )
    if error.retry_delay_seconds is not None:
        seconds = int(error.retry_delay_seconds)
        nanos = int((error.retry_delay_seconds - seconds) * 1e9)
        status.details.add().Pack(
            error_details_pb2.RetryInfo(retry_delay=duration_pb2.Duration(seconds=seconds, nanos=nanos))
        )
    return status


def malformed(request: MalformedRequest) -> InvalidArgument:
    return InvalidArgument(
        f"the request is not a valid protobuf message of this method: {request.reason}", reason="MALFORMED_REQUEST"
    )


def internal_status(error: BaseException) -> status_pb2.Status:
    status = status_pb2.Status(code=code_pb2.INTERNAL, message=f"internal error: {type(error).__name__}")
    status.details.add().Pack(error_details_pb2.ErrorInfo(reason="INTERNAL", domain=DOMAIN))
    return status


def guarded(method):
    """Wraps a unary servicer method: a TaskqError becomes its status; a bug becomes INTERNAL."""

    @functools.wraps(method)
    async def wrapper(self, request, context: grpc.aio.ServicerContext):
        try:
            if isinstance(request, MalformedRequest):
                raise malformed(request)
            return await method(self, request, context)
        except TaskqError as error:
            await context.abort_with_status(rpc_status.to_status(to_status(error)))
        except grpc.aio.AbortError:
            raise
        except StoreError as error:
            # Reads go through the database, which reports storage failures as TaskqErrors;
            # this is the net under it: a failing disk is UNAVAILABLE, never INTERNAL.
            log.error("%s: storage failure: %s", method.__name__, error)
            unavailable = StorageUnavailable(f"the storage failed: {error}", retry_delay_seconds=1.0)
            await context.abort_with_status(rpc_status.to_status(to_status(unavailable)))
        except Exception as error:
            log.exception("%s failed", method.__name__)
            await context.abort_with_status(rpc_status.to_status(internal_status(error)))

    return wrapper
