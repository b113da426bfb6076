package taskq

import (
	"context"
	"errors"
	"strings"
	"time"

	"google.golang.org/genproto/googleapis/rpc/code"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Domain is the ErrorInfo domain of the errors the taskq server produces.
const Domain = "taskq.dev"

// Stable ErrorInfo reasons that callers commonly handle. The server documents more on each
// RPC; [Error.Reason] returns whichever it sent.
const (
	ReasonQueueNotFound      = "QUEUE_NOT_FOUND"
	ReasonTaskNotFound       = "TASK_NOT_FOUND"
	ReasonQueueAlreadyExists = "QUEUE_ALREADY_EXISTS"
	ReasonTaskAlreadyExists  = "TASK_ALREADY_EXISTS"
	ReasonTaskTombstoned     = "TASK_TOMBSTONED"
	ReasonLeaseLost          = "LEASE_LOST"
	ReasonQueuePaused        = "QUEUE_PAUSED"
	ReasonWrongQueueType     = "WRONG_QUEUE_TYPE"
	ReasonTaskLeased         = "TASK_LEASED"
)

// Sentinels for errors.Is: an [*Error] matches one when its code and reason are the
// sentinel's.
//
//	if errors.Is(err, taskq.ErrLeaseLost) { ... }
var (
	// ErrQueueNotFound: the queue does not exist.
	ErrQueueNotFound = sentinel(codes.NotFound, ReasonQueueNotFound)
	// ErrTaskNotFound: the task does not exist (finished, deleted, or never created).
	ErrTaskNotFound = sentinel(codes.NotFound, ReasonTaskNotFound)
	// ErrQueueAlreadyExists: a queue of that name exists.
	ErrQueueAlreadyExists = sentinel(codes.AlreadyExists, ReasonQueueAlreadyExists)
	// ErrTaskAlreadyExists: a task of that name exists.
	ErrTaskAlreadyExists = sentinel(codes.AlreadyExists, ReasonTaskAlreadyExists)
	// ErrTaskTombstoned: a task of that name finished within the queue's tombstone_ttl.
	ErrTaskTombstoned = sentinel(codes.AlreadyExists, ReasonTaskTombstoned)
	// ErrLeaseLost: the lease token no longer names the task's current lease: the lease
	// expired or was released, the task was leased again, or it is gone. It is also the
	// cause (context.Cause) of a handler's context cancelled because its lease is gone.
	ErrLeaseLost = sentinel(codes.FailedPrecondition, ReasonLeaseLost)
	// ErrQueuePaused: the queue is paused and hands out no tasks.
	ErrQueuePaused = sentinel(codes.FailedPrecondition, ReasonQueuePaused)
	// ErrWrongQueueType: the call is for the other queue type (LeaseTasks on a push queue).
	ErrWrongQueueType = sentinel(codes.FailedPrecondition, ReasonWrongQueueType)
	// ErrTaskLeased: the task is leased, so it cannot be re-run now.
	ErrTaskLeased = sentinel(codes.FailedPrecondition, ReasonTaskLeased)
)

// ErrClientClosed is returned by calls that need a client closed meanwhile.
var ErrClientClosed = errors.New("taskq: the client is closed")

// Error is a failed call: the canonical gRPC code, the server's message, and what the
// google.rpc.Status details said (ErrorInfo reason and metadata, BadRequest field
// violations, PreconditionFailure violations, RetryInfo delay).
type Error struct {
	code         codes.Code
	reason       string
	message      string
	metadata     map[string]string
	violations   []FieldViolation
	precondition []PreconditionViolation
	retryDelay   time.Duration
	status       *spb.Status
	cause        error // the context's error when the caller's context ended the call
}

// FieldViolation is one invalid request field, from a google.rpc.BadRequest detail.
type FieldViolation struct {
	// Field is the path of the field in the request, e.g. "task.schedule_time".
	Field       string
	Description string
	Reason      string
}

// PreconditionViolation is one failed precondition, from a google.rpc.PreconditionFailure.
type PreconditionViolation struct {
	Type        string
	Subject     string
	Description string
}

func sentinel(c codes.Code, reason string) *Error {
	return &Error{code: c, reason: reason, message: strings.ToLower(strings.ReplaceAll(reason, "_", " "))}
}

// Code is the canonical gRPC code.
func (e *Error) Code() codes.Code { return e.code }

// Reason is the stable ErrorInfo reason (e.g. "LEASE_LOST"), or "" when the error carries
// none (transport failures, deadlines).
func (e *Error) Reason() string { return e.reason }

// Message is the server's human-readable message.
func (e *Error) Message() string { return e.message }

// Metadata is the ErrorInfo metadata (e.g. {"queue": "queues/q"}); nil when there is none.
func (e *Error) Metadata() map[string]string { return e.metadata }

// FieldViolations are the invalid fields of an INVALID_ARGUMENT error.
func (e *Error) FieldViolations() []FieldViolation { return e.violations }

// PreconditionViolations are the failed preconditions of a FAILED_PRECONDITION error.
func (e *Error) PreconditionViolations() []PreconditionViolation { return e.precondition }

// RetryDelay is how long the server asks the caller to wait before retrying, if it said.
func (e *Error) RetryDelay() (time.Duration, bool) { return e.retryDelay, e.retryDelay > 0 }

// Proto is the google.rpc.Status the error was built from (nil for a sentinel).
func (e *Error) Proto() *spb.Status { return e.status }

// GRPCStatus lets status.FromError and status.Code read the error.
func (e *Error) GRPCStatus() *status.Status {
	if e.status != nil {
		return status.FromProto(e.status)
	}
	return status.New(e.code, e.message)
}

// Error reads "taskq: FAILED_PRECONDITION LEASE_LOST: <message>".
func (e *Error) Error() string {
	label := code.Code(e.code).String()
	if e.reason != "" {
		label += " " + e.reason
	}
	return "taskq: " + label + ": " + e.message
}

// Is reports whether target is an *Error with the same code and, if target has one, the
// same reason: errors.Is(err, taskq.ErrLeaseLost).
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	if !ok {
		return false
	}
	return e.code == t.code && (t.reason == "" || e.reason == t.reason)
}

// Unwrap returns context.Canceled or context.DeadlineExceeded when the caller's context
// ended the call, so errors.Is(err, context.Canceled) works.
func (e *Error) Unwrap() error { return e.cause }

// FromError converts an error of a gRPC call (a status error) into an *Error; other errors
// (nil included) are returned unchanged.
func FromError(err error) error {
	return convertError(nil, err)
}

// convertError is FromError that also records the caller's context error as the cause.
func convertError(ctx context.Context, err error) error {
	if err == nil {
		return nil
	}
	var already *Error
	if errors.As(err, &already) {
		return err
	}
	st, ok := status.FromError(err)
	if !ok {
		return err
	}
	e := FromStatus(st.Proto())
	if ctx != nil && ctx.Err() != nil && (e.code == codes.Canceled || e.code == codes.DeadlineExceeded) {
		e.cause = ctx.Err()
	}
	return e
}

// contextError is the *Error of a call its context ended before it was made or answered.
func contextError(ctx context.Context) error {
	return convertError(ctx, status.FromContextError(ctx.Err()).Err())
}

// FromStatus builds an *Error from a google.rpc.Status, such as the per-item results of
// BatchCreateTasks and BatchDeleteTasks. It returns nil for code OK.
func FromStatus(s *spb.Status) *Error {
	if s == nil || s.GetCode() == int32(codes.OK) {
		return nil
	}
	e := &Error{code: codes.Code(s.GetCode()), message: s.GetMessage(), status: s}
	for _, detail := range s.GetDetails() {
		message, err := detail.UnmarshalNew()
		if err != nil {
			continue // a detail type this client does not link: skip it
		}
		switch d := message.(type) {
		case *errdetails.ErrorInfo:
			e.reason = d.GetReason()
			e.metadata = d.GetMetadata()
		case *errdetails.BadRequest:
			for _, v := range d.GetFieldViolations() {
				e.violations = append(e.violations, FieldViolation{v.GetField(), v.GetDescription(), v.GetReason()})
			}
		case *errdetails.PreconditionFailure:
			for _, v := range d.GetViolations() {
				e.precondition = append(e.precondition, PreconditionViolation{v.GetType(), v.GetSubject(), v.GetDescription()})
			}
		case *errdetails.RetryInfo:
			e.retryDelay = d.GetRetryDelay().AsDuration()
		}
	}
	return e
}

// withoutFieldPrefix is the error with prefix removed from its field paths and message: a
// coalesced create's error names fields as a single CreateTask would ("task.tag", not
// "requests[3].task.tag").
func (e *Error) withoutFieldPrefix(prefix string) *Error {
	if len(e.violations) == 0 && !strings.Contains(e.message, prefix) {
		return e
	}
	clone := *e
	clone.message = strings.ReplaceAll(e.message, prefix, "")
	clone.violations = make([]FieldViolation, len(e.violations))
	for i, v := range e.violations {
		v.Field = strings.TrimPrefix(v.Field, prefix)
		clone.violations[i] = v
	}
	return &clone
}

// ReasonOf is the ErrorInfo reason of err if it is (or wraps) an *Error, else "".
func ReasonOf(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.reason
	}
	return ""
}

// CodeOf is the gRPC code of err: that of an *Error or status error, codes.OK for nil,
// codes.Unknown for any other error.
func CodeOf(err error) codes.Code {
	return status.Code(err)
}

// IsLeaseLost reports whether err is a refused lease token (reason LEASE_LOST).
func IsLeaseLost(err error) bool { return errors.Is(err, ErrLeaseLost) }

// IsNotFound reports whether err has code NOT_FOUND (a queue or a task).
func IsNotFound(err error) bool { return CodeOf(err) == codes.NotFound }

// IsAlreadyExists reports whether err has code ALREADY_EXISTS (a queue or task of that name
// exists, or a task name is still reserved).
func IsAlreadyExists(err error) bool { return CodeOf(err) == codes.AlreadyExists }

// IsUnavailable reports whether err has code UNAVAILABLE: the server could not be reached
// or is starting or stopping, even after the client's retries ([WithRetry]).
func IsUnavailable(err error) bool { return CodeOf(err) == codes.Unavailable }
