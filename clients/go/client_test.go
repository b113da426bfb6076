package taskq_test

import (
	"errors"
	"slices"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	taskq "github.com/taskq/taskq/clients/go"
	taskqv1 "github.com/taskq/taskq/clients/go/gen/taskq/v1"
)

func TestQueueLifecycle(t *testing.T) {
	client := dial(t)
	ctx := testContext(t)
	queue := newQueue(t, client, taskq.QueueConfig{
		Type:                   taskq.PushQueue,
		MaxDispatchesPerSecond: 20,
		Retry:                  taskq.RetryPolicy{MaxAttempts: 3, MinBackoff: time.Second, MaxDoublings: new(int32(2))},
		DispatchDeadline:       time.Minute,
	})

	got, err := client.GetQueue(ctx, queue)
	if err != nil {
		t.Fatalf("GetQueue: %v", err)
	}
	if got.GetRateLimits().GetMaxDispatchesPerSecond() != 20 || got.GetRetryConfig().GetMaxAttempts() != 3 ||
		got.GetRetryConfig().GetMaxDoublings() != 2 || got.GetDispatchDeadline().AsDuration() != time.Minute {
		t.Errorf("GetQueue = %v, want the created configuration", got)
	}

	updated, err := client.UpdateQueue(ctx, queue, taskq.QueueConfig{MaxDispatchesPerSecond: 50},
		"rate_limits.max_dispatches_per_second")
	if err != nil {
		t.Fatalf("UpdateQueue: %v", err)
	}
	if updated.GetRateLimits().GetMaxDispatchesPerSecond() != 50 || updated.GetRetryConfig().GetMaxAttempts() != 3 {
		t.Errorf("UpdateQueue changed more than the rate: %v", updated)
	}

	if q, err := client.PauseQueue(ctx, queue); err != nil || q.GetState() != taskqv1.QueueState_QUEUE_STATE_PAUSED {
		t.Errorf("PauseQueue = %v, %v; want a paused queue", q.GetState(), err)
	}
	if q, err := client.ResumeQueue(ctx, queue); err != nil || q.GetState() != taskqv1.QueueState_QUEUE_STATE_RUNNING {
		t.Errorf("ResumeQueue = %v, %v; want a running queue", q.GetState(), err)
	}

	for range 3 {
		if _, err := client.CreateTask(ctx, queue, taskq.TaskSpec{Payload: []byte("x"), Delay: time.Hour}); err != nil {
			t.Fatalf("CreateTask: %v", err)
		}
	}
	if s := stats(t, client, queue); s.GetTasksCount() != 3 || s.GetScheduledCount() != 3 {
		t.Errorf("stats = %v, want 3 scheduled tasks", s)
	}
	purged, err := client.PurgeQueue(ctx, queue)
	if err != nil || purged.GetPurgedCount() != 3 {
		t.Errorf("PurgeQueue = %v, %v; want 3 purged", purged, err)
	}

	found := false
	for q, err := range client.ListQueues(ctx, 2) {
		if err != nil {
			t.Fatalf("ListQueues: %v", err)
		}
		found = found || q.GetName() == queue
	}
	if !found {
		t.Errorf("ListQueues did not list %s", queue)
	}

	if err := client.DeleteQueue(ctx, queue); err != nil {
		t.Fatalf("DeleteQueue: %v", err)
	}
	_, err = client.GetQueue(ctx, queue)
	if !errors.Is(err, taskq.ErrQueueNotFound) || !taskq.IsNotFound(err) {
		t.Errorf("GetQueue after DeleteQueue = %v, want ErrQueueNotFound", err)
	}
}

func TestCreateQueueTwiceIsAlreadyExists(t *testing.T) {
	client := dial(t)
	queue := newQueue(t, client, taskq.QueueConfig{Type: taskq.PullQueue})
	_, err := client.CreateQueue(testContext(t), queue, taskq.QueueConfig{Type: taskq.PullQueue})
	if !errors.Is(err, taskq.ErrQueueAlreadyExists) || !taskq.IsAlreadyExists(err) {
		t.Fatalf("second CreateQueue = %v, want ErrQueueAlreadyExists", err)
	}
}

func TestLeaseByTagThenDelete(t *testing.T) {
	client := dial(t)
	ctx := testContext(t)
	queue := newQueue(t, client, taskq.QueueConfig{Type: taskq.PullQueue})
	for _, tag := range []string{"q3", "q4", "q3", "q4", "q3"} {
		if _, err := client.CreateTask(ctx, queue, taskq.TaskSpec{Payload: []byte("build " + tag), Tag: tag}); err != nil {
			t.Fatalf("CreateTask: %v", err)
		}
	}

	leased, err := client.LeaseTasks(ctx, queue, taskq.LeaseOptions{Duration: time.Minute, MaxTasks: 10, Tag: "q4"})
	if err != nil {
		t.Fatalf("LeaseTasks by tag: %v", err)
	}
	if len(leased) != 2 {
		t.Fatalf("LeaseTasks(tag q4) leased %d tasks, want 2", len(leased))
	}
	for _, task := range leased {
		if task.GetTag() != "q4" || task.GetLeaseToken() == "" || string(task.GetPayload()) != "build q4" {
			t.Errorf("leased %v, want a q4 task with its payload and a lease token", task)
		}
		if err := client.Ack(ctx, task); err != nil {
			t.Errorf("Ack: %v", err)
		}
	}

	// The oldest ready task is a q3 task: oldest_tag leases only q3 tasks.
	oldest, err := client.LeaseTasks(ctx, queue, taskq.LeaseOptions{Duration: time.Minute, MaxTasks: 10, OldestTag: true})
	if err != nil {
		t.Fatalf("LeaseTasks(oldest tag): %v", err)
	}
	if len(oldest) != 3 {
		t.Fatalf("LeaseTasks(oldest tag) leased %d tasks, want the 3 q3 tasks", len(oldest))
	}
	refs := make([]taskq.TaskRef, len(oldest))
	for i, task := range oldest {
		refs[i] = taskq.Ref(task)
	}
	errs, err := client.DeleteTasks(ctx, queue, refs)
	if err != nil || slices.ContainsFunc(errs, func(e error) bool { return e != nil }) {
		t.Fatalf("DeleteTasks = %v, %v; want every delete done", errs, err)
	}
	if s := stats(t, client, queue); s.GetTasksCount() != 0 {
		t.Errorf("tasks left after the deletes: %v", s)
	}
}

func TestStaleLeaseTokenIsLeaseLost(t *testing.T) {
	client := dial(t)
	ctx := testContext(t)
	queue := newQueue(t, client, taskq.QueueConfig{Type: taskq.PullQueue})
	if _, err := client.CreateTask(ctx, queue, taskq.TaskSpec{Payload: []byte("once")}); err != nil {
		t.Fatalf("CreateTask: %v", err)
	}
	first, err := client.LeaseTasks(ctx, queue, taskq.LeaseOptions{Duration: time.Minute})
	if err != nil || len(first) != 1 {
		t.Fatalf("LeaseTasks = %v, %v", first, err)
	}
	if err := client.Release(ctx, first[0]); err != nil {
		t.Fatalf("Release: %v", err)
	}
	second, err := client.LeaseTasks(ctx, queue, taskq.LeaseOptions{Duration: time.Minute})
	if err != nil || len(second) != 1 || second[0].GetAttemptCount() != 2 {
		t.Fatalf("LeaseTasks again = %v, %v; want the task, on its second attempt", second, err)
	}

	err = client.Ack(ctx, first[0]) // the first lease's token is stale now
	var e *taskq.Error
	if !errors.As(err, &e) {
		t.Fatalf("Ack with a stale token = %v, want a *taskq.Error", err)
	}
	if e.Code() != codes.FailedPrecondition || e.Reason() != taskq.ReasonLeaseLost || e.Message() == "" {
		t.Errorf("error = code %v reason %q message %q, want FAILED_PRECONDITION LEASE_LOST", e.Code(), e.Reason(), e.Message())
	}
	if !taskq.IsLeaseLost(err) || !errors.Is(err, taskq.ErrLeaseLost) || errors.Is(err, taskq.ErrQueuePaused) {
		t.Errorf("LeaseLost matching failed for %v", err)
	}
	if status.Code(err) != codes.FailedPrecondition || taskq.ReasonOf(err) != taskq.ReasonLeaseLost {
		t.Errorf("status.Code = %v, ReasonOf = %q", status.Code(err), taskq.ReasonOf(err))
	}
	if e.Proto() == nil || len(e.PreconditionViolations()) == 0 {
		t.Errorf("want the google.rpc.Status with a PreconditionFailure, got %v", e.Proto())
	}
	if _, err := client.ModifyLease(ctx, first[0].GetName(), first[0].GetLeaseToken(), time.Minute); !taskq.IsLeaseLost(err) {
		t.Errorf("ModifyLease with a stale token = %v, want LEASE_LOST", err)
	}

	// The current lease still works.
	if err := client.Ack(ctx, second[0]); err != nil {
		t.Errorf("Ack with the current token: %v", err)
	}
}

func TestInvalidArgumentHasFieldViolations(t *testing.T) {
	client := dial(t, taskq.WithoutBatching())
	queue := newQueue(t, client, taskq.QueueConfig{Type: taskq.PullQueue})
	_, err := client.CreateTask(testContext(t), queue, taskq.TaskSpec{ID: "not a valid id!"})
	var e *taskq.Error
	if !errors.As(err, &e) || e.Code() != codes.InvalidArgument {
		t.Fatalf("CreateTask with a bad id = %v, want INVALID_ARGUMENT", err)
	}
	if len(e.FieldViolations()) != 1 || e.FieldViolations()[0].Field != "task.name" {
		t.Errorf("field violations = %+v, want one on task.name", e.FieldViolations())
	}
}

func TestCreateTasksGivesOneResultPerItem(t *testing.T) {
	client := dial(t)
	ctx := testContext(t)
	queue := newQueue(t, client, taskq.QueueConfig{Type: taskq.PullQueue})
	results, err := client.CreateTasks(ctx, queue, []taskq.TaskSpec{
		{ID: "a", Payload: []byte("1")},
		{ID: "a", Payload: []byte("2")}, // the same name again
		{Payload: []byte("3"), Attributes: map[string]string{"content-type": "text/plain"}},
	})
	if err != nil {
		t.Fatalf("CreateTasks: %v", err)
	}
	if results[0].Err != nil || results[2].Err != nil || results[0].Task.GetName() != queue+"/tasks/a" {
		t.Errorf("results = %+v, want items 0 and 2 created", results)
	}
	if !errors.Is(results[1].Err, taskq.ErrTaskAlreadyExists) {
		t.Errorf("duplicate item = %v, want ErrTaskAlreadyExists", results[1].Err)
	}
	if _, err := client.CreateTasks(ctx, "queues/no-such-queue", []taskq.TaskSpec{{}}); !errors.Is(err, taskq.ErrQueueNotFound) {
		t.Errorf("CreateTasks on a missing queue = %v, want ErrQueueNotFound", err)
	}
}

func TestListTasksFollowsPages(t *testing.T) {
	counter := newRPCCounter()
	client := dial(t, taskq.WithDialOptions(counter.interceptor()))
	ctx := testContext(t)
	queue := newQueue(t, client, taskq.QueueConfig{Type: taskq.PullQueue})
	specs := make([]taskq.TaskSpec, 25)
	for i := range specs {
		specs[i] = taskq.TaskSpec{Payload: []byte("p"), Tag: []string{"even", "odd"}[i%2]}
	}
	if _, err := client.CreateTasks(ctx, queue, specs); err != nil {
		t.Fatalf("CreateTasks: %v", err)
	}

	var names []string
	for task, err := range client.ListTasks(ctx, queue, taskq.ListTasksOptions{PageSize: 10}) {
		if err != nil {
			t.Fatalf("ListTasks: %v", err)
		}
		if len(task.GetPayload()) != 0 {
			t.Errorf("ListTasks returned a payload without WithPayload")
		}
		names = append(names, task.GetName())
	}
	if len(names) != 25 || !slices.IsSorted(names) {
		t.Errorf("ListTasks listed %d tasks (sorted: %v), want 25 in name order", len(names), slices.IsSorted(names))
	}
	if calls := counter.count("ListTasks"); calls < 3 {
		t.Errorf("ListTasks made %d calls, want 3 pages at least", calls)
	}

	odd := 0
	for task, err := range client.ListTasks(ctx, queue, taskq.ListTasksOptions{
		Tag: "odd", States: []taskqv1.TaskState{taskqv1.TaskState_TASK_STATE_READY}, WithPayload: true,
	}) {
		if err != nil {
			t.Fatalf("ListTasks(filtered): %v", err)
		}
		if task.GetTag() != "odd" || string(task.GetPayload()) != "p" {
			t.Errorf("filtered listing returned %v", task)
		}
		odd++
	}
	if odd != 12 {
		t.Errorf("ListTasks(tag odd) listed %d tasks, want 12", odd)
	}
	for _, err := range client.ListTasks(ctx, "queues/no-such-queue", taskq.ListTasksOptions{}) {
		if !errors.Is(err, taskq.ErrQueueNotFound) {
			t.Errorf("ListTasks on a missing queue yielded %v, want ErrQueueNotFound", err)
		}
	}
}

func TestRunTaskMakesAScheduledTaskReady(t *testing.T) {
	client := dial(t)
	ctx := testContext(t)
	queue := newQueue(t, client, taskq.QueueConfig{Type: taskq.PullQueue})
	created, err := client.CreateTask(ctx, queue, taskq.TaskSpec{Payload: []byte("later"), Delay: time.Hour})
	if err != nil || created.GetState() != taskqv1.TaskState_TASK_STATE_SCHEDULED {
		t.Fatalf("CreateTask = %v, %v; want a scheduled task", created, err)
	}
	ran, err := client.RunTask(ctx, created.GetName())
	if err != nil || ran.GetState() != taskqv1.TaskState_TASK_STATE_READY {
		t.Fatalf("RunTask = %v, %v; want a ready task", ran, err)
	}
	leased, err := client.LeaseTasks(ctx, queue, taskq.LeaseOptions{Duration: time.Minute, Wait: time.Second})
	if err != nil || len(leased) != 1 {
		t.Fatalf("LeaseTasks = %v, %v", leased, err)
	}
	if _, err := client.RunTask(ctx, created.GetName()); !errors.Is(err, taskq.ErrTaskLeased) {
		t.Errorf("RunTask on a leased task = %v, want ErrTaskLeased", err)
	}
	if err := client.DeleteTask(ctx, created.GetName(), ""); err != nil {
		t.Errorf("DeleteTask without a token: %v", err)
	}
	if _, err := client.GetTask(ctx, created.GetName()); !errors.Is(err, taskq.ErrTaskNotFound) {
		t.Errorf("GetTask after the delete = %v, want ErrTaskNotFound", err)
	}
}

func TestLeaseTasksOnAPushQueueIsWrongQueueType(t *testing.T) {
	client := dial(t)
	queue := newQueue(t, client, taskq.QueueConfig{Type: taskq.PushQueue})
	_, err := client.LeaseTasks(testContext(t), queue, taskq.LeaseOptions{Duration: time.Minute})
	if !errors.Is(err, taskq.ErrWrongQueueType) {
		t.Fatalf("LeaseTasks on a push queue = %v, want ErrWrongQueueType", err)
	}
}

func TestLongPollReturnsWhenATaskArrives(t *testing.T) {
	client := dial(t)
	ctx := testContext(t)
	queue := newQueue(t, client, taskq.QueueConfig{Type: taskq.PullQueue})
	go func() {
		time.Sleep(300 * time.Millisecond)
		_, _ = client.CreateTask(ctx, queue, taskq.TaskSpec{Payload: []byte("late")})
	}()
	start := time.Now()
	leased, err := client.LeaseTasks(ctx, queue, taskq.LeaseOptions{Duration: time.Minute, Wait: 10 * time.Second})
	if err != nil || len(leased) != 1 {
		t.Fatalf("LeaseTasks = %v, %v; want the task created during the wait", leased, err)
	}
	if elapsed := time.Since(start); elapsed > 5*time.Second {
		t.Errorf("the long poll took %s, want it to return as the task arrived", elapsed)
	}
}
