package taskq_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"go.opentelemetry.io/otel"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc/metadata"

	taskq "github.com/taskq/taskq/clients/go"
	taskqv1 "github.com/taskq/taskq/clients/go/gen/taskq/v1"
)

// traceSpans installs an SDK with an in-memory exporter as the global tracer provider for
// the test, as an application that uses OpenTelemetry would.
func traceSpans(t *testing.T) *tracetest.InMemoryExporter {
	exporter := tracetest.NewInMemoryExporter()
	provider := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exporter))
	previous := otel.GetTracerProvider()
	otel.SetTracerProvider(provider)
	t.Cleanup(func() {
		otel.SetTracerProvider(previous)
		_ = provider.Shutdown(context.Background())
	})
	return exporter
}

func TestWorkerHandlerSpanIsAChildOfTheCreatingCallsTrace(t *testing.T) {
	exporter := traceSpans(t)
	client := dial(t)
	ctx := testContext(t)
	queue := newQueue(t, client, taskq.QueueConfig{Type: taskq.PushQueue})
	const traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	createCtx := metadata.AppendToOutgoingContext(ctx, "traceparent", traceparent, "tracestate", "vendor=value")
	created, err := client.CreateTask(createCtx, queue, taskq.TaskSpec{Payload: []byte("traced")})
	if err != nil {
		t.Fatalf("CreateTask: %v", err)
	}
	if created.GetTraceParent() != traceparent {
		t.Fatalf("the created task's trace_parent is %q, want the caller's %q", created.GetTraceParent(), traceparent)
	}

	handled := make(chan trace.SpanContext, 1)
	handler := func(ctx context.Context, task *taskqv1.Task) error {
		handled <- trace.SpanContextFromContext(ctx)
		return nil
	}
	worker := taskq.NewWorker(client, queue, handler, taskq.WorkerOptions{Logger: logger()})
	stop := runWorker(t, worker.Run)
	var inHandler trace.SpanContext
	select {
	case inHandler = <-handled:
	case <-time.After(20 * time.Second):
		t.Fatal("the task was not handled")
	}
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}

	spans := exporter.GetSpans()
	if len(spans) != 1 {
		t.Fatalf("%d spans exported, want the handler's one: %v", len(spans), spans)
	}
	span := spans[0]
	if span.SpanKind != trace.SpanKindConsumer {
		t.Errorf("span kind %v, want consumer", span.SpanKind)
	}
	if got := span.SpanContext.TraceID().String(); got != "4bf92f3577b34da6a3ce929d0e0e4736" {
		t.Errorf("handler span's trace id %s, want the creator's", got)
	}
	if got := span.Parent.SpanID().String(); got != "00f067aa0ba902b7" || !span.Parent.IsRemote() {
		t.Errorf("handler span's parent %s (remote %v), want the creator's span 00f067aa0ba902b7", got, span.Parent.IsRemote())
	}
	if got := span.SpanContext.TraceState().Get("vendor"); got != "value" {
		t.Errorf("handler span's tracestate vendor=%q, want the creator's value", got)
	}
	if inHandler.SpanID() != span.SpanContext.SpanID() {
		t.Errorf("the handler's context holds span %s, not its handler span %s", inHandler.SpanID(), span.SpanContext.SpanID())
	}
}

func TestHandlerSpanOfAFailedTaskHasAnErrorStatus(t *testing.T) {
	exporter := traceSpans(t)
	client := dial(t)
	ctx := testContext(t)
	queue := newQueue(t, client, taskq.QueueConfig{Type: taskq.PullQueue})
	if _, err := client.CreateTask(ctx, queue, taskq.TaskSpec{Payload: []byte("fails")}); err != nil {
		t.Fatalf("CreateTask: %v", err)
	}
	failed := make(chan struct{}, 1)
	handler := func(ctx context.Context, task *taskqv1.Task) error {
		select {
		case failed <- struct{}{}:
		default:
		}
		return taskq.Permanent(errors.New("boom"))
	}
	worker := taskq.NewPullWorker(client, queue, handler, taskq.PullOptions{Logger: logger()})
	stop := runWorker(t, worker.Run)
	select {
	case <-failed:
	case <-time.After(20 * time.Second):
		t.Fatal("the task was not handled")
	}
	eventually(t, 10*time.Second, "the handler span ended", func() bool { return len(exporter.GetSpans()) > 0 })
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	span := exporter.GetSpans()[0]
	if span.Status.Code.String() != "Error" {
		t.Errorf("status %v, want Error", span.Status)
	}
	if span.Parent.IsValid() {
		t.Errorf("a task created without a trace got a parent %v; want a new trace", span.Parent)
	}
}
