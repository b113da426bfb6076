package taskq

import (
	"context"
	"time"

	taskqv1 "github.com/taskq/taskq/clients/go/gen/taskq/v1"
)

// When a worker extends the leases it holds.
//
// A task reaches a worker leased for some time (a push queue's dispatch deadline, a pull
// worker's lease duration). While the worker holds it, waiting for a handler slot or
// running, the worker extends the lease before it runs out: by default when half of it is
// left, asking for the same length again, so that a late extension still leaves half a
// lease of margin.
//
// The lease length comes from the server's own timestamps (expiry minus dispatch time), so
// clock skew between the machines does not matter; due times are this machine's monotonic
// clock.

// fallbackLease is a pushed task's lease when the task says nothing of its length: the
// shortest dispatch deadline.
const fallbackLease = 15 * time.Second

// extensionRetry is how soon a failed extension is tried again (or the interval, if shorter).
const extensionRetry = time.Second

// leaseLength is the length of the lease the task was delivered with, by the server's clock.
func leaseLength(task *taskqv1.Task) time.Duration {
	if expire, dispatched := task.GetLeaseExpireTime(), task.GetLastAttempt().GetDispatchTime(); expire != nil && dispatched != nil {
		if length := expire.AsTime().Sub(dispatched.AsTime()); length > 0 {
			return length
		}
	}
	if deadline := task.GetDispatchDeadline(); deadline != nil && deadline.AsDuration() > 0 {
		return deadline.AsDuration()
	}
	return fallbackLease
}

// heldLease is a task a worker holds, and when its lease is next due for an extension.
// The worker's mutex guards its fields.
type heldLease struct {
	task *taskqv1.Task
	// length is what each extension asks for (the lease's original length).
	length time.Duration
	// interval is the time between extensions.
	interval time.Duration
	// due is when the next extension is due.
	due time.Time
	// lost is set once the server refused the lease (LEASE_LOST): no more extensions.
	lost bool
	// cancel ends the handler's context; nil until the handler starts.
	cancel context.CancelCauseFunc
}

// holdLease starts holding a task just received; interval 0 means half the lease.
func holdLease(task *taskqv1.Task, length, interval time.Duration) *heldLease {
	if interval <= 0 {
		interval = length / 2
	}
	return &heldLease{task: task, length: length, interval: interval, due: time.Now().Add(interval)}
}

// extended records an extension made now.
func (l *heldLease) extended(now time.Time) { l.due = now.Add(l.interval) }

// extensionFailed schedules another try soon.
func (l *heldLease) extensionFailed(now time.Time) { l.due = now.Add(min(l.interval, extensionRetry)) }

// lose marks the lease as gone and cancels its handler, if one runs, with cause.
func (l *heldLease) lose(cause error) {
	l.lost = true
	if l.cancel != nil {
		l.cancel(cause)
	}
}
