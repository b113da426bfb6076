"""App Engine's API bridge protocol (`POST /rpc_http`), as the SDK's DefaultApiStub speaks it.

The body is a remote_api `Request` (service, method, the serialized service request, and the
API ticket as `request_id`); the answer is always HTTP 200 with a remote_api `Response`
holding the serialized service response, or an `application_error` (the service's own error
code, which the SDK raises as its exception: UnknownQueueError, TaskAlreadyExistsError, ...),
or an `rpc_error` (CALL_NOT_FOUND for a service or method not served here, PARSE_ERROR for a
request that cannot be read). Only the `taskqueue` service is served.

With authentication on (a tokens file or JWTs), every call names its caller: an
`Authorization: Bearer` header on the POST (a proxy in front of taskq can add one), else a
client certificate of the HTTP port's mTLS, else the API ticket itself, which the SDK copies
from the app's request into every call: a deployment sets the ticket to a taskq token
(`taskq.client.appengine.with_api_ticket` does when TASKQ_TOKEN or TASKQ_TOKEN_FILE is in the
app's environment), and the SDK needs no other change. The call is then checked against the
roles of taskq/auth/policy.py (methods named /taskqueue/BulkAdd, ...). Unknown credentials
are an `rpc_error` SECURITY_VIOLATION (the SDK raises RPCFailedError naming the reason), a
missing role the service's PERMISSION_DENIED (taskqueue.PermissionDeniedError).
"""

from __future__ import annotations

import logging

from google.appengine.ext.remote_api import remote_api_bytes_pb2 as remote_api
from google.protobuf.message import DecodeError

from taskq.appengine.taskqueue import ServiceError, TaskQueueService, error_code
from taskq.auth import policy
from taskq.auth.authenticator import Authenticator, Credentials
from taskq.core.engine import Engine
from taskq.core.errors import TaskqError, Unauthenticated

log = logging.getLogger(__name__)

SERVICE = "taskqueue"
RpcError = remote_api.RpcError


class Bridge:
    def __init__(self, engine: Engine, target_urls: dict[str, str], authenticator: Authenticator | None = None) -> None:
        self.taskqueue = TaskQueueService(engine, target_urls)
        #: Who calls, when roles are checked (None: anyone reaching the port may call).
        self._authenticator = authenticator

    async def call(self, body: bytes, credentials: Credentials | None = None) -> bytes:
        """The serialized Response to a serialized Request; never raises. `credentials`: the
        HTTP request's bearer token and client certificate, if any."""
        return (await self._answer(body, credentials or Credentials())).SerializeToString()

    async def _answer(self, body: bytes, credentials: Credentials) -> remote_api.Response:
        try:
            request = remote_api.Request.FromString(body)
        except DecodeError as error:
            return _rpc_error(RpcError.PARSE_ERROR, f"the body is not an API request: {error}")
        principal = None
        if self._authenticator is not None:
            if credentials.token is None and credentials.certificate is None and request.request_id:
                credentials = Credentials(token=_text(request.request_id))
            try:
                principal = await self._authenticator.principal(credentials)
            except Unauthenticated as error:
                return _rpc_error(RpcError.SECURITY_VIOLATION, f"{error.reason}: {error.message} (the bridge takes a "
                                  "taskq token as the API ticket, or in an Authorization: Bearer header)")
            except TaskqError as error:
                return _application_error(error_code(error), error.message)
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
            if principal is not None:
                name = f"/{SERVICE}/{request.method}"
                policy.check(principal, name, policy.RULES[name], message)
            answer = await handler(message)
        except ServiceError as error:
            return _application_error(error.code, error.detail)
        except TaskqError as error:  # a refusal, or storage trouble outside a handler's own mapping
            return _application_error(error_code(error), error.message)
        except Exception:
            log.exception("taskqueue.%s failed", request.method)
            return _rpc_error(RpcError.UNKNOWN, f"taskqueue.{request.method} failed inside taskq; see its log")
        return remote_api.Response(response=answer.SerializeToString())


def _application_error(code: int, detail: str) -> remote_api.Response:
    return remote_api.Response(application_error=remote_api.ApplicationError(code=code, detail=detail))


def _text(ticket: bytes | str) -> str:
    return ticket.decode(errors="replace") if isinstance(ticket, bytes) else ticket


def _rpc_error(code: int, detail: str) -> remote_api.Response:
    return remote_api.Response(rpc_error=RpcError(code=code, detail=detail))
