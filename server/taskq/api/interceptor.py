"""The shape of taskq's server interceptors (metrics/rpc.py, tracing/rpc.py): each wraps a
method's handler once, the first time the method is called, and hands gRPC the same wrapped
handler from then on (grpc.aio asks the interceptors on every call)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import grpc


class HandlerWrapper(grpc.aio.ServerInterceptor):
    def __init__(self) -> None:
        #: method path -> (the handler gRPC found, its wrapped twin).
        self._wrapped: dict[str, tuple[grpc.RpcMethodHandler, grpc.RpcMethodHandler]] = {}

    async def intercept_service(
        self, continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        path = handler_call_details.method
        known = self._wrapped.get(path)
        if known is not None and known[0] is handler:
            return known[1]
        wrapped = self._wrap(path, handler)
        self._wrapped[path] = (handler, wrapped)
        return wrapped

    def _wrap(self, path: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        """The handler that does the interceptor's work around `handler` (of method `path`)."""
        raise NotImplementedError
