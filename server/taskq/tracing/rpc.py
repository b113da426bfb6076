"""A server span for every gRPC call: a grpc.aio server interceptor.

Each call's span continues the caller's trace when its metadata carries one (`traceparent`,
read with the process's propagators: W3C Trace Context by default), and is named after the
method as OpenTelemetry's RPC conventions ask (`taskq.v1.TaskService/CreateTask`). A unary
call's span is current while its handler runs, so that a task created by it keeps the span
as its parent (api/trace_context.py). A stream (StreamTasks) is one span from its start to
its end, never made current: the handler's steps interleave with the stream's messages.

Written here rather than taken from opentelemetry-instrumentation-grpc: that package wraps
the whole server, whereas this is one more entry of the interceptors list beside the
metrics one, with the same handler-wrapping as metrics/rpc.py.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
from opentelemetry import propagate
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer, use_span

from taskq.api.interceptor import HandlerWrapper
from taskq.metrics.rpc import call_code

#: The codes that mean the server failed (OpenTelemetry's RPC conventions: on a server span,
#: only these are errors; NOT_FOUND and the like are the caller's).
SERVER_ERRORS = frozenset({"UNKNOWN", "DEADLINE_EXCEEDED", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS"})


def _carrier(metadata: Any) -> dict[str, str]:
    """The call's metadata as a propagator reads it (binary -bin entries left out)."""
    return {key: value for key, value in metadata or () if isinstance(value, str)}


class RpcTracing(HandlerWrapper):
    """Makes a span of every call. Each method's handler is wrapped once and reused."""

    def __init__(self, tracer: Tracer) -> None:
        self._tracer = tracer
        super().__init__()

    def _wrap(self, path: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        name = path.lstrip("/")
        service, _, method = name.rpartition("/")
        attributes = {"rpc.system": "grpc", "rpc.service": service, "rpc.method": method}
        traced = _Traced(self._tracer, name, attributes)
        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(
                traced.wrap(handler.unary_unary), handler.request_deserializer, handler.response_serializer
            )
        if handler.unary_stream is not None:
            return grpc.unary_stream_rpc_method_handler(
                traced.wrap(handler.unary_stream), handler.request_deserializer, handler.response_serializer
            )
        if handler.stream_unary is not None:
            return grpc.stream_unary_rpc_method_handler(
                traced.wrap(handler.stream_unary), handler.request_deserializer, handler.response_serializer
            )
        return grpc.stream_stream_rpc_method_handler(
            traced.wrap(handler.stream_stream), handler.request_deserializer, handler.response_serializer
        )


class _Traced:
    """One method's span settings, and the wrapping of its behaviour."""

    def __init__(self, tracer: Tracer, name: str, attributes: dict[str, str]) -> None:
        self.tracer = tracer
        self.name = name
        self.attributes = attributes

    def _start(self, context: grpc.aio.ServicerContext) -> Span:
        parent = propagate.extract(_carrier(context.invocation_metadata()))
        return self.tracer.start_span(self.name, context=parent, kind=SpanKind.SERVER, attributes=self.attributes)

    @staticmethod
    def _end(span: Span, context: grpc.aio.ServicerContext, error: BaseException | None) -> None:
        code = call_code(context, error)
        span.set_attribute("rpc.grpc.status_code", grpc.StatusCode[code].value[0])
        if code in SERVER_ERRORS:
            span.set_status(Status(StatusCode.ERROR, code))
            if error is not None and not isinstance(error, asyncio.CancelledError | GeneratorExit):
                span.record_exception(error)
        span.end()

    def wrap(self, behaviour: Callable[..., Any]) -> Callable[..., Any]:
        """`behaviour` (a coroutine function, or an async generator function for streams
        that yield their responses) inside a span. What kind it is is found once, here."""
        if inspect.isasyncgenfunction(behaviour):

            async def generator(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
                span = self._start(context)
                try:
                    async for response in behaviour(request, context):
                        yield response
                except BaseException as error:
                    self._end(span, context, error)
                    raise
                self._end(span, context, None)

            return generator

        if inspect.iscoroutinefunction(behaviour):
            call = behaviour
        else:

            async def call(request: Any, context: grpc.aio.ServicerContext) -> Any:
                response = behaviour(request, context)  # a function returning an awaitable, or the response
                return await response if inspect.isawaitable(response) else response

        async def coroutine(request: Any, context: grpc.aio.ServicerContext) -> Any:
            span = self._start(context)
            try:
                # Current while the handler runs: a task it creates keeps this span as parent.
                with use_span(span, end_on_exit=False, record_exception=False, set_status_on_exception=False):
                    response = await call(request, context)
            except BaseException as error:
                self._end(span, context, error)
                raise
            self._end(span, context, None)
            return response

        return coroutine

