"""Authentication and authorization of gRPC calls, wrapped around each method handler when it
is registered (api/services.py registers taskq's and Cloud Tasks' services through `wrap`;
app.py hands health and reflection to `registrar`).

A call is authenticated first (UNAUTHENTICATED), then its decoded request is checked against
the method's rule (PERMISSION_DENIED, or INVALID_ARGUMENT for a queue name the servicer would
refuse too), and only then does the servicer run: a refused call changes nothing. A stream is
checked on its first message (StreamTasks' subscription). Health and reflection need no
credentials unless `auth_open_services` leaves them out; then any authenticated caller may
use them.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable
from typing import Any, NoReturn

import grpc
from grpc_status import rpc_status

from taskq.api.services import MalformedRequest
from taskq.api.status import internal_status, to_status
from taskq.auth import policy
from taskq.auth.authenticator import Authenticator, Credentials, bearer_token
from taskq.auth.roles import Principal, Role
from taskq.core.errors import PermissionDenied, TaskqError, Unauthenticated

log = logging.getLogger(__name__)

#: `auth_open_services` names -> the gRPC services they stand for.
OPEN_SERVICE_NAMES = {
    "health": ("grpc.health.v1.Health",),
    "reflection": ("grpc.reflection.v1alpha.ServerReflection", "grpc.reflection.v1.ServerReflection"),
}


class Gate:
    def __init__(self, authenticator: Authenticator, open_services: frozenset[str] = frozenset()) -> None:
        self.authenticator = authenticator
        #: Full gRPC service names callable without credentials.
        self._open = open_services
        #: Where refusals and administrators' calls are told, with the caller's identity: the
        #: event log's audit(name, fields, key_field) (app.py sets it once the log exists).
        self.audit: Callable[[str, dict, str], None] | None = None

    def refused(self, context: grpc.aio.ServicerContext, method: str, error: Exception,
                principal: Principal | None) -> None:
        """Tells the audit a call was refused for who it came from (not for bad input)."""
        if self.audit is None or not isinstance(error, (Unauthenticated, PermissionDenied)):
            return
        self.audit("auth_refused", {
            "method": method, "identity": principal.name if principal else None, "peer": context.peer(),
            "code": error.code.name, "reason": error.reason, "message": error.message,
        }, "peer" if principal is None else "identity")

    def administered(self, method: str, rule: policy.Rule, principal: Principal, request: Any) -> None:
        """Tells the audit of a call that needed the admin role, once it succeeded."""
        if self.audit is None:
            return
        needs = [need for need in rule.needs(request) if need.role is Role.ADMIN]
        if needs:
            self.audit("admin_call", {"method": method, "identity": principal.name, "via": principal.method,
                                      "queues": sorted({need.named for need in needs})}, "identity")

    def wrap(self, method: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        """The handler of `method` (/package.Service/Method) behind the checks of its rule.
        Raises ValueError for a method without a rule: nothing is served unchecked."""
        rule = policy.RULES.get(method)
        if rule is None:
            raise ValueError(f"{method} has no rule in taskq/auth/policy.py; add one before serving it")
        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(
                self._unary(method, rule, handler.unary_unary),
                request_deserializer=handler.request_deserializer, response_serializer=handler.response_serializer,
            )
        if handler.stream_stream is not None:
            return grpc.stream_stream_rpc_method_handler(
                self._stream(method, rule, handler.stream_stream),
                request_deserializer=handler.request_deserializer, response_serializer=handler.response_serializer,
            )
        raise ValueError(f"{method}: only unary and bidirectional methods are checked")

    def registrar(self, server: grpc.aio.Server) -> _Registrar:
        """Stands for `server` where grpcio's own helpers register a service (health,
        reflection): their handlers are wrapped so that, unless open, they need credentials."""
        return _Registrar(server, self)

    async def principal(self, context: grpc.aio.ServicerContext) -> Principal:
        """The caller of a call; raises Unauthenticated."""
        metadata = context.invocation_metadata() or ()
        values = [value for key, value in metadata if key == "authorization" and isinstance(value, str)]
        certificate = (context.auth_context().get("x509_pem_cert") or [None])[0]
        return await self.authenticator.principal(Credentials(bearer_token(values), certificate))

    def _unary(self, method: str, rule: policy.Rule, behaviour: Callable[..., Any]) -> Callable[..., Any]:
        async def checked(request: Any, context: grpc.aio.ServicerContext) -> Any:
            principal = None
            try:
                principal = await self.principal(context)
                if not isinstance(request, MalformedRequest):  # the servicer refuses it, changing nothing
                    policy.check(principal, method, rule, request)
            except Exception as error:
                self.refused(context, method, error, principal)
                await _abort(context, method, error)
            response = await behaviour(request, context)
            assert principal is not None  # the checks above abort the call otherwise
            if rule.answer is not None:
                rule.answer(principal, request, response)
            self.administered(method, rule, principal, request)
            return response

        return checked

    def _stream(self, method: str, rule: policy.Rule, behaviour: Callable[..., Any]) -> Callable[..., Any]:
        async def checked(request_iterator: Any, context: grpc.aio.ServicerContext) -> None:
            try:
                principal = await self.principal(context)
            except Exception as error:
                self.refused(context, method, error, None)
                await _abort(context, method, error)
            await behaviour(request_iterator, _FirstMessageChecked(self, context, method, rule, principal))

        return checked

    def open_or_authenticated(self, service: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        """A handler of health or reflection: as it is when open, else behind authentication."""
        if service in self._open:
            return handler
        kinds = ("unary_unary", "unary_stream", "stream_unary", "stream_stream")
        kind = next(name for name in kinds if getattr(handler, name) is not None)
        behaviour = getattr(handler, kind)
        factory = getattr(grpc, f"{kind}_rpc_method_handler")

        if inspect.isasyncgenfunction(behaviour):
            async def generator(request: Any, context: grpc.aio.ServicerContext) -> Any:
                await self._authenticated(context, service)
                async for response in behaviour(request, context):
                    yield response

            wrapped: Callable[..., Any] = generator
        else:
            async def coroutine(request: Any, context: grpc.aio.ServicerContext) -> Any:
                await self._authenticated(context, service)
                return await behaviour(request, context)

            wrapped = coroutine
        return factory(wrapped, request_deserializer=handler.request_deserializer,
                       response_serializer=handler.response_serializer)

    async def _authenticated(self, context: grpc.aio.ServicerContext, service: str) -> None:
        try:
            await self.principal(context)
        except Exception as error:
            self.refused(context, service, error, None)
            await _abort(context, service, error)


class _FirstMessageChecked:
    """A stream's context whose first read is checked against the method's rule before the
    servicer sees it; everything else goes to the real context."""

    def __init__(self, gate: Gate, context: grpc.aio.ServicerContext, method: str, rule: policy.Rule,
                 principal: Principal) -> None:
        self._gate = gate
        self._context = context
        self._method = method
        self._rule = rule
        self._principal = principal
        self._first = True

    async def read(self) -> Any:
        message = await self._context.read()
        if self._first:
            self._first = False
            if message is not grpc.aio.EOF and not isinstance(message, MalformedRequest):
                try:
                    policy.check(self._principal, self._method, self._rule, message)
                except Exception as error:
                    self._gate.refused(self._context, self._method, error, self._principal)
                    await _abort(self._context, self._method, error)
        return message

    def __getattr__(self, name: str) -> Any:
        return getattr(self._context, name)


class _Registrar:
    """What grpcio's add_*Servicer_to_server helpers call on a server, wrapping each handler."""

    def __init__(self, server: grpc.aio.Server, gate: Gate) -> None:
        self._server = server
        self._gate = gate

    def add_generic_rpc_handlers(self, handlers: Any) -> None:
        self._server.add_generic_rpc_handlers(tuple(_GenericChecked(handler, self._gate) for handler in handlers))

    def add_registered_method_handlers(self, service: str, handlers: dict[str, grpc.RpcMethodHandler]) -> None:
        self._server.add_registered_method_handlers(
            service, {name: self._gate.open_or_authenticated(service, handler) for name, handler in handlers.items()})


class _GenericChecked(grpc.GenericRpcHandler):
    def __init__(self, handler: grpc.GenericRpcHandler, gate: Gate) -> None:
        self._handler = handler
        self._gate = gate

    def service(self, handler_call_details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        handler = self._handler.service(handler_call_details)
        if handler is None:
            return None
        service = handler_call_details.method.strip("/").partition("/")[0]
        return self._gate.open_or_authenticated(service, handler)


async def _abort(context: grpc.aio.ServicerContext, method: str, error: Exception) -> NoReturn:
    """Ends the call with the error's status (a bug: INTERNAL, logged); never returns."""
    if isinstance(error, grpc.aio.AbortError):
        raise error
    if isinstance(error, TaskqError):
        status = to_status(error)
    else:
        log.exception("checking a call of %s failed", method, exc_info=error)
        status = internal_status(error)
    await context.abort_with_status(rpc_status.to_status(status))
    raise AssertionError("abort_with_status returned")  # pragma: no cover: it raises AbortError


__all__ = ["Gate", "OPEN_SERVICE_NAMES"]
