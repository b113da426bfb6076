package taskq

import (
	"context"
	"strings"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	taskqv1 "github.com/taskq/taskq/clients/go/gen/taskq/v1"
)

// tracerName names this package's spans' instrumentation scope.
const tracerName = "github.com/taskq/taskq/clients/go"

// taskTraceContext reads a task's trace_parent and trace_state, which are W3C Trace Context
// whatever propagators the application installed.
var taskTraceContext = propagation.TraceContext{}

// startHandlerSpan starts the span a handler runs in: a consumer span "process {queue}" whose
// parent is the trace context of the call that created the task (its trace_parent), or the
// worker's context when the task has none. It uses the global tracer provider, which does
// nothing until the application installs an SDK: without one, tracing costs next to nothing.
func startHandlerSpan(ctx context.Context, task *taskqv1.Task) (context.Context, trace.Span) {
	if parent := task.GetTraceParent(); parent != "" {
		carrier := propagation.MapCarrier{"traceparent": parent, "tracestate": task.GetTraceState()}
		ctx = taskTraceContext.Extract(ctx, carrier)
	}
	// The name is queues/{queue}/tasks/{task}.
	queue := strings.TrimPrefix(task.GetName(), "queues/")
	queue, _, _ = strings.Cut(queue, "/")
	return otel.Tracer(tracerName).Start(ctx, "process "+queue,
		trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithAttributes(
			attribute.String("messaging.system", "taskq"),
			attribute.String("messaging.operation.type", "process"),
			attribute.String("messaging.destination.name", queue),
			attribute.String("messaging.message.id", task.GetName()),
			attribute.Int("messaging.taskq.attempt_count", int(task.GetAttemptCount())),
		))
}

// endHandlerSpan ends the handler's span, with an error status when the handler failed.
func endHandlerSpan(span trace.Span, err error) {
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
}
