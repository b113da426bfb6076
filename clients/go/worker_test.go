package taskq_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	taskq "github.com/taskq/taskq/clients/go"
	taskqv1 "github.com/taskq/taskq/clients/go/gen/taskq/v1"
	"github.com/taskq/taskq/clients/go/internal/testserver"
)

// received records the tasks a handler saw, by name.
type received struct {
	mu    sync.Mutex
	names map[string]int
	total atomic.Int64
}

func newReceived() *received { return &received{names: map[string]int{}} }

func (r *received) add(task *taskqv1.Task) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.names[task.GetName()]++
	r.total.Add(1)
	return r.names[task.GetName()]
}

func (r *received) distinct() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.names)
}

func TestWorkerHandlesAndAcksPushedTasks(t *testing.T) {
	counter := newRPCCounter()
	client := dial(t, taskq.WithDialOptions(counter.interceptor()))
	ctx := testContext(t)
	queue := newQueue(t, client, taskq.QueueConfig{Type: taskq.PushQueue})
	const n = 50
	payloads := map[string]bool{}
	for i := range n {
		payload := fmt.Sprintf("job %d", i)
		payloads[payload] = true
		if _, err := client.CreateTask(ctx, queue, taskq.TaskSpec{Payload: []byte(payload)}); err != nil {
			t.Fatalf("CreateTask: %v", err)
		}
	}

	seen := newReceived()
	var mu sync.Mutex
	var running, peak int
	handler := func(ctx context.Context, task *taskqv1.Task) error {
		mu.Lock()
		running++
		peak = max(peak, running)
		if !payloads[string(task.GetPayload())] {
			t.Errorf("unexpected payload %q", task.GetPayload())
		}
		mu.Unlock()
		time.Sleep(10 * time.Millisecond)
		mu.Lock()
		running--
		mu.Unlock()
		seen.add(task)
		return nil
	}
	worker := taskq.NewWorker(client, queue, handler, taskq.WorkerOptions{Concurrency: 4, Logger: logger()})
	stop := runWorker(t, worker.Run)
	eventually(t, 20*time.Second, "every task handled", func() bool { return seen.distinct() == n })
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}

	if peak > 4 || peak < 2 {
		t.Errorf("at most %d handlers ran at once, want 2 to 4 (Concurrency 4)", peak)
	}
	if seen.total.Load() != n {
		t.Errorf("%d deliveries for %d tasks, want each once", seen.total.Load(), n)
	}
	// Run returns after its acks are applied: nothing is left.
	if s := stats(t, client, queue); s.GetTasksCount() != 0 {
		t.Errorf("after the worker stopped, the queue still has %v", s)
	}
}

func TestWorkerSendsAnswersTogether(t *testing.T) {
	counter := newRPCCounter()
	client := dial(t, taskq.WithDialOptions(counter.streamInterceptor()))
	ctx := testContext(t)
	queue := newQueue(t, client, taskq.QueueConfig{Type: taskq.PushQueue})
	const n = 200
	if _, err := client.CreateTasks(ctx, queue, make([]taskq.TaskSpec, n)); err != nil {
		t.Fatalf("CreateTasks: %v", err)
	}
	seen := newReceived()
	worker := taskq.NewWorker(client, queue, func(ctx context.Context, task *taskqv1.Task) error {
		seen.add(task)
		return nil
	}, taskq.WorkerOptions{Concurrency: 50, MaxOutstanding: 200, AnswerDelay: 20 * time.Millisecond, Logger: logger()})
	stop := runWorker(t, worker.Run)
	eventually(t, 20*time.Second, "every task acked", func() bool { return stats(t, client, queue).GetTasksCount() == 0 })
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	// One subscription, then the acks: far fewer messages than tasks.
	if sends := counter.count("StreamTasks.Send"); sends > n/4 {
		t.Errorf("%d acks took %d stream messages, want them batched", n, sends)
	} else {
		t.Logf("%d acks in %d stream messages", n, sends-1)
	}
}

func TestNackedTaskIsRetriedWithItsErrorRecorded(t *testing.T) {
	client := dial(t)
	ctx := testContext(t)
	queue := newQueue(t, client, taskq.QueueConfig{
		Type:  taskq.PushQueue,
		Retry: taskq.RetryPolicy{MinBackoff: 50 * time.Millisecond, MaxBackoff: 50 * time.Millisecond},
	})
	task, err := client.CreateTask(ctx, queue, taskq.TaskSpec{Payload: []byte("flaky")})
	if err != nil {
		t.Fatalf("CreateTask: %v", err)
	}

	attempts := make(chan *taskqv1.Task, 10)
	handler := func(ctx context.Context, task *taskqv1.Task) error {
		attempts <- task
		if task.GetAttemptCount() < 3 {
			return fmt.Errorf("boom on attempt %d", task.GetAttemptCount())
		}
		// The third attempt asks for a retry an hour from now.
		return taskq.Retry(time.Hour)
	}
	worker := taskq.NewWorker(client, queue, handler, taskq.WorkerOptions{Logger: logger()})
	stop := runWorker(t, worker.Run)
	for want := int32(1); want <= 3; want++ {
		select {
		case got := <-attempts:
			if got.GetAttemptCount() != want {
				t.Fatalf("delivery with attempt_count %d, want %d", got.GetAttemptCount(), want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("attempt %d never came", want)
		}
	}
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}

	got, err := client.GetTask(ctx, task.GetName())
	if err != nil {
		t.Fatalf("GetTask: %v", err)
	}
	if got.GetAttemptCount() != 3 || got.GetState() != taskqv1.TaskState_TASK_STATE_SCHEDULED {
		t.Errorf("task = attempt %d state %v, want 3 attempts and scheduled", got.GetAttemptCount(), got.GetState())
	}
	if delay := time.Until(got.GetScheduleTime().AsTime()); delay < 50*time.Minute {
		t.Errorf("Retry(1h) scheduled the task %s ahead, want about an hour", delay)
	}
	if msg := got.GetLastAttempt().GetError().GetMessage(); !strings.Contains(msg, "retry requested in 1h") {
		t.Errorf("last_attempt.error = %q, want the Retry's message", msg)
	}
}

func TestNackRecordsTheHandlersError(t *testing.T) {
	client := dial(t)
	ctx := testContext(t)
	queue := newQueue(t, client, taskq.QueueConfig{
		Type:  taskq.PushQueue,
		Retry: taskq.RetryPolicy{MinBackoff: time.Hour, MaxBackoff: time.Hour},
	})
	task, err := client.CreateTask(ctx, queue, taskq.TaskSpec{Payload: []byte("flaky")})
	if err != nil {
		t.Fatalf("CreateTask: %v", err)
	}
	handled := make(chan struct{}, 1)
	worker := taskq.NewWorker(client, queue, func(ctx context.Context, task *taskqv1.Task) error {
		handled <- struct{}{}
		return errors.New("the printer is on fire")
	}, taskq.WorkerOptions{Logger: logger()})
	stop := runWorker(t, worker.Run)
	<-handled
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	got, err := client.GetTask(ctx, task.GetName())
	if err != nil {
		t.Fatalf("GetTask: %v", err)
	}
	last := got.GetLastAttempt()
	if last.GetError().GetMessage() != "the printer is on fire" || last.GetError().GetCode() != 2 /* UNKNOWN */ {
		t.Errorf("last_attempt.error = %v, want UNKNOWN with the handler's message", last.GetError())
	}
	if got.GetState() != taskqv1.TaskState_TASK_STATE_SCHEDULED || got.GetAttemptCount() != 1 ||
		time.Until(got.GetScheduleTime().AsTime()) < 50*time.Minute {
		t.Errorf("task = %v, want it scheduled for a retry after the queue's 1 h backoff", got)
	}
}

func TestPermanentFailureGoesToTheDeadLetterQueue(t *testing.T) {
	client := dial(t)
	ctx := testContext(t)
	dead := newQueue(t, client, taskq.QueueConfig{Type: taskq.PullQueue})
	queue := newQueue(t, client, taskq.QueueConfig{Type: taskq.PushQueue, DeadLetterQueue: dead})
	if _, err := client.CreateTask(ctx, queue, taskq.TaskSpec{Payload: []byte("poison")}); err != nil {
		t.Fatalf("CreateTask: %v", err)
	}
	seen := newReceived()
	worker := taskq.NewWorker(client, queue, func(ctx context.Context, task *taskqv1.Task) error {
		seen.add(task)
		return taskq.Permanent(errors.New("malformed payload"))
	}, taskq.WorkerOptions{Logger: logger()})
	stop := runWorker(t, worker.Run)
	eventually(t, 10*time.Second, "the task in the dead-letter queue", func() bool {
		return stats(t, client, dead).GetTasksCount() == 1
	})
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if seen.total.Load() != 1 {
		t.Errorf("the task was delivered %d times, want once (no retry)", seen.total.Load())
	}
	for task, err := range client.ListTasks(ctx, dead, taskq.ListTasksOptions{WithPayload: true}) {
		if err != nil {
			t.Fatalf("ListTasks: %v", err)
		}
		if string(task.GetPayload()) != "poison" || !strings.Contains(task.GetAttributes()["taskq-last-error"], "malformed payload") {
			t.Errorf("dead-lettered task = %v, want the payload and the last error", task)
		}
	}
	if s := stats(t, client, queue); s.GetTasksCount() != 0 {
		t.Errorf("the original queue still has %v", s)
	}
}

func TestPermanentFailureWithoutDeadLetterQueueIsFailed(t *testing.T) {
	client := dial(t)
	ctx := testContext(t)
	queue := newQueue(t, client, taskq.QueueConfig{Type: taskq.PushQueue})
	task, err := client.CreateTask(ctx, queue, taskq.TaskSpec{Payload: []byte("poison")})
	if err != nil {
		t.Fatalf("CreateTask: %v", err)
	}
	worker := taskq.NewWorker(client, queue, func(ctx context.Context, task *taskqv1.Task) error {
		return taskq.Permanent(errors.New("malformed payload"))
	}, taskq.WorkerOptions{Logger: logger()})
	stop := runWorker(t, worker.Run)
	eventually(t, 10*time.Second, "the task failed", func() bool {
		got, err := client.GetTask(ctx, task.GetName())
		return err == nil && got.GetState() == taskqv1.TaskState_TASK_STATE_FAILED
	})
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	got, _ := client.GetTask(ctx, task.GetName())
	if got.GetLastAttempt().GetError().GetMessage() != "malformed payload" {
		t.Errorf("last_attempt.error = %v", got.GetLastAttempt().GetError())
	}
}

func TestGracefulStopLetsRunningHandlersFinish(t *testing.T) {
	client := dial(t)
	ctx := testContext(t)
	queue := newQueue(t, client, taskq.QueueConfig{Type: taskq.PushQueue})
	// More tasks than slots: the others wait in the backlog and are released at the stop.
	for range 6 {
		if _, err := client.CreateTask(ctx, queue, taskq.TaskSpec{Payload: []byte("slow")}); err != nil {
			t.Fatalf("CreateTask: %v", err)
		}
	}
	started := make(chan struct{}, 10)
	var finished atomic.Int64
	handler := func(ctx context.Context, task *taskqv1.Task) error {
		started <- struct{}{}
		select {
		case <-time.After(700 * time.Millisecond):
		case <-ctx.Done():
			return context.Cause(ctx)
		}
		finished.Add(1)
		return nil
	}
	worker := taskq.NewWorker(client, queue, handler, taskq.WorkerOptions{Concurrency: 2, MaxOutstanding: 6, Logger: logger()})
	stop := runWorker(t, worker.Run)
	<-started
	<-started
	begin := time.Now()
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if finished.Load() != 2 {
		t.Errorf("%d handlers finished, want the 2 running at the stop", finished.Load())
	}
	if elapsed := time.Since(begin); elapsed > 5*time.Second {
		t.Errorf("stopping took %s", elapsed)
	}
	// The two finished tasks were acked; the four others were released at once, ready for
	// another worker with one attempt counted.
	s := stats(t, client, queue)
	if s.GetTasksCount() != 4 || s.GetLeasedCount() != 0 {
		t.Errorf("after the stop: %v, want 4 tasks, none leased", s)
	}
}

func TestHandlerOutlastingTheGracePeriodIsCancelled(t *testing.T) {
	client := dial(t)
	ctx := testContext(t)
	queue := newQueue(t, client, taskq.QueueConfig{Type: taskq.PushQueue})
	task, err := client.CreateTask(ctx, queue, taskq.TaskSpec{Payload: []byte("stuck")})
	if err != nil {
		t.Fatalf("CreateTask: %v", err)
	}
	started := make(chan struct{})
	cause := make(chan error, 1)
	handler := func(ctx context.Context, task *taskqv1.Task) error {
		close(started)
		<-ctx.Done()
		cause <- context.Cause(ctx)
		return ctx.Err()
	}
	worker := taskq.NewWorker(client, queue, handler, taskq.WorkerOptions{GracePeriod: 200 * time.Millisecond, Logger: logger()})
	stop := runWorker(t, worker.Run)
	<-started
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	select {
	case err := <-cause:
		if !errors.Is(err, taskq.ErrGracePeriodExpired) {
			t.Errorf("the handler's context ended with %v, want ErrGracePeriodExpired", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the handler's context was not cancelled")
	}
	got, err := client.GetTask(ctx, task.GetName())
	if err != nil {
		t.Fatalf("GetTask: %v", err)
	}
	if got.GetState() == taskqv1.TaskState_TASK_STATE_LEASED || got.GetAttemptCount() != 1 {
		t.Errorf("task = %v, want it released (not leased) after one attempt", got)
	}
}

func TestWorkerExtendsLeasesWhileHandlersRun(t *testing.T) {
	client := dial(t)
	ctx := testContext(t)
	queue := newQueue(t, client, taskq.QueueConfig{Type: taskq.PushQueue, DispatchDeadline: 15 * time.Second})
	task, err := client.CreateTask(ctx, queue, taskq.TaskSpec{Payload: []byte("long")})
	if err != nil {
		t.Fatalf("CreateTask: %v", err)
	}
	firstExpiry := make(chan time.Time, 1)
	release := make(chan struct{})
	handler := func(ctx context.Context, task *taskqv1.Task) error {
		firstExpiry <- task.GetLeaseExpireTime().AsTime()
		<-release
		return nil
	}
	worker := taskq.NewWorker(client, queue, handler, taskq.WorkerOptions{ExtensionInterval: 200 * time.Millisecond, Logger: logger()})
	stop := runWorker(t, worker.Run)
	first := <-firstExpiry
	eventually(t, 5*time.Second, "the lease extended", func() bool {
		got, err := client.GetTask(ctx, task.GetName())
		return err == nil && got.GetLeaseExpireTime().AsTime().After(first.Add(300*time.Millisecond))
	})
	close(release)
	eventually(t, 5*time.Second, "the task acked", func() bool { return stats(t, client, queue).GetTasksCount() == 0 })
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
}

func TestWorkerOnAMissingQueueFails(t *testing.T) {
	client := dial(t)
	worker := taskq.NewWorker(client, "no-such-queue", func(context.Context, *taskqv1.Task) error { return nil },
		taskq.WorkerOptions{Logger: logger()})
	done := make(chan error, 1)
	go func() { done <- worker.Run(testContext(t)) }()
	select {
	case err := <-done:
		if !errors.Is(err, taskq.ErrQueueNotFound) {
			t.Errorf("Run on a missing queue = %v, want ErrQueueNotFound", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run on a missing queue did not return")
	}

	pullQueue := newQueue(t, client, taskq.QueueConfig{Type: taskq.PullQueue})
	worker = taskq.NewWorker(client, pullQueue, func(context.Context, *taskqv1.Task) error { return nil },
		taskq.WorkerOptions{Logger: logger()})
	if err := worker.Run(testContext(t)); !errors.Is(err, taskq.ErrWrongQueueType) {
		t.Errorf("Run on a pull queue = %v, want ErrWrongQueueType", err)
	}
}

func TestHandlerPanicNacksTheTask(t *testing.T) {
	client := dial(t)
	ctx := testContext(t)
	queue := newQueue(t, client, taskq.QueueConfig{Type: taskq.PushQueue, Retry: taskq.RetryPolicy{MinBackoff: time.Hour}})
	task, err := client.CreateTask(ctx, queue, taskq.TaskSpec{})
	if err != nil {
		t.Fatalf("CreateTask: %v", err)
	}
	worker := taskq.NewWorker(client, queue, func(context.Context, *taskqv1.Task) error { panic("oops") },
		taskq.WorkerOptions{Logger: logger()})
	stop := runWorker(t, worker.Run)
	eventually(t, 10*time.Second, "the panic recorded", func() bool {
		got, err := client.GetTask(ctx, task.GetName())
		return err == nil && got.GetLastAttempt().GetError().GetMessage() == "panic: oops"
	})
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
}

func TestWorkerSubscribesAgainAfterTheServerRestarts(t *testing.T) {
	// A server of its own: the test restarts it.
	own, err := testserver.Start()
	if errors.Is(err, testserver.ErrNoServer) {
		t.Skip(err)
	} else if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := own.Stop(); err != nil {
			t.Error(err)
		}
	}()
	client, err := taskq.Dial(testContext(t), own.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	ctx := testContext(t)
	if _, err := client.CreateQueue(ctx, "restarts", taskq.QueueConfig{Type: taskq.PushQueue}); err != nil {
		t.Fatalf("CreateQueue: %v", err)
	}
	seen := newReceived()
	worker := taskq.NewWorker(client, "restarts", func(ctx context.Context, task *taskqv1.Task) error {
		seen.add(task)
		return nil
	}, taskq.WorkerOptions{MaxReconnectDelay: 200 * time.Millisecond, Logger: logger()})
	stop := runWorker(t, worker.Run)

	if _, err := client.CreateTask(ctx, "restarts", taskq.TaskSpec{Payload: []byte("before")}); err != nil {
		t.Fatalf("CreateTask: %v", err)
	}
	eventually(t, 10*time.Second, "the first task", func() bool { return seen.distinct() == 1 })

	if err := own.Restart(300 * time.Millisecond); err != nil {
		t.Fatalf("restart: %v", err)
	}
	// The client's retries on UNAVAILABLE cover the moment the server is starting.
	if _, err := client.CreateTask(ctx, "restarts", taskq.TaskSpec{Payload: []byte("after")}); err != nil {
		t.Fatalf("CreateTask after the restart: %v", err)
	}
	eventually(t, 15*time.Second, "the task created after the restart", func() bool { return seen.distinct() == 2 })
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	eventually(t, 5*time.Second, "the queue empty", func() bool {
		s, err := client.GetQueueStats(ctx, "restarts")
		return err == nil && s.GetTasksCount() == 0
	})
}
