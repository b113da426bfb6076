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
)

// WorkerOptions tune a [Worker]. Zero fields take the defaults.
type WorkerOptions struct {
	// Concurrency is the most handlers running at once. Default 8.
	Concurrency int
	// MaxOutstanding is how many tasks the server may send ahead of the answers (running
	// plus waiting for a slot), at most 10,000. Default twice Concurrency, so that a freed
	// slot never waits for a round trip.
	MaxOutstanding int
	// GracePeriod is how long running handlers get to finish when ctx is cancelled. Default
	// 30 s; negative means none.
	GracePeriod time.Duration
	// ExtensionInterval is the time between extensions of a held task's lease. Default: half
	// the lease (the queue's dispatch deadline).
	ExtensionInterval time.Duration
	// AnswerDelay is how long an answer (ack, nack, extension) waits for others to share its
	// stream message. Default 5 ms.
	AnswerDelay time.Duration
	// MinReconnectDelay and MaxReconnectDelay bound the backoff between subscriptions after
	// the stream fails: it starts at the minimum (default 100 ms) and doubles up to the
	// maximum (default 10 s), with jitter.
	MinReconnectDelay time.Duration
	MaxReconnectDelay time.Duration
	// Logger receives the worker's reports (stream failures, handler failures). Default
	// slog.Default().
	Logger *slog.Logger
}

func (o WorkerOptions) withDefaults() WorkerOptions {
	if o.Concurrency <= 0 {
		o.Concurrency = 8
	}
	if o.MaxOutstanding <= 0 {
		o.MaxOutstanding = 2 * o.Concurrency
	}
	o.MaxOutstanding = min(o.MaxOutstanding, 10_000)
	if o.GracePeriod == 0 {
		o.GracePeriod = 30 * time.Second
	}
	o.GracePeriod = max(o.GracePeriod, 0)
	if o.AnswerDelay <= 0 {
		o.AnswerDelay = 5 * time.Millisecond
	}
	if o.MinReconnectDelay <= 0 {
		o.MinReconnectDelay = 100 * time.Millisecond
	}
	if o.MaxReconnectDelay <= 0 {
		o.MaxReconnectDelay = 10 * time.Second
	}
	o.MaxReconnectDelay = max(o.MaxReconnectDelay, o.MinReconnectDelay)
	o.Logger = loggerOr(o.Logger)
	return o
}

// Worker runs a [Handler] for each task of a push queue, delivered over a StreamTasks
// stream:
//
//   - at most Concurrency handlers run at once; the server sends at most MaxOutstanding
//     tasks ahead;
//   - while a task is held (waiting or running) its lease is extended;
//   - a handler that returns nil acks its task; one that returns an error nacks it with the
//     error's text ([Permanent], [Retry], [RetryAfter] choose how it is retried); answers
//     made within AnswerDelay of each other share one stream message;
//   - when the stream fails (the server restarts, the network drops), the worker subscribes
//     again with backoff. The server has released the old stream's tasks by then: handlers
//     still running for them are cancelled (cause [ErrLeaseLost]) and their answers dropped;
//   - when Run's ctx is cancelled, no new task starts, running handlers get GracePeriod to
//     finish and their answers are sent, then the stream ends and the server releases at
//     once the tasks received but not started (each release counts as an attempt).
type Worker struct {
	client  *Client
	queue   string
	handler Handler
	options WorkerOptions
	running atomic.Bool
}

// NewWorker returns a worker for a push queue (an id or full name). Start it with
// [Worker.Run].
func NewWorker(client *Client, queue string, handler Handler, options WorkerOptions) *Worker {
	return &Worker{client: client, queue: QueueName(queue), handler: handler, options: options.withDefaults()}
}

// Run receives and handles tasks until ctx is cancelled, then stops gracefully and returns
// nil. It returns an error early only for a failure that retrying cannot cure: the queue does
// not exist (or was deleted), is a pull queue ([ErrWrongQueueType]), or the server refuses
// the subscription. A Worker runs once at a time; it may be run again after Run returns.
func (w *Worker) Run(ctx context.Context) error {
	if !w.running.CompareAndSwap(false, true) {
		return errors.New("taskq: the worker is already running")
	}
	defer w.running.Store(false)
	run := &workerRun{
		Worker: w,
		ctx:    ctx,
		logger: w.options.Logger.With("queue", w.queue),
		slots:  make(chan struct{}, w.options.Concurrency),
	}
	return run.subscribeUntilStopped()
}

// workerRun is the state of one Run.
type workerRun struct {
	*Worker
	ctx    context.Context
	logger *slog.Logger
	// slots holds a token per running handler.
	slots chan struct{}
	// handlers counts running handler goroutines, of any session.
	handlers sync.WaitGroup
}

func (r *workerRun) subscribeUntilStopped() error {
	backoff := r.options.MinReconnectDelay
	for {
		if r.ctx.Err() != nil {
			r.waitForCancelledHandlers()
			return nil
		}
		session, err := r.openSession()
		if err == nil {
			if stopped := session.serve(); stopped {
				r.stopGracefully(session)
				return nil
			}
			err = session.failure()
			session.close(ErrLeaseLost)
			if session.heardFromServer.Load() {
				backoff = r.options.MinReconnectDelay
			}
		}
		if isFatalStreamError(err) {
			r.logger.Error("taskq: the queue's stream cannot be opened; the worker stops", "error", err)
			r.waitForCancelledHandlers()
			return err
		}
		delay := time.Duration(float64(backoff) * (0.5 + rand.Float64()/2))
		if err != nil {
			r.logger.Warn("taskq: the task stream failed; subscribing again", "error", err, "delay", delay)
		} else {
			r.logger.Warn("taskq: the server ended the task stream; subscribing again", "delay", delay)
		}
		if !sleepCtx(r.ctx, delay) {
			r.waitForCancelledHandlers()
			return nil
		}
		backoff = min(2*backoff, r.options.MaxReconnectDelay)
	}
}

// stopGracefully lets running handlers finish within the grace period, sends their answers
// and ends the stream.
func (r *workerRun) stopGracefully(session *streamSession) {
	if !waitTimeout(&r.handlers, r.options.GracePeriod) {
		r.logger.Warn("taskq: handlers still running after the grace period; their tasks are released",
			"grace_period", r.options.GracePeriod)
		session.abandon(ErrGracePeriodExpired)
	}
	session.drain()
}

// waitForCancelledHandlers gives handlers of ended streams (already cancelled) the grace
// period to return.
func (r *workerRun) waitForCancelledHandlers() {
	if !waitTimeout(&r.handlers, r.options.GracePeriod) {
		r.logger.Warn("taskq: handlers ignored their context's cancellation past the grace period")
	}
}

// isFatalStreamError reports whether a stream failure is one that subscribing again cannot
// cure.
func isFatalStreamError(err error) bool {
	if err == nil {
		return false
	}
	switch CodeOf(err) {
	case codes.NotFound, codes.FailedPrecondition, codes.InvalidArgument, codes.PermissionDenied,
		codes.Unauthenticated, codes.Unimplemented:
		return true
	}
	return false
}
