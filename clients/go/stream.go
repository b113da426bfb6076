package taskq

import (
	"context"
	"errors"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/durationpb"

	taskqv1 "github.com/taskq/taskq/clients/go/gen/taskq/v1"
)

// One StreamTasks stream of a push Worker, from subscription to its end.
//
// While the stream lasts, three goroutines share it:
//
//   - the receiver takes the server's messages: tasks go to the backlog (received, not
//     started), refused answers are logged (and a lost lease cancels its handler),
//     heartbeats only prove the stream alive;
//   - the starter hands backlog tasks to handlers as slots free up;
//   - the extender extends the lease of every task still held when it is due.
//
// Answers go out in batches (see answerLocked). A task belongs to the stream that delivered
// it: the server releases a stream's tasks when it ends, so answers for them after that are
// dropped, and a new stream starts with an empty backlog.

// endOfStreamTimeout is how long a draining worker waits for the server to close the stream
// after its half-close.
const endOfStreamTimeout = 10 * time.Second

// maxAnswersPerMessage sends the pending answers at once when this many have gathered.
const maxAnswersPerMessage = 500

type taskStream = grpc.BidiStreamingClient[taskqv1.StreamTasksRequest, taskqv1.StreamTasksResponse]

type leaseKey struct{ name, token string }

func keyOf(name, token string) leaseKey { return leaseKey{name, token} }

type streamSession struct {
	run    *workerRun
	stream taskStream
	cancel context.CancelFunc // ends the stream's context

	mu sync.Mutex
	// held is every task received and not yet answered.
	held    map[leaseKey]*heldLease
	backlog []*heldLease
	// open is false once answers can no longer count (the stream ended or was abandoned).
	open       bool
	acks       []*taskqv1.TaskAck
	nacks      []*taskqv1.TaskNack
	extensions []*taskqv1.LeaseExtension
	flushTimer *time.Timer

	// sendMu serializes sends (and keeps answer messages in order).
	sendMu sync.Mutex

	newTask         chan struct{} // wakes the starter
	newLease        chan struct{} // wakes the extender
	received        chan struct{} // closed when the receiver has returned
	receiveErr      error         // why it returned; nil for a clean end of stream
	heardFromServer atomic.Bool
	stopExtender    chan struct{}
	extender        sync.WaitGroup
	shutdownOnce    sync.Once
}

// openSession opens a stream and subscribes.
func (r *workerRun) openSession() (*streamSession, error) {
	// The stream outlives ctx's cancellation: a graceful stop still sends answers on it.
	ctx, cancel := context.WithCancel(context.WithoutCancel(r.ctx))
	stream, err := r.client.tasks.StreamTasks(ctx)
	if err != nil {
		cancel()
		return nil, convertError(nil, err)
	}
	s := &streamSession{
		run:          r,
		stream:       stream,
		cancel:       cancel,
		held:         map[leaseKey]*heldLease{},
		open:         true,
		newTask:      make(chan struct{}, 1),
		newLease:     make(chan struct{}, 1),
		received:     make(chan struct{}),
		stopExtender: make(chan struct{}),
	}
	subscription := &taskqv1.StreamTasksRequest{Subscription: &taskqv1.StreamSubscription{
		Queue: r.queue, MaxOutstanding: int32(r.options.MaxOutstanding),
	}}
	// A failed send means the stream has ended: the receiver reports why.
	_ = stream.Send(subscription)
	return s, nil
}

// serve runs the stream until Run's ctx is cancelled (true: the stream is still open, to be
// drained) or the stream ends (false: failure says why).
func (s *streamSession) serve() bool {
	go s.receive()
	s.extender.Add(1)
	go s.extend()
	stopStarter := make(chan struct{})
	starterDone := make(chan struct{})
	go func() {
		defer close(starterDone)
		s.startFromBacklog(stopStarter)
	}()
	stopped := false
	select {
	case <-s.run.ctx.Done():
		stopped = true
	case <-s.received:
	}
	close(stopStarter)
	<-starterDone
	return stopped
}

// failure is why the stream ended: nil when the server closed it cleanly.
func (s *streamSession) failure() error {
	<-s.received
	return convertError(nil, s.receiveErr)
}

func (s *streamSession) receive() {
	defer close(s.received)
	for {
		response, err := s.stream.Recv()
		if err != nil {
			if !errors.Is(err, io.EOF) {
				s.receiveErr = err
			}
			return
		}
		s.heardFromServer.Store(true)
		if tasks := response.GetTasks(); len(tasks) > 0 {
			s.mu.Lock()
			for _, task := range tasks {
				lease := holdLease(task, leaseLength(task), s.run.options.ExtensionInterval)
				s.held[keyOf(task.GetName(), task.GetLeaseToken())] = lease
				s.backlog = append(s.backlog, lease)
			}
			s.mu.Unlock()
			notify(s.newTask)
			notify(s.newLease)
		}
		for _, refused := range response.GetErrors() {
			s.refused(refused)
		}
	}
}

// refused handles an answer the server could not apply.
func (s *streamSession) refused(refused *taskqv1.StreamError) {
	e := FromStatus(refused.GetStatus())
	s.run.logger.Warn("taskq: the server refused an answer", "task", refused.GetName(), "error", e)
	if e == nil {
		return
	}
	if e.Code() != codes.FailedPrecondition && e.Code() != codes.NotFound {
		return
	}
	// The lease is gone: stop extending it, and tell its handler.
	s.mu.Lock()
	defer s.mu.Unlock()
	key := keyOf(refused.GetName(), refused.GetLeaseToken())
	if lease := s.held[key]; lease != nil {
		delete(s.held, key)
		lease.lose(ErrLeaseLost)
	}
}

// startFromBacklog starts handlers for backlog tasks as slots free up, until stop.
func (s *streamSession) startFromBacklog(stop <-chan struct{}) {
	for {
		lease := s.nextFromBacklog(stop)
		if lease == nil {
			return
		}
		select {
		case s.run.slots <- struct{}{}:
		case <-stop:
			return // not started: the task stays held, and the stream's end releases it
		}
		if !s.start(lease) {
			<-s.run.slots
		}
	}
}

// nextFromBacklog is the oldest backlog task whose lease is still held, waiting for one
// until stop.
func (s *streamSession) nextFromBacklog(stop <-chan struct{}) *heldLease {
	for {
		s.mu.Lock()
		for len(s.backlog) > 0 {
			lease := s.backlog[0]
			s.backlog[0] = nil
			s.backlog = s.backlog[1:]
			if !lease.lost {
				s.mu.Unlock()
				return lease
			}
		}
		s.mu.Unlock()
		select {
		case <-s.newTask:
		case <-stop:
			return nil
		}
	}
}

// start runs the task's handler in a goroutine that holds a slot; false if the lease is
// already gone.
func (s *streamSession) start(lease *heldLease) bool {
	r := s.run
	s.mu.Lock()
	if !s.open || lease.lost {
		s.mu.Unlock()
		return false
	}
	ctx, cancel := context.WithCancelCause(context.WithoutCancel(r.ctx))
	lease.cancel = cancel
	s.mu.Unlock()

	r.handlers.Add(1)
	go func() {
		defer r.handlers.Done()
		task := lease.task
		err := callHandler(ctx, r.handler, task, r.logger)
		var accepted bool
		if err == nil {
			accepted = s.finish(lease, &taskqv1.TaskAck{Name: task.GetName(), LeaseToken: task.GetLeaseToken()}, nil)
		} else if accepted = s.finish(lease, nil, nackFor(task, err)); accepted {
			logFailure(r.logger, task.GetName(), err)
		}
		if !accepted {
			r.logger.Info("taskq: a handler finished after its lease was gone; its answer is dropped",
				"task", task.GetName())
		}
		<-r.slots
		cancel(context.Canceled)
	}()
	return true
}

// finish queues a handler's answer; false if it can no longer count (the lease is gone).
func (s *streamSession) finish(lease *heldLease, ack *taskqv1.TaskAck, nack *taskqv1.TaskNack) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	key := keyOf(lease.task.GetName(), lease.task.GetLeaseToken())
	if !s.open || s.held[key] != lease {
		return false
	}
	delete(s.held, key)
	if ack != nil {
		s.acks = append(s.acks, ack)
	} else {
		s.nacks = append(s.nacks, nack)
	}
	s.answerLocked()
	return true
}

// extend extends the leases of held tasks when they are due, until the session shuts down.
func (s *streamSession) extend() {
	defer s.extender.Done()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		now := time.Now()
		next := now.Add(time.Hour)
		s.mu.Lock()
		for _, lease := range s.held {
			if lease.lost {
				continue
			}
			if !lease.due.After(now) && s.open {
				s.extensions = append(s.extensions, &taskqv1.LeaseExtension{
					Name: lease.task.GetName(), LeaseToken: lease.task.GetLeaseToken(),
					LeaseDuration: durationpb.New(lease.length),
				})
				lease.extended(now)
			}
			if lease.due.Before(next) {
				next = lease.due
			}
		}
		if len(s.extensions) > 0 {
			s.answerLocked()
		}
		s.mu.Unlock()
		timer.Reset(time.Until(next))
		select {
		case <-timer.C:
		case <-s.newLease:
		case <-s.stopExtender:
			return
		}
	}
}

// answerLocked schedules the pending answers to go out: after AnswerDelay, so that answers
// made meanwhile share the message, or at once when many have gathered.
func (s *streamSession) answerLocked() {
	if len(s.acks)+len(s.nacks)+len(s.extensions) >= maxAnswersPerMessage {
		if s.flushTimer != nil {
			s.flushTimer.Stop()
			s.flushTimer = nil
		}
		go s.flush()
		return
	}
	if s.flushTimer == nil {
		s.flushTimer = time.AfterFunc(s.run.options.AnswerDelay, s.flush)
	}
}

// flush sends the pending answers now, in one message.
func (s *streamSession) flush() {
	s.sendMu.Lock()
	defer s.sendMu.Unlock()
	s.mu.Lock()
	if s.flushTimer != nil {
		s.flushTimer.Stop()
		s.flushTimer = nil
	}
	request := &taskqv1.StreamTasksRequest{Acks: s.acks, Nacks: s.nacks, LeaseExtensions: s.extensions}
	s.acks, s.nacks, s.extensions = nil, nil, nil
	s.mu.Unlock()
	if len(request.Acks)+len(request.Nacks)+len(request.LeaseExtensions) == 0 {
		return
	}
	if err := s.stream.Send(request); err != nil {
		// The stream broke: the receiver sees why, and the worker subscribes again. The
		// server releases this stream's tasks, so these answers are moot.
		s.run.logger.Debug("taskq: answers not sent, the stream ended", "error", err)
	}
}

// abandon gives up on the handlers still running after the grace period: their answers
// will be dropped, and their contexts are cancelled with cause.
func (s *streamSession) abandon(cause error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.open = false
	for _, lease := range s.held {
		if lease.cancel != nil {
			lease.lose(cause)
		}
	}
}

// drain ends the stream on purpose: sends the pending answers, half-closes, and waits for
// the server to release what is left and close.
func (s *streamSession) drain() {
	s.flush()
	s.mu.Lock()
	s.open = false
	s.mu.Unlock()
	s.sendMu.Lock()
	err := s.stream.CloseSend()
	s.sendMu.Unlock()
	if err == nil {
		select {
		case <-s.received:
			if s.receiveErr != nil {
				s.run.logger.Warn("taskq: the stream did not end cleanly", "error", convertError(nil, s.receiveErr))
			}
		case <-time.After(endOfStreamTimeout):
			s.run.logger.Warn("taskq: the server did not close the stream in time")
		}
	}
	s.shutdown()
}

// close drops a stream that has failed: every held lease is gone (handlers are cancelled with
// cause) and pending answers are dropped.
func (s *streamSession) close(cause error) {
	s.mu.Lock()
	s.open = false
	for key, lease := range s.held {
		lease.lose(cause)
		delete(s.held, key)
	}
	s.backlog = nil
	s.acks, s.nacks, s.extensions = nil, nil, nil
	s.mu.Unlock()
	s.shutdown()
}

// shutdown cancels the stream and stops the session's goroutines.
func (s *streamSession) shutdown() {
	s.shutdownOnce.Do(func() {
		s.cancel()
		close(s.stopExtender)
		s.extender.Wait()
		<-s.received
		s.mu.Lock()
		if s.flushTimer != nil {
			s.flushTimer.Stop()
			s.flushTimer = nil
		}
		s.mu.Unlock()
	})
}

// notify wakes a goroutine waiting on ch, without blocking.
func notify(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}
