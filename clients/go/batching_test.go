package taskq_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	taskq "github.com/taskq/taskq/clients/go"
	taskqv1 "github.com/taskq/taskq/clients/go/gen/taskq/v1"
)

// createConcurrently calls CreateTask from one goroutine per spec, all at once.
func createConcurrently(ctx context.Context, client *taskq.Client, queue string, specs []taskq.TaskSpec) ([]*taskqv1.Task, []error) {
	tasks := make([]*taskqv1.Task, len(specs))
	errs := make([]error, len(specs))
	var start, done sync.WaitGroup
	start.Add(1)
	for i, spec := range specs {
		done.Go(func() {
			start.Wait()
			tasks[i], errs[i] = client.CreateTask(ctx, queue, spec)
		})
	}
	start.Done()
	done.Wait()
	return tasks, errs
}

func TestConcurrentCreatesAreCoalesced(t *testing.T) {
	counter := newRPCCounter()
	client := dial(t, taskq.WithDialOptions(counter.interceptor()))
	ctx := testContext(t)
	queue := newQueue(t, client, taskq.QueueConfig{Type: taskq.PullQueue})
	if _, err := client.CreateTask(ctx, queue, taskq.TaskSpec{ID: "taken"}); err != nil {
		t.Fatalf("CreateTask: %v", err)
	}
	before := counter.count("BatchCreateTasks")

	const n = 300
	specs := make([]taskq.TaskSpec, n)
	for i := range specs {
		specs[i] = taskq.TaskSpec{Payload: fmt.Appendf(nil, "task %d", i)}
	}
	specs[7] = taskq.TaskSpec{ID: "taken"}             // refused: the name exists
	specs[42] = taskq.TaskSpec{ID: "bad id", Tag: "x"} // refused: invalid name
	tasks, errs := createConcurrently(ctx, client, queue, specs)

	for i := range specs {
		switch i {
		case 7:
			if !errors.Is(errs[i], taskq.ErrTaskAlreadyExists) {
				t.Errorf("create of an existing name = %v, want ErrTaskAlreadyExists", errs[i])
			}
		case 42:
			var e *taskq.Error
			if !errors.As(errs[i], &e) || e.Code() != codes.InvalidArgument {
				t.Errorf("create with a bad id = %v, want INVALID_ARGUMENT", errs[i])
			} else if v := e.FieldViolations(); len(v) != 1 || v[0].Field != "task.name" {
				t.Errorf("a coalesced create's violations = %+v, want the field named as by CreateTask (task.name)", v)
			}
		default:
			if errs[i] != nil || tasks[i].GetName() == "" {
				t.Errorf("create %d = %v, %v; want a task", i, tasks[i], errs[i])
			}
		}
	}
	batches := counter.count("BatchCreateTasks") - before
	if batches < 1 || batches > 30 {
		t.Errorf("%d concurrent creates made %d BatchCreateTasks calls, want a few", n, batches)
	}
	if counter.count("CreateTask") != 0 {
		t.Errorf("batching made %d CreateTask calls, want none", counter.count("CreateTask"))
	}
	t.Logf("%d creates in %d BatchCreateTasks calls", n, batches)
	if s := stats(t, client, queue); s.GetTasksCount() != n-1 { // "taken" once, 298 new
		t.Errorf("tasks in the queue = %d, want %d", s.GetTasksCount(), n-1)
	}
}

func TestCoalescedCreatesOnAMissingQueueAllFail(t *testing.T) {
	client := dial(t)
	_, errs := createConcurrently(testContext(t), client, "no-such-queue", make([]taskq.TaskSpec, 20))
	for i, err := range errs {
		if !errors.Is(err, taskq.ErrQueueNotFound) {
			t.Errorf("create %d on a missing queue = %v, want ErrQueueNotFound", i, err)
		}
	}
}

func TestWithoutBatchingEachCreateIsItsOwnCall(t *testing.T) {
	counter := newRPCCounter()
	client := dial(t, taskq.WithoutBatching(), taskq.WithDialOptions(counter.interceptor()))
	queue := newQueue(t, client, taskq.QueueConfig{Type: taskq.PullQueue})
	_, errs := createConcurrently(testContext(t), client, queue, make([]taskq.TaskSpec, 20))
	for _, err := range errs {
		if err != nil {
			t.Fatalf("CreateTask: %v", err)
		}
	}
	if got := counter.count("CreateTask"); got != 20 || counter.count("BatchCreateTasks") != 0 {
		t.Errorf("20 creates without batching made %d CreateTask and %d BatchCreateTasks calls",
			got, counter.count("BatchCreateTasks"))
	}
}

func TestBatchesRespectMaxItems(t *testing.T) {
	counter := newRPCCounter()
	client := dial(t, taskq.WithBatching(taskq.BatchSettings{MaxDelay: 50 * time.Millisecond, MaxItems: 10}),
		taskq.WithDialOptions(counter.interceptor()))
	queue := newQueue(t, client, taskq.QueueConfig{Type: taskq.PullQueue})
	_, errs := createConcurrently(testContext(t), client, queue, make([]taskq.TaskSpec, 35))
	for _, err := range errs {
		if err != nil {
			t.Fatalf("CreateTask: %v", err)
		}
	}
	if got := counter.count("BatchCreateTasks"); got < 4 {
		t.Errorf("35 creates in batches of at most 10 made %d calls, want 4 at least", got)
	}
}

func TestRequestIDMakesACreateIdempotent(t *testing.T) {
	client := dial(t)
	ctx := testContext(t)
	queue := newQueue(t, client, taskq.QueueConfig{Type: taskq.PullQueue})
	first, err := client.CreateTask(ctx, queue, taskq.TaskSpec{Payload: []byte("x"), RequestID: "req-1"})
	if err != nil {
		t.Fatalf("CreateTask: %v", err)
	}
	again, err := client.CreateTask(ctx, queue, taskq.TaskSpec{Payload: []byte("x"), RequestID: "req-1"})
	if err != nil || again.GetName() != first.GetName() {
		t.Fatalf("repeated CreateTask = %v, %v; want the first task %s", again.GetName(), err, first.GetName())
	}
	if s := stats(t, client, queue); s.GetTasksCount() != 1 {
		t.Errorf("tasks = %d, want 1", s.GetTasksCount())
	}
}

func TestCloseSendsPendingCreates(t *testing.T) {
	needServer(t)
	client, err := taskq.Dial(testContext(t), server.Addr,
		taskq.WithBatching(taskq.BatchSettings{MaxDelay: 10 * time.Second}))
	if err != nil {
		t.Fatal(err)
	}
	queue := newQueue(t, dial(t), taskq.QueueConfig{Type: taskq.PullQueue})
	created := make(chan error, 1)
	go func() {
		_, err := client.CreateTask(testContext(t), queue, taskq.TaskSpec{Payload: []byte("x")})
		created <- err
	}()
	time.Sleep(100 * time.Millisecond) // the create waits in its batch (10 s)
	start := time.Now()
	if err := client.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := <-created; err != nil || time.Since(start) > 5*time.Second {
		t.Errorf("the pending create = %v after %s, want it sent by Close", err, time.Since(start))
	}
	if _, err := client.CreateTask(testContext(t), queue, taskq.TaskSpec{}); !errors.Is(err, taskq.ErrClientClosed) {
		t.Errorf("CreateTask after Close = %v, want ErrClientClosed", err)
	}
}
