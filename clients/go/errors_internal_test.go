package taskq

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	taskqv1 "github.com/taskq/taskq/clients/go/gen/taskq/v1"
)

func TestFromStatusReadsEveryDetail(t *testing.T) {
	info, _ := anypb.New(&errdetails.ErrorInfo{Reason: "LEASE_LOST", Domain: Domain, Metadata: map[string]string{"task": "queues/q/tasks/t"}})
	bad, _ := anypb.New(&errdetails.BadRequest{FieldViolations: []*errdetails.BadRequest_FieldViolation{{Field: "requests[3].task.tag", Description: "too long"}}})
	pre, _ := anypb.New(&errdetails.PreconditionFailure{Violations: []*errdetails.PreconditionFailure_Violation{{Type: "LEASE", Subject: "queues/q/tasks/t", Description: "stale"}}})
	retry, _ := anypb.New(&errdetails.RetryInfo{RetryDelay: durationpb.New(time.Second)})
	details := []*anypb.Any{info, bad, pre, retry}
	e := FromStatus(&spb.Status{Code: int32(codes.FailedPrecondition), Message: "requests[3].task.tag: lease lost", Details: details})

	if e.Code() != codes.FailedPrecondition || e.Reason() != "LEASE_LOST" || e.Metadata()["task"] != "queues/q/tasks/t" {
		t.Errorf("code %v reason %q metadata %v", e.Code(), e.Reason(), e.Metadata())
	}
	if len(e.FieldViolations()) != 1 || len(e.PreconditionViolations()) != 1 || e.PreconditionViolations()[0].Type != "LEASE" {
		t.Errorf("violations %+v %+v", e.FieldViolations(), e.PreconditionViolations())
	}
	if d, ok := e.RetryDelay(); !ok || d != time.Second {
		t.Errorf("RetryDelay = %v, %v", d, ok)
	}
	if got := e.Error(); got != "taskq: FAILED_PRECONDITION LEASE_LOST: requests[3].task.tag: lease lost" {
		t.Errorf("Error() = %q", got)
	}
	if !errors.Is(e, ErrLeaseLost) || errors.Is(e, ErrTaskNotFound) || !IsLeaseLost(fmt.Errorf("wrapped: %w", e)) {
		t.Errorf("errors.Is matching failed")
	}
	if status.Code(e) != codes.FailedPrecondition || status.Code(fmt.Errorf("wrapped: %w", e)) != codes.FailedPrecondition {
		t.Errorf("status.Code = %v", status.Code(e))
	}

	stripped := e.withoutFieldPrefix("requests[3].")
	if stripped.FieldViolations()[0].Field != "task.tag" || strings.Contains(stripped.Message(), "requests[") {
		t.Errorf("withoutFieldPrefix = %+v %q", stripped.FieldViolations(), stripped.Message())
	}
	if e.FieldViolations()[0].Field != "requests[3].task.tag" {
		t.Errorf("withoutFieldPrefix changed the original")
	}

	if FromStatus(&spb.Status{}) != nil {
		t.Errorf("FromStatus(OK) is not nil")
	}
}

func TestConvertErrorKeepsTheContextsError(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := convertError(ctx, status.Error(codes.Canceled, "context canceled"))
	if !errors.Is(err, context.Canceled) || CodeOf(err) != codes.Canceled {
		t.Errorf("convertError = %v, want a Canceled *Error wrapping context.Canceled", err)
	}
	plain := errors.New("not grpc")
	if FromError(plain) != plain || FromError(nil) != nil {
		t.Errorf("FromError changed a non-gRPC error")
	}
}

func TestNackForHandlerErrors(t *testing.T) {
	task := &taskqv1.Task{Name: "queues/q/tasks/t", LeaseToken: "tok"}
	cases := []struct {
		err       error
		code      codes.Code
		permanent bool
		delay     time.Duration
		message   string
	}{
		{errors.New("boom"), codes.Unknown, false, 0, "boom"},
		{Permanent(errors.New("bad payload")), codes.Unknown, true, 0, "bad payload"},
		{fmt.Errorf("wrapped: %w", Permanent(errors.New("x"))), codes.Unknown, true, 0, "wrapped: x"},
		{Retry(time.Minute), codes.Unknown, false, time.Minute, "retry requested in 1m0s"},
		{RetryAfter(time.Second, errors.New("busy")), codes.Unknown, false, time.Second, "busy"},
		{status.Error(codes.NotFound, "gone"), codes.NotFound, false, 0, "rpc error: code = NotFound desc = gone"},
		{context.DeadlineExceeded, codes.DeadlineExceeded, false, 0, "context deadline exceeded"},
	}
	for _, c := range cases {
		nack := nackFor(task, c.err)
		if nack.GetName() != task.Name || nack.GetLeaseToken() != "tok" || nack.GetError().GetCode() != int32(c.code) ||
			nack.GetPermanent() != c.permanent || nack.GetRetryDelay().AsDuration() != c.delay ||
			nack.GetError().GetMessage() != c.message {
			t.Errorf("nackFor(%v) = %v", c.err, nack)
		}
	}
	if Permanent(nil) != nil || RetryAfter(time.Second, nil) != nil {
		t.Errorf("wrapping nil is not nil")
	}
	long := nackFor(task, errors.New(strings.Repeat("é", 3000)))
	if n := len(long.GetError().GetMessage()); n > maxErrorMessageBytes || n < maxErrorMessageBytes-1 {
		t.Errorf("a long message was cut to %d bytes", n)
	}
}

func TestLeaseLengthUsesTheServersTimestamps(t *testing.T) {
	dispatched := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	task := &taskqv1.Task{
		LastAttempt:     &taskqv1.Attempt{DispatchTime: timestamppb.New(dispatched)},
		LeaseExpireTime: timestamppb.New(dispatched.Add(90 * time.Second)),
	}
	if got := leaseLength(task); got != 90*time.Second {
		t.Errorf("leaseLength = %v, want 90s", got)
	}
	if got := leaseLength(&taskqv1.Task{DispatchDeadline: durationpb.New(time.Minute)}); got != time.Minute {
		t.Errorf("leaseLength from the dispatch deadline = %v", got)
	}
	if got := leaseLength(&taskqv1.Task{}); got != fallbackLease {
		t.Errorf("leaseLength of a bare task = %v", got)
	}
	lease := holdLease(task, 90*time.Second, 0)
	if lease.interval != 45*time.Second {
		t.Errorf("default interval = %v, want half the lease", lease.interval)
	}
}

func TestListTasksFilter(t *testing.T) {
	got := ListTasksOptions{
		States: []taskqv1.TaskState{taskqv1.TaskState_TASK_STATE_READY, taskqv1.TaskState_TASK_STATE_LEASED},
		Tag:    `a "quoted" \ tag`,
		Filter: "state = FAILED",
	}.filter()
	want := `state = (TASK_STATE_READY OR TASK_STATE_LEASED) AND tag = "a \"quoted\" \\ tag" AND state = FAILED`
	if got != want {
		t.Errorf("filter = %s\nwant     %s", got, want)
	}
	if (ListTasksOptions{}).filter() != "" {
		t.Errorf("empty options give a filter")
	}
}

func TestNames(t *testing.T) {
	if QueueName("q") != "queues/q" || QueueName("queues/q") != "queues/q" {
		t.Error("QueueName")
	}
	if TaskName("q", "t") != "queues/q/tasks/t" || TaskName("queues/q", "queues/q/tasks/t") != "queues/q/tasks/t" {
		t.Error("TaskName")
	}
}

func TestBatcherGivesEachCallerItsOutcome(t *testing.T) {
	var mu sync.Mutex
	var sizes []int
	send := func(ctx context.Context, key string, items []int) ([]outcome[string], error) {
		mu.Lock()
		sizes = append(sizes, len(items))
		mu.Unlock()
		if key == "broken" {
			return nil, errors.New("the whole call failed")
		}
		outcomes := make([]outcome[string], len(items))
		for i, item := range items {
			if item%10 == 0 {
				outcomes[i].err = fmt.Errorf("item %d refused", item)
			} else {
				outcomes[i].value = fmt.Sprint(item)
			}
		}
		return outcomes, nil
	}
	b := newBatcher(BatchSettings{MaxDelay: 20 * time.Millisecond, MaxItems: 7}.withDefaults(), send, func(int) int { return 1 })
	var wg sync.WaitGroup
	for i := 1; i <= 30; i++ {
		wg.Go(func() {
			value, err := b.submit(context.Background(), "q", i)
			if i%10 == 0 {
				if err == nil || err.Error() != fmt.Sprintf("item %d refused", i) {
					t.Errorf("item %d: %v", i, err)
				}
			} else if err != nil || value != fmt.Sprint(i) {
				t.Errorf("item %d = %q, %v", i, value, err)
			}
		})
	}
	wg.Wait()
	if _, err := b.submit(context.Background(), "broken", 1); err == nil {
		t.Error("a failed call gave no error")
	}
	total := 0
	for _, n := range sizes {
		if n > 7 {
			t.Errorf("a batch of %d items, above MaxItems 7", n)
		}
		total += n
	}
	if total != 31 || len(sizes) > 10 {
		t.Errorf("batches %v", sizes)
	}
	b.close()
	if _, err := b.submit(context.Background(), "q", 1); !errors.Is(err, ErrClientClosed) {
		t.Errorf("submit after close = %v", err)
	}
}

func TestCreatesAreResentOnlyWithARequestIDAndPurgesNever(t *testing.T) {
	create, _ := TaskSpec{Payload: []byte("x")}.request("q")
	empty, _ := TaskSpec{}.request("q")
	batch := &taskqv1.BatchCreateTasksRequest{Parent: "queues/q", Requests: []*taskqv1.CreateTaskRequest{create, empty}}
	if create.GetRequestId() == "" || !mayResend(create) || !mayResend(batch) {
		t.Errorf("a create with a generated request_id is not resent: %v", create)
	}
	if mayResend(&taskqv1.CreateTaskRequest{Parent: "queues/q"}) {
		t.Error("a create without a request_id would be resent")
	}
	batch.Requests = append(batch.Requests, &taskqv1.CreateTaskRequest{})
	if mayResend(batch) {
		t.Error("a batch with an item without a request_id would be resent")
	}
	if mayResend(&taskqv1.PurgeQueueRequest{Name: "queues/q"}) || !mayResend(&taskqv1.DeleteTaskRequest{Name: "n", LeaseToken: "t"}) {
		t.Error("PurgeQueue must not be resent; DeleteTask may")
	}
}

func TestRetryBackoffWaitsWithFullJitterUpToTheBudget(t *testing.T) {
	now := time.Unix(1000, 0)
	b := newRetryBackoff(CallRetry{Budget: 5 * time.Second, InitialBackoff: 100 * time.Millisecond, MaxBackoff: time.Second}.withDefaults(), time.Time{})
	b.now = func() time.Time { return now }
	b.random = func() float64 { return 1 }
	unavailable := status.Error(codes.Unavailable, "down")
	var waits []time.Duration
	for {
		wait, ok := b.next(context.Background(), unavailable)
		if !ok {
			break
		}
		waits = append(waits, wait)
		now = now.Add(wait)
	}
	// Ceilings double from 100 ms up to 1 s, until a wait would end past the 5 s budget.
	want := []time.Duration{100, 200, 400, 800, 1000, 1000, 1000}
	if len(waits) != len(want) {
		t.Fatalf("waits = %v, want %v ms", waits, want)
	}
	for i := range want {
		if waits[i] != want[i]*time.Millisecond {
			t.Errorf("wait %d = %v, want %v ms", i, waits[i], want[i])
		}
	}
	if _, ok := b.next(context.Background(), status.Error(codes.InvalidArgument, "bad")); ok {
		t.Error("INVALID_ARGUMENT would be retried")
	}
}

func TestRetryBackoffHonoursRetryInfoAndTheDeadline(t *testing.T) {
	now := time.Unix(1000, 0)
	b := newRetryBackoff(CallRetry{}.withDefaults(), now.Add(2500*time.Millisecond))
	b.now = func() time.Time { return now }
	b.random = func() float64 { return 0 }
	starting, err := status.New(codes.Unavailable, "starting").WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(time.Second)})
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if wait, ok := b.next(context.Background(), starting.Err()); !ok || wait != time.Second {
			t.Fatalf("wait = %v, %v; want the server's 1 s", wait, ok)
		}
		now = now.Add(time.Second)
	}
	if wait, ok := b.next(context.Background(), starting.Err()); ok {
		t.Errorf("wait = %v ending past the call's deadline", wait)
	}
}

func TestRetryBackoffRetriesACanceledTheCallerDidNotCause(t *testing.T) {
	// A server stopping gracefully cancels the calls it has not yet handed to its application.
	canceled := status.Error(codes.Canceled, "server shutting down")
	b := newRetryBackoff(CallRetry{}.withDefaults(), time.Time{})
	b.random = func() float64 { return 1 }
	if wait, ok := b.next(context.Background(), canceled); !ok || wait != 100*time.Millisecond {
		t.Errorf("CANCELLED with a live context: wait = %v, %v; want a retry after 100 ms", wait, ok)
	}
	// The caller's own cancellation: its context is done.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if wait, ok := newRetryBackoff(CallRetry{}.withDefaults(), time.Time{}).next(ctx, canceled); ok {
		t.Errorf("CANCELLED after the caller cancelled would be retried after %v", wait)
	}
	if !retried(ctx, status.Error(codes.Unavailable, "down")) || retried(context.Background(), status.Error(codes.DeadlineExceeded, "late")) {
		t.Error("retried: UNAVAILABLE is retried whatever the context, DEADLINE_EXCEEDED never")
	}
}
