package taskq

import (
	"context"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"

	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	taskqv1 "github.com/taskq/taskq/clients/go/gen/taskq/v1"
)

// How a handler says that a task failed, and what the server is told.
//
// A handler that returns nil has done its task. One that returns an error has failed it:
//
//   - any error: the task is retried after the queue's backoff (push) or at once (pull), and
//     the error's text is recorded as the task's last_attempt.error;
//   - Retry(after), or an error wrapped with RetryAfter: retried after that delay instead;
//   - an error wrapped with Permanent: never retried; the task moves to the dead-letter queue
//     or to TASK_STATE_FAILED (push queues; a pull queue has no permanent failure, so the
//     PullWorker releases the task like any other failure).
//
// Every failure counts as an attempt against the queue's max_attempts.

// maxErrorMessageBytes is the longest error message the server keeps; longer ones are cut.
const maxErrorMessageBytes = 4096

// ErrGracePeriodExpired is the cause (context.Cause) of a handler's context cancelled because
// the worker stopped and the handler outlasted the grace period. Its answer is dropped; the
// server hands the task to another worker.
var ErrGracePeriodExpired = errors.New("taskq: the worker stopped and the grace period ran out")

type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// Permanent marks a handler's error as permanent: the task is not retried (push queues). It
// returns nil for nil.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &permanentError{err}
}

// IsPermanent reports whether err is, or wraps, an error marked with [Permanent].
func IsPermanent(err error) bool {
	var p *permanentError
	return errors.As(err, &p)
}

type retryError struct {
	after time.Duration
	err   error
}

func (e *retryError) Error() string {
	if e.err != nil {
		return e.err.Error()
	}
	return fmt.Sprintf("retry requested in %s", e.after)
}

func (e *retryError) Unwrap() error { return e.err }

// Retry is a handler's error asking for the task to be tried again after the given delay
// instead of the queue's backoff.
func Retry(after time.Duration) error {
	return &retryError{after: after}
}

// RetryAfter wraps a handler's error so that the task is tried again after the given delay
// instead of the queue's backoff; the error's text is recorded. It returns nil for nil.
func RetryAfter(after time.Duration, err error) error {
	if err == nil {
		return nil
	}
	return &retryError{after: after, err: err}
}

// RetryDelayOf is the delay asked with [Retry] or [RetryAfter], if err carries one.
func RetryDelayOf(err error) (time.Duration, bool) {
	var r *retryError
	if errors.As(err, &r) {
		return max(r.after, 0), true
	}
	return 0, false
}

// failureStatus is the google.rpc.Status a nack carries for a handler's error: the error's
// own gRPC code if it has one (a failed call, a context error), else UNKNOWN, and its text.
func failureStatus(err error) *spb.Status {
	var c codes.Code
	switch {
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		c = status.FromContextError(err).Code()
	default:
		c = status.Code(err)
	}
	if c == codes.OK {
		c = codes.Unknown
	}
	return &spb.Status{Code: int32(c), Message: truncateUTF8(err.Error(), maxErrorMessageBytes)}
}

// nackFor is the nack of a task whose handler failed with err.
func nackFor(task *taskqv1.Task, err error) *taskqv1.TaskNack {
	nack := &taskqv1.TaskNack{Name: task.GetName(), LeaseToken: task.GetLeaseToken(), Error: failureStatus(err)}
	if IsPermanent(err) {
		nack.Permanent = true
	} else if after, ok := RetryDelayOf(err); ok {
		nack.RetryDelay = durationpb.New(after)
	}
	return nack
}

// truncateUTF8 cuts s to at most n bytes without splitting a character.
func truncateUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
