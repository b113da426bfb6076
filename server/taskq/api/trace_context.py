"""The W3C trace context a created task keeps (Task.trace_parent, Task.trace_state).

With tracing on, the server's span of the create call is current (tracing/rpc.py), and the
task keeps that span as its parent: the trace then reads caller -> CreateTask -> handler.
With tracing off there is no current span, and the task keeps the caller's `traceparent`
metadata as it came, once it parses: workers still join the caller's trace, the server just
does not appear in it.

Only the W3C format is read, whatever propagators the process has: the task's fields are
W3C by definition, and an ill-formed header is dropped rather than stored.
"""

from __future__ import annotations

import grpc
from opentelemetry import trace
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

_W3C = TraceContextTextMapPropagator()

#: The most tracestate a task keeps, characters (what W3C asks propagators to pass on; a
#: longer one is dropped rather than cut, since a cut could split an entry).
MAX_TRACE_STATE = 512


def creating_trace(context: grpc.aio.ServicerContext) -> tuple[str, str]:
    """(traceparent, tracestate) for a task created by this call; ("", "") without one."""
    span_context = trace.get_current_span().get_span_context()
    if not span_context.is_valid:
        carrier: dict[str, str] = {}
        for key, value in context.invocation_metadata() or ():
            if key in ("traceparent", "tracestate") and isinstance(value, str):
                carrier[key] = value
        if "traceparent" not in carrier:
            return "", ""
        span_context = trace.get_current_span(_W3C.extract(carrier)).get_span_context()
        if not span_context.is_valid:
            return "", ""
    parent = f"00-{span_context.trace_id:032x}-{span_context.span_id:016x}-{span_context.trace_flags:02x}"
    state = span_context.trace_state.to_header()
    return parent, state if len(state) <= MAX_TRACE_STATE and state.isascii() else ""
