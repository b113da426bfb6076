"""App Engine's API bridge protocol (`POST /rpc_http`), as the SDK's DefaultApiStub speaks it.

The body is a remote_api `Request` (service, method, the serialized service request, and the
API ticket as `request_id`); the answer is always HTTP 200 with a remote_api `Response`
holding the serialized service response, or an `application_error` (the service's own error
code, which the SDK raises as its exception: UnknownQueueError, TaskAlreadyExistsError, ...),
or an `rpc_error` (CALL_NOT_FOUND for a service or method not served here, PARSE_ERROR for a
request that cannot be read). Only the `taskqueue` service is served.

The ticket is not checked yet: any caller that reaches the port may call (keep the port on
a private network; authentication arrives with the server's auth roles).
"""

from __future__ import annotations

import logging

from google.appengine.ext.remote_api import remote_api_bytes_pb2 as remote_api
from google.protobuf.message import DecodeError

from taskq.appengine.taskqueue import ServiceError, TaskQueueService, error_code
from taskq.core.engine import Engine
from taskq.core.errors import TaskqError

log = logging.getLogger(__name__)

SERVICE = "taskqueue"
RpcError = remote_api.RpcError


class Bridge:
    def __init__(self, engine: Engine, target_urls: dict[str, str]) -> None:
        self.taskqueue = TaskQueueService(engine, target_urls)

    async def call(self, body: bytes) -> bytes:
        """The serialized Response to a serialized Request; never raises."""
        return (await self._answer(body)).SerializeToString()

    async def _answer(self, body: bytes) -> remote_api.Response:
        try:
            request = remote_api.Request.FromString(body)
        except DecodeError as error:
            return _rpc_error(RpcError.PARSE_ERROR, f"the body is not an API request: {error}")
        if request.service_name != SERVICE:
            return _rpc_error(RpcError.CALL_NOT_FOUND,
                              f"taskq serves the taskqueue API only, not {request.service_name[:100]!r}")
        method = self.taskqueue.methods.get(request.method)
        if method is None:
            return _rpc_error(RpcError.CALL_NOT_FOUND, f"taskqueue.{request.method[:100]} is not served by taskq")
        message_type, handler = method
        try:
            message = message_type.FromString(request.request)
        except DecodeError as error:
            return _rpc_error(RpcError.PARSE_ERROR, f"the {request.method} request cannot be read: {error}")
        try:
            answer = await handler(message)
        except ServiceError as error:
            return remote_api.Response(application_error=remote_api.ApplicationError(code=error.code,
                                                                                     detail=error.detail))
        except TaskqError as error:  # storage trouble outside a handler's own mapping
            return remote_api.Response(application_error=remote_api.ApplicationError(code=error_code(error),
                                                                                     detail=error.message))
        except Exception:
            log.exception("taskqueue.%s failed", request.method)
            return _rpc_error(RpcError.UNKNOWN, f"taskqueue.{request.method} failed inside taskq; see its log")
        return remote_api.Response(response=answer.SerializeToString())


def _rpc_error(code: int, detail: str) -> remote_api.Response:
    return remote_api.Response(rpc_error=RpcError(code=code, detail=detail))
