package taskq_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	taskq "github.com/taskq/taskq/clients/go"
	taskqv1 "github.com/taskq/taskq/clients/go/gen/taskq/v1"
)

func TestPullWorkerDeletesDoneTasksInBatches(t *testing.T) {
	counter := newRPCCounter()
	client := dial(t, taskq.WithDialOptions(counter.interceptor()))
	ctx := testContext(t)
	queue := newQueue(t, client, taskq.QueueConfig{Type: taskq.PullQueue})
	const n = 40
	specs := make([]taskq.TaskSpec, n)
	for i := range specs {
		specs[i] = taskq.TaskSpec{Payload: fmt.Appendf(nil, "report %d", i)}
	}
	if _, err := client.CreateTasks(ctx, queue, specs); err != nil {
		t.Fatalf("CreateTasks: %v", err)
	}
	seen := newReceived()
	worker := taskq.NewPullWorker(client, queue, func(ctx context.Context, task *taskqv1.Task) error {
		seen.add(task)
		return nil
	}, taskq.PullOptions{Concurrency: 8, BatchSize: 8, Wait: 500 * time.Millisecond, Logger: logger()})
	stop := runWorker(t, worker.Run)
	eventually(t, 15*time.Second, "every task done", func() bool { return stats(t, client, queue).GetTasksCount() == 0 })
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if seen.distinct() != n || seen.total.Load() != n {
		t.Errorf("handled %d distinct tasks in %d calls, want %d once each", seen.distinct(), seen.total.Load(), n)
	}
	if counter.count("DeleteTask") != 0 || counter.count("BatchDeleteTasks") == 0 {
		t.Errorf("deletes: %d DeleteTask, %d BatchDeleteTasks calls; want only batches",
			counter.count("DeleteTask"), counter.count("BatchDeleteTasks"))
	}
	if leases := counter.count("LeaseTasks"); leases >= n {
		t.Errorf("%d LeaseTasks calls for %d tasks, want several tasks per call", leases, n)
	}
}

func TestPullWorkerReleasesFailedTasks(t *testing.T) {
	client := dial(t)
	ctx := testContext(t)
	queue := newQueue(t, client, taskq.QueueConfig{Type: taskq.PullQueue})
	task, err := client.CreateTask(ctx, queue, taskq.TaskSpec{Payload: []byte("flaky")})
	if err != nil {
		t.Fatalf("CreateTask: %v", err)
	}
	var attempts atomic.Int64
	worker := taskq.NewPullWorker(client, queue, func(ctx context.Context, task *taskqv1.Task) error {
		if attempts.Add(1) == 1 {
			return errors.New("first time unlucky")
		}
		return nil
	}, taskq.PullOptions{Wait: 500 * time.Millisecond, Logger: logger()})
	stop := runWorker(t, worker.Run)
	eventually(t, 10*time.Second, "the task done", func() bool {
		_, err := client.GetTask(ctx, task.GetName())
		return errors.Is(err, taskq.ErrTaskNotFound)
	})
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if attempts.Load() != 2 {
		t.Errorf("the handler ran %d times, want 2 (released at once after the failure)", attempts.Load())
	}
}

func TestPullWorkerRetryKeepsTheTaskLeasedForTheDelay(t *testing.T) {
	client := dial(t)
	ctx := testContext(t)
	queue := newQueue(t, client, taskq.QueueConfig{Type: taskq.PullQueue})
	task, err := client.CreateTask(ctx, queue, taskq.TaskSpec{Payload: []byte("later")})
	if err != nil {
		t.Fatalf("CreateTask: %v", err)
	}
	handled := make(chan struct{}, 1)
	worker := taskq.NewPullWorker(client, queue, func(ctx context.Context, task *taskqv1.Task) error {
		handled <- struct{}{}
		return taskq.Retry(time.Hour)
	}, taskq.PullOptions{Wait: 500 * time.Millisecond, Logger: logger()})
	stop := runWorker(t, worker.Run)
	<-handled
	eventually(t, 5*time.Second, "the lease set to an hour", func() bool {
		got, err := client.GetTask(ctx, task.GetName())
		return err == nil && time.Until(got.GetLeaseExpireTime().AsTime()) > 50*time.Minute
	})
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
}

func TestPullWorkerExtendsShortLeases(t *testing.T) {
	client := dial(t)
	ctx := testContext(t)
	queue := newQueue(t, client, taskq.QueueConfig{Type: taskq.PullQueue})
	if _, err := client.CreateTask(ctx, queue, taskq.TaskSpec{Payload: []byte("slow")}); err != nil {
		t.Fatalf("CreateTask: %v", err)
	}
	var calls atomic.Int64
	worker := taskq.NewPullWorker(client, queue, func(ctx context.Context, task *taskqv1.Task) error {
		calls.Add(1)
		// Outlives the 1 s lease: without extensions the lease would expire, the task
		// would be leased again and the delete refused.
		select {
		case <-time.After(2500 * time.Millisecond):
			return nil
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	}, taskq.PullOptions{LeaseDuration: time.Second, Wait: 500 * time.Millisecond, Logger: logger()})
	stop := runWorker(t, worker.Run)
	eventually(t, 10*time.Second, "the task done", func() bool { return stats(t, client, queue).GetTasksCount() == 0 })
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if calls.Load() != 1 {
		t.Errorf("the handler ran %d times, want once", calls.Load())
	}
}

func TestPullWorkerStopsGracefully(t *testing.T) {
	client := dial(t)
	ctx := testContext(t)
	queue := newQueue(t, client, taskq.QueueConfig{Type: taskq.PullQueue})
	if _, err := client.CreateTasks(ctx, queue, make([]taskq.TaskSpec, 2)); err != nil {
		t.Fatalf("CreateTasks: %v", err)
	}
	started := make(chan struct{}, 2)
	var finished atomic.Int64
	worker := taskq.NewPullWorker(client, queue, func(ctx context.Context, task *taskqv1.Task) error {
		started <- struct{}{}
		time.Sleep(500 * time.Millisecond)
		finished.Add(1)
		return nil
	}, taskq.PullOptions{Wait: 300 * time.Millisecond, Logger: logger()})
	stop := runWorker(t, worker.Run)
	<-started
	<-started
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if finished.Load() != 2 {
		t.Errorf("%d handlers finished, want both", finished.Load())
	}
	if s := stats(t, client, queue); s.GetTasksCount() != 0 {
		t.Errorf("after the stop: %v, want both tasks deleted", s)
	}
}

func TestPullWorkerOnAPushQueueFails(t *testing.T) {
	client := dial(t)
	queue := newQueue(t, client, taskq.QueueConfig{Type: taskq.PushQueue})
	worker := taskq.NewPullWorker(client, queue, func(context.Context, *taskqv1.Task) error { return nil },
		taskq.PullOptions{Logger: logger()})
	if err := worker.Run(testContext(t)); !errors.Is(err, taskq.ErrWrongQueueType) {
		t.Errorf("Run on a push queue = %v, want ErrWrongQueueType", err)
	}
}
