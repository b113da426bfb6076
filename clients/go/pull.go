package taskq

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/codes"

	taskqv1 "github.com/taskq/taskq/clients/go/gen/taskq/v1"
)

const (
	// maxLeaseDuration is the longest lease the server grants.
	maxLeaseDuration = 7 * 24 * time.Hour
	// maxWait is the longest long poll the server allows.
	maxWait = 60 * time.Second
	// callTimeout bounds the worker's own calls (extensions, releases, deletes).
	callTimeout = 30 * time.Second
	// leaseRetryInitial and leaseRetryMax bound the pause after a failed LeaseTasks.
	leaseRetryInitial = 100 * time.Millisecond
	leaseRetryMax     = 10 * time.Second
)

// PullOptions tune a [PullWorker]. Zero fields take the defaults.
type PullOptions struct {
	// LeaseDuration is how long each lease lasts; it is extended while the handler runs.
	// Default 60 s.
	LeaseDuration time.Duration
	// BatchSize is the most tasks per LeaseTasks call, 1 to 1000. Default 10.
	BatchSize int
	// Concurrency is the most handlers running at once. Default 8.
	Concurrency int
	// Tag leases only tasks of this tag; OldestTag only those with the oldest ready task's.
	Tag       string
	OldestTag bool
	// Wait is how long a LeaseTasks call waits for a task when none is ready (at most 60 s);
	// also the longest Run waits for the current call when stopping. Default 5 s.
	Wait time.Duration
	// GracePeriod is how long running handlers get to finish when ctx is cancelled. Default
	// 30 s; negative means none.
	GracePeriod time.Duration
	// ExtensionInterval is the time between lease extensions. Default: half LeaseDuration.
	ExtensionInterval time.Duration
	// AckDelay is how long a delete waits for others to share its BatchDeleteTasks call.
	// Default 5 ms.
	AckDelay time.Duration
	// Logger receives the worker's reports. Default slog.Default().
	Logger *slog.Logger
}

func (o PullOptions) withDefaults() PullOptions {
	if o.LeaseDuration <= 0 {
		o.LeaseDuration = 60 * time.Second
	}
	o.LeaseDuration = min(o.LeaseDuration, maxLeaseDuration)
	if o.BatchSize <= 0 {
		o.BatchSize = 10
	}
	o.BatchSize = min(o.BatchSize, maxBatchItems)
	if o.Concurrency <= 0 {
		o.Concurrency = 8
	}
	if o.Wait <= 0 {
		o.Wait = 5 * time.Second
	}
	o.Wait = min(o.Wait, maxWait)
	if o.GracePeriod == 0 {
		o.GracePeriod = 30 * time.Second
	}
	o.GracePeriod = max(o.GracePeriod, 0)
	if o.AckDelay <= 0 {
		o.AckDelay = 5 * time.Millisecond
	}
	o.Logger = loggerOr(o.Logger)
	return o
}

// PullWorker runs a [Handler] for each task of a pull queue: it leases at most as many tasks
// as it has free handler slots (long-polling when none is ready), runs the handlers, and
// extends each task's lease while its handler runs.
//
//   - A handler that returns nil has its task deleted (acknowledged); deletes made within
//     AckDelay of each other share one BatchDeleteTasks call.
//   - A handler that returns an error has its task released at once (ModifyLease 0): it is
//     ready for the next lease, with one more attempt counted. Pull queues have no backoff
//     of their own; [Retry] / [RetryAfter] keep the task leased until the delay has passed
//     instead. A task that keeps failing is bounded by the queue's max_attempts (then it
//     fails or moves to the dead-letter queue); pull queues have no permanent failure, so
//     [Permanent] errors are released like others.
//   - When Run's ctx is cancelled, leasing stops after the current call (at most Wait);
//     running handlers get GracePeriod to finish and their tasks are deleted; tasks leased
//     meanwhile, and those whose handlers outlast the grace period, are released at once.
type PullWorker struct {
	client  *Client
	queue   string
	handler Handler
	options PullOptions
	running atomic.Bool
}

// NewPullWorker returns a worker for a pull queue (an id or full name). Start it with
// [PullWorker.Run].
func NewPullWorker(client *Client, queue string, handler Handler, options PullOptions) *PullWorker {
	return &PullWorker{client: client, queue: QueueName(queue), handler: handler, options: options.withDefaults()}
}

// Run leases and handles tasks until ctx is cancelled, then stops gracefully and returns nil.
// It returns an error early only for a failure that retrying cannot cure: the queue does not
// exist, or is a push queue ([ErrWrongQueueType]).
func (p *PullWorker) Run(ctx context.Context) error {
	if !p.running.CompareAndSwap(false, true) {
		return errors.New("taskq: the pull worker is already running")
	}
	defer p.running.Store(false)
	r := &pullRun{
		PullWorker:   p,
		ctx:          ctx,
		logger:       p.options.Logger.With("queue", p.queue),
		slots:        make(chan struct{}, p.options.Concurrency),
		held:         map[string]*heldLease{},
		newLease:     make(chan struct{}, 1),
		stopExtender: make(chan struct{}),
	}
	r.deletes = newBatcher(BatchSettings{MaxDelay: p.options.AckDelay, MaxItems: maxBatchItems}.withDefaults(),
		r.sendDeletes, func(*taskqv1.DeleteTaskRequest) int { return 0 })
	r.extender.Add(1)
	go r.extend()
	err := r.leaseUntilStopped()
	r.stop()
	return err
}

// pullRun is the state of one Run.
type pullRun struct {
	*PullWorker
	ctx    context.Context
	logger *slog.Logger
	slots  chan struct{}
	// handlers counts handler goroutines, with their delete or release.
	handlers sync.WaitGroup
	deletes  *batcher[*taskqv1.DeleteTaskRequest, struct{}]

	mu sync.Mutex
	// held is every task leased and not yet done with, by name.
	held map[string]*heldLease

	newLease     chan struct{}
	stopExtender chan struct{}
	extender     sync.WaitGroup
}

func (r *pullRun) leaseUntilStopped() error {
	backoff := leaseRetryInitial
	for {
		// One free slot at least, then as many more as are free, up to a batch.
		select {
		case r.slots <- struct{}{}:
		case <-r.ctx.Done():
			return nil
		}
		free := 1
	more:
		for free < r.options.BatchSize {
			select {
			case r.slots <- struct{}{}:
				free++
			default:
				break more
			}
		}
		tasks, err := r.lease(free)
		if len(tasks) > free { // never: the server leases at most max_tasks
			r.release(tasks[free:])
			tasks = tasks[:free]
		}
		for range free - len(tasks) {
			<-r.slots
		}
		if err != nil {
			if isFatalLeaseError(err) {
				r.logger.Error("taskq: cannot lease from the queue; the worker stops", "error", err)
				return err
			}
			delay := time.Duration(float64(backoff) * (0.5 + rand.Float64()/2))
			if errors.Is(err, ErrQueuePaused) {
				delay = r.options.Wait
			}
			r.logger.Warn("taskq: leasing failed; trying again", "error", err, "delay", delay)
			if !sleepCtx(r.ctx, delay) {
				return nil
			}
			backoff = min(2*backoff, leaseRetryMax)
			continue
		}
		backoff = leaseRetryInitial
		if r.ctx.Err() != nil {
			r.release(tasks) // leased during the last poll: someone else's now
			for range tasks {
				<-r.slots
			}
			return nil
		}
		for _, task := range tasks {
			r.start(task)
		}
	}
}

// lease makes one LeaseTasks call. It is not cut short by Run's ctx: tasks leased by a call
// cancelled in flight would stay leased, unseen, until their leases expire.
func (r *pullRun) lease(n int) ([]*taskqv1.Task, error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.ctx), r.options.Wait+callTimeout)
	defer cancel()
	return r.client.LeaseTasks(ctx, r.queue, LeaseOptions{
		Duration:  r.options.LeaseDuration,
		MaxTasks:  int32(n),
		Tag:       r.options.Tag,
		OldestTag: r.options.OldestTag,
		Wait:      r.options.Wait,
	})
}

// start runs the task's handler in a goroutine holding one (already taken) slot.
func (r *pullRun) start(task *taskqv1.Task) {
	lease := holdLease(task, r.options.LeaseDuration, r.options.ExtensionInterval)
	ctx, cancel := context.WithCancelCause(context.WithoutCancel(r.ctx))
	lease.cancel = cancel
	r.mu.Lock()
	r.held[task.GetName()] = lease
	r.mu.Unlock()
	notify(r.newLease)

	r.handlers.Add(1)
	go func() {
		defer r.handlers.Done()
		err := callHandler(ctx, r.handler, task, r.logger)
		stillHeld := r.forget(lease)
		<-r.slots
		cancel(context.Canceled)
		if !stillHeld {
			r.logger.Info("taskq: a handler finished after its lease was gone; its answer is dropped",
				"task", task.GetName())
			return
		}
		callCtx, cancelCall := context.WithTimeout(context.WithoutCancel(r.ctx), callTimeout)
		defer cancelCall()
		if err == nil {
			request := &taskqv1.DeleteTaskRequest{Name: task.GetName(), LeaseToken: task.GetLeaseToken()}
			if _, err := r.deletes.submit(callCtx, r.queue, request); err != nil {
				r.logger.Warn("taskq: deleting a done task failed", "task", task.GetName(), "error", err)
			}
			return
		}
		logFailure(r.logger, task.GetName(), err)
		after, _ := RetryDelayOf(err)
		if IsPermanent(err) {
			after = 0
		}
		if _, err := r.client.ModifyLease(callCtx, task.GetName(), task.GetLeaseToken(), min(after, maxLeaseDuration)); err != nil {
			r.logger.Warn("taskq: releasing a failed task failed", "task", task.GetName(), "error", err)
		}
	}()
}

// forget stops holding the lease; false if the worker had already given it up.
func (r *pullRun) forget(lease *heldLease) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	name := lease.task.GetName()
	if r.held[name] != lease {
		return false
	}
	delete(r.held, name)
	return true
}

// release gives tasks back at once.
func (r *pullRun) release(tasks []*taskqv1.Task) {
	for _, task := range tasks {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(r.ctx), callTimeout)
		if err := r.client.Release(ctx, task); err != nil {
			r.logger.Warn("taskq: releasing a task failed", "task", task.GetName(), "error", err)
		}
		cancel()
	}
}

// stop lets running handlers finish within the grace period, releases the tasks of those
// that do not, sends the pending deletes and stops the extender.
func (r *pullRun) stop() {
	if !waitTimeout(&r.handlers, r.options.GracePeriod) {
		r.mu.Lock()
		overdue := make([]*taskqv1.Task, 0, len(r.held))
		for name, lease := range r.held {
			lease.lose(ErrGracePeriodExpired)
			overdue = append(overdue, lease.task)
			delete(r.held, name)
		}
		r.mu.Unlock()
		r.logger.Warn("taskq: handlers still running after the grace period; their tasks are released",
			"count", len(overdue), "grace_period", r.options.GracePeriod)
		r.release(overdue)
	}
	r.deletes.close()
	close(r.stopExtender)
	r.extender.Wait()
}

// extend extends the lease of each held task when it is due, until the worker stops.
func (r *pullRun) extend() {
	defer r.extender.Done()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		now := time.Now()
		next := now.Add(time.Hour)
		var due []*heldLease
		r.mu.Lock()
		for _, lease := range r.held {
			if lease.lost {
				continue
			}
			if !lease.due.After(now) {
				due = append(due, lease)
			} else if lease.due.Before(next) {
				next = lease.due
			}
		}
		r.mu.Unlock()
		for _, lease := range due {
			r.extendOne(lease)
			r.mu.Lock()
			if lease.due.Before(next) {
				next = lease.due
			}
			r.mu.Unlock()
		}
		timer.Reset(time.Until(next))
		select {
		case <-timer.C:
		case <-r.newLease:
		case <-r.stopExtender:
			return
		}
	}
}

func (r *pullRun) extendOne(lease *heldLease) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.ctx), callTimeout)
	defer cancel()
	task := lease.task
	_, err := r.client.ModifyLease(ctx, task.GetName(), task.GetLeaseToken(), lease.length)
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case err == nil:
		lease.extended(time.Now())
	case IsLeaseLost(err) || errors.Is(err, ErrTaskNotFound):
		if r.held[task.GetName()] == lease { // not finished meanwhile
			r.logger.Warn("taskq: lost the lease of a task while its handler runs", "task", task.GetName(), "error", err)
			delete(r.held, task.GetName())
			lease.lose(ErrLeaseLost)
		}
	default:
		r.logger.Warn("taskq: extending a lease failed; trying again", "task", task.GetName(), "error", err)
		lease.extensionFailed(time.Now())
	}
}

// sendDeletes is the delete batcher's call: one BatchDeleteTasks.
func (r *pullRun) sendDeletes(ctx context.Context, parent string, items []*taskqv1.DeleteTaskRequest) ([]outcome[struct{}], error) {
	errs, err := r.client.deleteTasks(ctx, &taskqv1.BatchDeleteTasksRequest{Parent: parent, Requests: items})
	if err != nil {
		return nil, err
	}
	outcomes := make([]outcome[struct{}], len(errs))
	for i, e := range errs {
		outcomes[i].err = e
	}
	return outcomes, nil
}

// isFatalLeaseError reports whether a LeaseTasks failure is one that retrying cannot cure.
func isFatalLeaseError(err error) bool {
	switch CodeOf(err) {
	case codes.NotFound, codes.InvalidArgument, codes.PermissionDenied, codes.Unauthenticated, codes.Unimplemented:
		return true
	case codes.FailedPrecondition:
		return !errors.Is(err, ErrQueuePaused)
	}
	return false
}
