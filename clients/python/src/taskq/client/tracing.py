"""Handler spans: each task's handler runs in an OpenTelemetry span continuing the trace of
the call that created the task (the Task's `trace_parent` and `trace_state`).

Only when the application uses OpenTelemetry: the opentelemetry-api package is imported if
it is installed (it is whenever the SDK is, which depends on it) and is not a dependency of
this client. Without it, or without an SDK configured (the API's tracer then does nothing),
handlers run as they are.

The span is a CONSUMER span named `process {queue}` (OpenTelemetry's messaging conventions),
started where the handler runs (the worker's thread for a sync handler), so that the
handler's own spans are its children. A handler that raises ends it with an error status.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar, cast

try:
    from opentelemetry import trace
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
except ImportError:  # the application does not use OpenTelemetry
    trace = None  # type: ignore[assignment]

_INSTRUMENTATION = "taskq.client"

H = TypeVar("H", bound=Callable[..., Any])


def traced(handler: H, queue: str, is_async: bool) -> H:
    """`handler` run in a handler span; `handler` itself without opentelemetry-api."""
    if trace is None:
        return handler
    # The global tracer provider is looked up per task, not now: the application may set
    # it up after making its workers.
    queue_id = queue.rpartition("/")[2]
    propagator = TraceContextTextMapPropagator()

    def start(task: Any) -> Any:
        carrier = {"traceparent": task.trace_parent, "tracestate": task.trace_state} if task.trace_parent else {}
        return trace.get_tracer(_INSTRUMENTATION).start_as_current_span(
            f"process {queue_id}",
            context=propagator.extract(carrier),
            kind=trace.SpanKind.CONSUMER,
            attributes={
                "messaging.system": "taskq",
                "messaging.operation.type": "process",
                "messaging.destination.name": queue_id,
                "messaging.message.id": task.name,
                "messaging.taskq.attempt_count": task.attempt_count,
            },
        )

    if is_async:

        @functools.wraps(handler)
        async def run_async(task: Any) -> Any:
            with start(task):
                return await handler(task)

        return cast(H, run_async)

    @functools.wraps(handler)
    def run(task: Any) -> Any:
        with start(task):
            return handler(task)

    return cast(H, run)
