package taskq

import (
	"context"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
	"time"

	taskqv1 "github.com/taskq/taskq/clients/go/gen/taskq/v1"
)

// Handler does the work of one task. Returning nil acknowledges the task (it is deleted);
// returning an error fails it: see [Permanent], [Retry] and [RetryAfter] for how the task is
// retried. A panic fails the task like an error.
//
// The task carries its name, payload, attributes, attempt_count and lease. Its lease is
// extended while the handler runs. ctx is cancelled when the handler's answer can no longer
// count: context.Cause(ctx) is [ErrLeaseLost] when the lease is gone (the stream broke, or
// the server refused an extension) and [ErrGracePeriodExpired] when the worker stopped and
// the grace period ran out. Delivery is at least once: make handlers idempotent.
type Handler func(ctx context.Context, task *taskqv1.Task) error

// callHandler runs the handler in its span (tracing.go), turning a panic into an error.
func callHandler(ctx context.Context, handler Handler, task *taskqv1.Task, logger *slog.Logger) (err error) {
	ctx, span := startHandlerSpan(ctx, task)
	// Deferred first so that it runs last: a panic has become err by then.
	defer func() { endHandlerSpan(span, err) }()
	defer func() {
		if recovered := recover(); recovered != nil {
			logger.Error("taskq: handler panicked", "task", task.GetName(), "panic", recovered, "stack", string(debug.Stack()))
			err = fmt.Errorf("panic: %v", recovered)
		}
	}()
	return handler(ctx, task)
}

// waitTimeout waits for wg up to d; it reports whether everything finished.
func waitTimeout(wg *sync.WaitGroup, d time.Duration) bool {
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	if d <= 0 {
		select {
		case <-done:
			return true
		default:
			return false
		}
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-done:
		return true
	case <-timer.C:
		return false
	}
}

// sleepCtx waits d or until ctx ends; it reports whether the full time passed.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// loggerOr is logger, or slog.Default() if nil.
func loggerOr(logger *slog.Logger) *slog.Logger {
	if logger != nil {
		return logger
	}
	return slog.Default()
}

// logFailure reports a handler's error, and how the task will be retried.
func logFailure(logger *slog.Logger, name string, err error) {
	if IsPermanent(err) {
		logger.Warn("taskq: task failed permanently", "task", name, "error", err)
	} else if after, ok := RetryDelayOf(err); ok {
		logger.Info("taskq: task will be retried", "task", name, "after", after, "error", err)
	} else {
		logger.Warn("taskq: task failed", "task", name, "error", err)
	}
}
