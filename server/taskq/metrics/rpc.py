"""gRPC calls by method and status code: a grpc.aio server interceptor.

Every registered method is counted (taskq.v1, the Cloud Tasks services, health, reflection);
a call to a method the server does not have is answered UNIMPLEMENTED by gRPC without a
handler and counted nowhere, so the labels stay bounded by the methods that exist. A stream
(StreamTasks, health Watch, reflection) is one call from its start to its end: its duration
is how long it was open.

The code is the one the call ended with: OK, the code of an abort (every TaskqError becomes
one in api/status.py), CANCELLED when the client went away, UNKNOWN for anything else raised.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import grpc
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric

from taskq.api.interceptor import HandlerWrapper
from taskq.metrics.histogram import RPC_BUCKETS, Histogram

#: (request streaming, response streaming) -> the `type` label.
_TYPES = {(False, False): "unary", (False, True): "server_stream", (True, False): "client_stream",
          (True, True): "bidi_stream"}


class MethodTally:
    """One method's calls: how many are open, and a histogram of durations per final code."""

    __slots__ = ("labels", "in_flight", "by_code")

    def __init__(self, labels: tuple[str, str, str]) -> None:
        #: (service, method, type)
        self.labels = labels
        self.in_flight = 0
        self.by_code: dict[str, Histogram] = {}

    def ended(self, started: float, code: str) -> None:
        self.in_flight -= 1
        histogram = self.by_code.get(code)
        if histogram is None:
            histogram = self.by_code[code] = Histogram(RPC_BUCKETS)
        histogram.observe(time.perf_counter() - started)


def call_code(context: grpc.aio.ServicerContext, error: BaseException | None) -> str:
    """The name of the code a call ended with (see the module docstring); the tracing
    interceptor (tracing/rpc.py) reads it the same way."""
    code = context.code()
    if isinstance(code, grpc.StatusCode):  # set by an abort (or set_code)
        return code.name
    if error is None:
        return "OK"
    if isinstance(error, asyncio.CancelledError | GeneratorExit):  # the client went away
        return "CANCELLED"
    return "UNKNOWN"


class RpcMetrics(HandlerWrapper):
    """Counts and times every call. Each method's handler is wrapped once and reused."""

    def __init__(self) -> None:
        self.methods: dict[str, MethodTally] = {}
        super().__init__()

    def _wrap(self, path: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        service, _, method = path.lstrip("/").rpartition("/")
        kind = _TYPES[(bool(handler.request_streaming), bool(handler.response_streaming))]
        tally = self.methods.get(path)
        if tally is None:
            tally = self.methods[path] = MethodTally((service, method, kind))
        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(
                _timed(handler.unary_unary, tally), handler.request_deserializer, handler.response_serializer
            )
        if handler.unary_stream is not None:
            return grpc.unary_stream_rpc_method_handler(
                _timed(handler.unary_stream, tally), handler.request_deserializer, handler.response_serializer
            )
        if handler.stream_unary is not None:
            return grpc.stream_unary_rpc_method_handler(
                _timed(handler.stream_unary, tally), handler.request_deserializer, handler.response_serializer
            )
        return grpc.stream_stream_rpc_method_handler(
            _timed(handler.stream_stream, tally), handler.request_deserializer, handler.response_serializer
        )

    def collect(self) -> Iterator[Metric]:
        labels = ["service", "method", "type"]
        requests = CounterMetricFamily("taskq_grpc_requests_total", "gRPC calls ended, by method and status code.",
                                       labels=[*labels, "code"])
        durations = HistogramMetricFamily(
            "taskq_grpc_request_duration_seconds",
            "Seconds from a gRPC call's start to its end (a stream: how long it was open), by method and code.",
            labels=[*labels, "code"], unit="seconds",
        )
        in_flight = GaugeMetricFamily("taskq_grpc_requests_in_flight",
                                      "gRPC calls under way (open streams included).", labels=labels)
        for _, tally in sorted(self.methods.items()):
            in_flight.add_metric(tally.labels, tally.in_flight)
            for code, histogram in sorted(tally.by_code.items()):
                requests.add_metric([*tally.labels, code], histogram.count)
                durations.add_metric([*tally.labels, code], histogram.cumulative(), histogram.sum)
        yield requests
        yield durations
        yield in_flight


def _timed(behaviour: Callable[..., Any], tally: MethodTally) -> Callable[..., Any]:
    """`behaviour` (a coroutine function, or an async generator function for streams that
    yield their responses), counted and timed in `tally`. What kind it is is found once, here:
    inspect.isawaitable per call would cost more than the counting."""
    if inspect.isasyncgenfunction(behaviour):

        async def generator(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            started = time.perf_counter()
            tally.in_flight += 1
            try:
                async for response in behaviour(request, context):
                    yield response
            except BaseException as error:
                tally.ended(started, call_code(context, error))
                raise
            tally.ended(started, call_code(context, None))

        return generator

    if inspect.iscoroutinefunction(behaviour):
        call = behaviour
    else:

        async def call(request: Any, context: grpc.aio.ServicerContext) -> Any:
            response = behaviour(request, context)  # a function returning an awaitable, or the response
            return await response if inspect.isawaitable(response) else response

    async def coroutine(request: Any, context: grpc.aio.ServicerContext) -> Any:
        started = time.perf_counter()
        tally.in_flight += 1
        try:
            response = await call(request, context)
        except BaseException as error:
            tally.ended(started, call_code(context, error))
            raise
        tally.ended(started, call_code(context, None))
        return response

    return coroutine
