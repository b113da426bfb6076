package taskq

// Retrying unary calls that fail with UNAVAILABLE, across a restart of the server.
//
// UNAVAILABLE means the server could not be reached, is starting, or is stopping: a restart
// shows it for a few seconds. The client therefore makes every unary call again, after a
// wait, until it gets another answer or the retry budget is spent:
//
//   - waits are exponential with full jitter: a random time between 0 and a ceiling that
//     starts at InitialBackoff and doubles up to MaxBackoff, so that many clients coming back
//     after a restart spread out; a RetryInfo the server sends (1 s while it starts) is
//     honoured: the wait is at least that long;
//   - a call stops retrying Budget (default 15 s) after its first UNAVAILABLE (or CANCELLED
//     the caller did not cause, see below), and never waits past its context's deadline,
//     which covers every attempt; the last UNAVAILABLE is returned then;
//   - every attempt sends the same request message, so a create carries the same request_id
//     on every attempt: it is chosen once, when the request is built, before the first one.
//
// A CANCELLED the caller did not cause is retried exactly like UNAVAILABLE: a server that
// stops gracefully cancels the calls it has received but not yet handed to its application, so
// a restart shows it too. The caller's own cancellation is not retried: the call's context is
// done then (ctx.Err() != nil), or the connection was closed (by Client.Close, or by the owner
// of a connection given to NewClient).
//
// Only these are retried. DEADLINE_EXCEEDED is not: the context's deadline covers all
// attempts, so once an attempt hits it the call has no time left. StreamTasks is not retried
// here: the Worker subscribes again on its own.
//
// Why this and not gRPC's retry policy (a service config), which the client used before: gRPC
// caps a call at 5 attempts, so with jitter the budget was often under a second or two,
// shorter than a restart; its retry throttling switches retries off after a burst of
// failures, which is exactly what a restart produces; it never resends a call once response
// headers have arrived, even when the connection breaks before the answer; and it ignores
// RetryInfo. The connection keeps only gRPC's transparent retries, of requests that never
// reached the server, which are always safe.
//
// An attempt that failed with UNAVAILABLE may still have reached the server, which may have
// done the work and lost only the answer. Each call is safe to resend:
//
//   - creates (CreateTask, each item of BatchCreateTasks) carry a request id, so the server
//     answers a repeat with the task the first attempt created; a create without one (a
//     request built by hand, through [Client.TaskService]) is not retried;
//   - reads (Get*, List*, GetQueueStats) change nothing;
//   - DeleteTask / BatchDeleteTasks with a lease token (acknowledgements): the server answers
//     a repeated acknowledgement with the same token as it answered the first (a server
//     without that fix answers LEASE_LOST, though the task was acknowledged); a delete
//     without a token that was done the first time answers TASK_NOT_FOUND;
//   - ModifyLease sets the lease to end a duration from now: a repeat sets it again (a release
//     repeated answers LEASE_LOST, the task having been released once);
//   - LeaseTasks: tasks leased by an attempt whose answer was lost are held by nobody until
//     their lease expires; then they are ready again (the attempt counts);
//   - RunTask, UpdateQueue, PauseQueue and ResumeQueue set a state: repeating sets it again;
//     CreateQueue and DeleteQueue repeated answer QUEUE_ALREADY_EXISTS / QUEUE_NOT_FOUND;
//   - PurgeQueue is NOT retried: a second purge would also delete the tasks created since the
//     first one.

import (
	"context"
	"math/rand/v2"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/status"

	taskqv1 "github.com/taskq/taskq/clients/go/gen/taskq/v1"
)

const (
	// defaultRetryBudget is how long a call keeps retrying after its first UNAVAILABLE: a
	// restart of the server takes a few seconds.
	defaultRetryBudget = 15 * time.Second
	// defaultInitialBackoff is the ceiling of the first wait between attempts.
	defaultInitialBackoff = 100 * time.Millisecond
	// defaultMaxBackoff is the largest ceiling a wait grows to.
	defaultMaxBackoff = 2 * time.Second
	// backoffMultiplier: each wait's ceiling is this many times the previous one.
	backoffMultiplier = 2
)

// CallRetry says how the client retries unary calls that fail with UNAVAILABLE; see
// [WithRetry]. Zero fields take their defaults.
type CallRetry struct {
	// Budget is how long a call keeps retrying after its first UNAVAILABLE (0: 15 s). The
	// call's context deadline stops it sooner.
	Budget time.Duration
	// InitialBackoff is the ceiling of the first wait; each wait is a random time between 0
	// and its ceiling (0: 100 ms).
	InitialBackoff time.Duration
	// MaxBackoff is the largest ceiling a wait grows to, doubling from InitialBackoff
	// (0: 2 s).
	MaxBackoff time.Duration
}

func (r CallRetry) withDefaults() CallRetry {
	if r.Budget <= 0 {
		r.Budget = defaultRetryBudget
	}
	if r.InitialBackoff <= 0 {
		r.InitialBackoff = defaultInitialBackoff
	}
	if r.MaxBackoff <= 0 {
		r.MaxBackoff = defaultMaxBackoff
	}
	r.MaxBackoff = max(r.MaxBackoff, r.InitialBackoff)
	return r
}

// WithRetry sets how unary calls failing with UNAVAILABLE are retried. Retries are on by
// default: for up to 15 s, waiting up to 100 ms, 200 ms, ... 2 s between attempts.
func WithRetry(retry CallRetry) Option {
	return func(s *clientSettings) { s.retry = &retry }
}

// WithoutRetry turns the client's retries off: a call failing with UNAVAILABLE returns it at
// once.
func WithoutRetry() Option {
	return func(s *clientSettings) { s.retry = nil }
}

// mayResend reports whether a request may be sent again after an attempt that may have
// reached the server.
func mayResend(request any) bool {
	switch r := request.(type) {
	case *taskqv1.CreateTaskRequest:
		return r.GetRequestId() != ""
	case *taskqv1.BatchCreateTasksRequest:
		for _, item := range r.GetRequests() {
			if item.GetRequestId() == "" {
				return false
			}
		}
		return true
	case *taskqv1.PurgeQueueRequest:
		return false
	}
	return true
}

// retryBackoff is the waits between the attempts of one call.
type retryBackoff struct {
	policy   CallRetry
	deadline time.Time // the call's; zero for none
	ceiling  time.Duration
	giveUpAt time.Time // set at the first failure
	now      func() time.Time
	random   func() float64
}

func newRetryBackoff(policy CallRetry, deadline time.Time) *retryBackoff {
	return &retryBackoff{policy: policy, deadline: deadline, ceiling: policy.InitialBackoff,
		now: time.Now, random: rand.Float64}
}

// retried reports whether an attempt of a call made with ctx that failed with err is made
// again: on UNAVAILABLE, and on a CANCELLED the caller did not cause (its context is not done;
// a server stopping gracefully cancels the calls it has not yet handled).
func retried(ctx context.Context, err error) bool {
	switch status.Code(err) {
	case codes.Unavailable:
		return true
	case codes.Canceled:
		return ctx.Err() == nil
	}
	return false
}

// next is how long to wait before the next attempt of a call made with ctx, after err; false
// when err is not retried or no attempt fits in the budget any more: then return err.
func (b *retryBackoff) next(ctx context.Context, err error) (time.Duration, bool) {
	if !retried(ctx, err) {
		return 0, false
	}
	now := b.now()
	if b.giveUpAt.IsZero() {
		b.giveUpAt = now.Add(b.policy.Budget)
		if !b.deadline.IsZero() && b.deadline.Before(b.giveUpAt) {
			b.giveUpAt = b.deadline
		}
	}
	wait := time.Duration(b.random() * float64(b.ceiling))
	b.ceiling = min(b.ceiling*backoffMultiplier, b.policy.MaxBackoff)
	if e, ok := FromError(err).(*Error); ok {
		if delay, asked := e.RetryDelay(); asked {
			wait = max(wait, delay)
		}
	}
	// An attempt that could only start at the deadline would fail with DEADLINE_EXCEEDED and
	// hide the UNAVAILABLE (or CANCELLED) that says what is wrong.
	if !now.Add(wait).Before(b.giveUpAt) {
		return 0, false
	}
	return wait, true
}

// retryingConn makes the unary calls of the generated stubs through conn, retrying them as
// the package comment of this file says; streams pass through untouched.
type retryingConn struct {
	grpc.ClientConnInterface
	policy CallRetry
	// closed is closed by Client.Close: a call waiting to be retried gives up at once.
	closed <-chan struct{}
}

// shutDown reports whether the connection was closed, which cancels its calls.
func (c *retryingConn) shutDown() bool {
	conn, ok := c.ClientConnInterface.(interface{ GetState() connectivity.State })
	return ok && conn.GetState() == connectivity.Shutdown
}

func (c *retryingConn) Invoke(ctx context.Context, method string, args, reply any, opts ...grpc.CallOption) error {
	// args is the same message on every attempt: a create keeps its request_id.
	err := c.ClientConnInterface.Invoke(ctx, method, args, reply, opts...)
	if err == nil || !mayResend(args) {
		return err
	}
	deadline, _ := ctx.Deadline()
	backoff := newRetryBackoff(c.policy, deadline)
	for {
		if status.Code(err) == codes.Canceled && c.shutDown() {
			return err // the connection's owner closed it: the caller's own cancellation
		}
		wait, ok := backoff.next(ctx, err)
		if !ok {
			return err
		}
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return status.FromContextError(ctx.Err()).Err()
		case <-c.closed:
			timer.Stop()
			return err
		case <-timer.C:
		}
		if err = c.ClientConnInterface.Invoke(ctx, method, args, reply, opts...); err == nil {
			return nil
		}
	}
}
