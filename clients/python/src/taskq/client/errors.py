"""The one exception hierarchy of the taskq client.

Every failed call raises a `TaskqError`: a subclass per canonical gRPC code (`NotFound`,
`FailedPrecondition`, ...) and, below those, a subclass per stable `ErrorInfo.reason` that
callers commonly handle (`QueueNotFound`, `LeaseLost`, ...), so both of these work:

    except LeaseLost: ...          # exactly this reason
    except FailedPrecondition: ... # any precondition failure

`from_rpc_error` turns a `grpc.RpcError` (sync or asyncio) into one of these, reading the
`google.rpc.Status` the server sends in the trailers; `from_status` does the same for the
per-item statuses of batch calls. Both are pure, so any transport can share them.
"""

from __future__ import annotations

from typing import NamedTuple

import grpc
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

#: The ErrorInfo domain of errors produced by the taskq server.
DOMAIN = "taskq.dev"


class FieldViolation(NamedTuple):
    """One invalid request field, from a google.rpc.BadRequest detail."""

    field: str
    description: str


class TaskqError(Exception):
    """A call to the taskq server failed.

    Attributes:
        code: the canonical gRPC status code.
        reason: the stable UPPER_SNAKE `ErrorInfo.reason` (for example `QUEUE_NOT_FOUND`),
            or "" when the error carries none (transport failures, client-side deadlines).
        message: the server's human-readable message.
        metadata: the `ErrorInfo.metadata` (for example `{"queue": "queues/q"}`).
        field_violations: the invalid fields of an INVALID_ARGUMENT error.
        retry_delay: seconds the server asks the caller to wait before retrying, or None.
        status: the full google.rpc.Status, when the server sent one.
    """

    #: The code of errors of this class; subclasses per code override it.
    default_code: grpc.StatusCode = grpc.StatusCode.UNKNOWN

    def __init__(
        self,
        message: str,
        *,
        code: grpc.StatusCode | None = None,
        reason: str = "",
        metadata: dict[str, str] | None = None,
        field_violations: list[FieldViolation] | None = None,
        retry_delay: float | None = None,
        status: status_pb2.Status | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code if code is not None else self.default_code
        self.reason = reason
        self.message = message
        self.metadata = dict(metadata or {})
        self.field_violations = list(field_violations or [])
        self.retry_delay = retry_delay
        self.status = status

    def __str__(self) -> str:
        # The shape the CLI prints: "NOT_FOUND QUEUE_NOT_FOUND: queue queues/x does not exist".
        label = f"{self.code.name} {self.reason}" if self.reason else self.code.name
        return f"{label}: {self.message}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code.name}, reason={self.reason!r}, message={self.message!r})"


# One class per canonical code --------------------------------------------------------------


class InvalidArgument(TaskqError):
    """The request is malformed; `field_violations` says which fields and why."""

    default_code = grpc.StatusCode.INVALID_ARGUMENT


class NotFound(TaskqError):
    default_code = grpc.StatusCode.NOT_FOUND


class AlreadyExists(TaskqError):
    default_code = grpc.StatusCode.ALREADY_EXISTS


class FailedPrecondition(TaskqError):
    default_code = grpc.StatusCode.FAILED_PRECONDITION


class ResourceExhausted(TaskqError):
    default_code = grpc.StatusCode.RESOURCE_EXHAUSTED


class Unavailable(TaskqError):
    """The server cannot be reached or is starting or stopping; retrying later may work."""

    default_code = grpc.StatusCode.UNAVAILABLE


class DeadlineExceeded(TaskqError):
    default_code = grpc.StatusCode.DEADLINE_EXCEEDED


class Cancelled(TaskqError):
    default_code = grpc.StatusCode.CANCELLED


class Aborted(TaskqError):
    default_code = grpc.StatusCode.ABORTED


class Internal(TaskqError):
    """A bug in the server; the message names the exception type only."""

    default_code = grpc.StatusCode.INTERNAL


class Unimplemented(TaskqError):
    default_code = grpc.StatusCode.UNIMPLEMENTED


class PermissionDenied(TaskqError):
    default_code = grpc.StatusCode.PERMISSION_DENIED


class Unauthenticated(TaskqError):
    default_code = grpc.StatusCode.UNAUTHENTICATED


class UnknownError(TaskqError):
    """Any other code (UNKNOWN, OUT_OF_RANGE, DATA_LOSS): the generic fallback."""

    default_code = grpc.StatusCode.UNKNOWN


# One class per reason callers commonly handle -------------------------------------------------


class QueueNotFound(NotFound):
    """The queue does not exist (reason QUEUE_NOT_FOUND)."""


class TaskNotFound(NotFound):
    """The task does not exist (reason TASK_NOT_FOUND): finished, deleted, or never created."""


class QueueAlreadyExists(AlreadyExists):
    """A queue of that name exists (reason QUEUE_ALREADY_EXISTS)."""


class TaskAlreadyExists(AlreadyExists):
    """A task of that name exists (reason TASK_ALREADY_EXISTS)."""


class TaskTombstoned(AlreadyExists):
    """A task of that name finished within the queue's tombstone_ttl (reason TASK_TOMBSTONED)."""


class LeaseLost(FailedPrecondition):
    """The lease token no longer names the task's current lease (reason LEASE_LOST): it expired,
    was released, the task was leased again, or the task is gone."""


class QueuePaused(FailedPrecondition):
    """The queue is paused and hands out no tasks (reason QUEUE_PAUSED)."""


class WrongQueueType(FailedPrecondition):
    """The call is for the other queue type, e.g. LeaseTasks on a push queue (WRONG_QUEUE_TYPE)."""


class TaskLeased(FailedPrecondition):
    """The task is leased to a worker, so it cannot be re-run now (reason TASK_LEASED)."""


_CLASS_BY_CODE: dict[grpc.StatusCode, type[TaskqError]] = {
    cls.default_code: cls
    for cls in (
        InvalidArgument, NotFound, AlreadyExists, FailedPrecondition, ResourceExhausted, Unavailable,
        DeadlineExceeded, Cancelled, Aborted, Internal, Unimplemented, PermissionDenied, Unauthenticated,
    )
}

# A reason only selects its class when the code agrees, so a server that someday sends a known
# reason with another code still yields an error of the right code class.
_CLASS_BY_REASON: dict[str, type[TaskqError]] = {
    "QUEUE_NOT_FOUND": QueueNotFound,
    "TASK_NOT_FOUND": TaskNotFound,
    "QUEUE_ALREADY_EXISTS": QueueAlreadyExists,
    "TASK_ALREADY_EXISTS": TaskAlreadyExists,
    "TASK_TOMBSTONED": TaskTombstoned,
    "LEASE_LOST": LeaseLost,
    "QUEUE_PAUSED": QueuePaused,
    "WRONG_QUEUE_TYPE": WrongQueueType,
    "TASK_LEASED": TaskLeased,
}

_CODE_BY_NUMBER: dict[int, grpc.StatusCode] = {code.value[0]: code for code in grpc.StatusCode}


def error_class(code: grpc.StatusCode, reason: str = "") -> type[TaskqError]:
    """The most specific class for a code and reason."""
    by_code = _CLASS_BY_CODE.get(code, UnknownError)
    by_reason = _CLASS_BY_REASON.get(reason)
    if by_reason is not None and issubclass(by_reason, by_code):
        return by_reason
    return by_code


def from_status(status: status_pb2.Status) -> TaskqError:
    """The error a google.rpc.Status describes (for example one item of a batch result)."""
    code = _CODE_BY_NUMBER.get(status.code, grpc.StatusCode.UNKNOWN)
    return _build(code, status.message, status)


def from_rpc_error(error: grpc.RpcError) -> TaskqError:
    """The TaskqError for a failed call, from a sync `grpc.RpcError` or a `grpc.aio.AioRpcError`.

    Uses the google.rpc.Status in the trailers when there is one; otherwise (transport
    failures, client-side deadlines, foreign servers) only the code and details.
    """
    code_of = getattr(error, "code", None)
    code = code_of() if callable(code_of) else grpc.StatusCode.UNKNOWN
    details_of = getattr(error, "details", None)
    message = (details_of() if callable(details_of) else None) or str(error) or code.name
    status = None
    if callable(getattr(error, "trailing_metadata", None)):
        try:
            status = rpc_status.from_call(error)
        except ValueError:
            # The trailer contradicts the call's code or message (a proxy rewrote one of
            # them): trust what the call itself says and ignore the details.
            status = None
    if status is None:
        return error_class(code)(message, code=code)
    return _build(code, message, status)


def _build(code: grpc.StatusCode, message: str, status: status_pb2.Status) -> TaskqError:
    reason = ""
    domain = ""
    metadata: dict[str, str] = {}
    violations: list[FieldViolation] = []
    retry_delay = None
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            reason = info.reason
            domain = info.domain
            metadata = dict(info.metadata)
        elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad_request = error_details_pb2.BadRequest()
            detail.Unpack(bad_request)
            violations.extend(
                FieldViolation(violation.field, violation.description) for violation in bad_request.field_violations
            )
        elif detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            retry_info = error_details_pb2.RetryInfo()
            detail.Unpack(retry_info)
            retry_delay = retry_info.retry_delay.ToNanoseconds() / 1e9
    # Reasons are only meaningful within their domain: another service's reason of the same
    # spelling must not turn into, say, a LeaseLost.
    cls = error_class(code, reason if domain == DOMAIN else "")
    return cls(
        message,
        code=code,
        reason=reason,
        metadata=metadata,
        field_violations=violations,
        retry_delay=retry_delay,
        status=status,
    )


__all__ = [
    "DOMAIN", "FieldViolation", "TaskqError",
    "InvalidArgument", "NotFound", "AlreadyExists", "FailedPrecondition", "ResourceExhausted", "Unavailable",
    "DeadlineExceeded", "Cancelled", "Aborted", "Internal", "Unimplemented", "PermissionDenied",
    "Unauthenticated", "UnknownError",
    "QueueNotFound", "TaskNotFound", "QueueAlreadyExists", "TaskAlreadyExists", "TaskTombstoned", "LeaseLost",
    "QueuePaused", "WrongQueueType", "TaskLeased",
    "error_class", "from_status", "from_rpc_error",
]
