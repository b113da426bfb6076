package taskq_test

// Examples for the package documentation: compiled by `go test`, not run (they need a server;
// cmd/example is the program the tests run).

import (
	"context"
	"errors"
	"fmt"
	"log"
	"time"

	"google.golang.org/grpc/codes"

	taskq "github.com/taskq/taskq/clients/go"
	taskqv1 "github.com/taskq/taskq/clients/go/gen/taskq/v1"
)

func ExampleClient_CreateTask() {
	ctx := context.Background()
	client, err := taskq.Dial(ctx, taskq.DefaultAddress)
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()

	task, err := client.CreateTask(ctx, "go-reports", taskq.TaskSpec{
		ID:      "q4-report", // de-duplicates
		Payload: []byte("build Q4"),
		Tag:     "q4",
		Delay:   time.Hour,
		Retry:   taskq.RetryPolicy{MaxAttempts: 5},
	})
	var e *taskq.Error
	switch {
	case errors.Is(err, taskq.ErrTaskAlreadyExists), errors.Is(err, taskq.ErrTaskTombstoned):
		fmt.Println("already queued, or finished recently")
	case errors.As(err, &e) && e.Code() == codes.InvalidArgument:
		for _, v := range e.FieldViolations() {
			fmt.Printf("%s: %s\n", v.Field, v.Description)
		}
	case err != nil:
		log.Fatal(err)
	default:
		fmt.Println("created", task.GetName())
	}
}

func ExampleClient_ListTasks() {
	ctx := context.Background()
	client, err := taskq.Dial(ctx, taskq.DefaultAddress)
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()

	for task, err := range client.ListTasks(ctx, "go-reports", taskq.ListTasksOptions{
		States: []taskqv1.TaskState{taskqv1.TaskState_TASK_STATE_FAILED},
	}) {
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(task.GetName(), task.GetLastAttempt().GetError().GetMessage())
	}
}

func ExampleClient_LeaseTasks() {
	ctx := context.Background()
	client, err := taskq.Dial(ctx, taskq.DefaultAddress)
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()

	tasks, err := client.LeaseTasks(ctx, "go-reports", taskq.LeaseOptions{
		Duration: time.Minute, MaxTasks: 10, OldestTag: true, Wait: 10 * time.Second,
	})
	if err != nil {
		log.Fatal(err)
	}
	for _, task := range tasks {
		fmt.Printf("%s\n", task.GetPayload())
		if err := client.Ack(ctx, task); taskq.IsLeaseLost(err) {
			fmt.Println("the lease expired meanwhile; another worker has the task")
		} else if err != nil {
			log.Fatal(err)
		}
	}
}

func ExampleNewWorker() {
	ctx, stop := context.WithTimeout(context.Background(), time.Minute) // or signal.NotifyContext
	defer stop()
	client, err := taskq.Dial(ctx, taskq.DefaultAddress)
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()

	worker := taskq.NewWorker(client, "go-emails", func(ctx context.Context, task *taskqv1.Task) error {
		if len(task.GetPayload()) == 0 {
			return taskq.Permanent(errors.New("empty payload")) // never retried
		}
		if task.GetAttributes()["defer"] == "yes" {
			return taskq.Retry(10 * time.Minute) // tried again in 10 minutes
		}
		return nil // acknowledged
	}, taskq.WorkerOptions{Concurrency: 8, GracePeriod: 30 * time.Second})
	if err := worker.Run(ctx); err != nil {
		log.Fatal(err)
	}
}

func ExampleNewPullWorker() {
	ctx, stop := context.WithTimeout(context.Background(), time.Minute)
	defer stop()
	client, err := taskq.Dial(ctx, taskq.DefaultAddress)
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()

	puller := taskq.NewPullWorker(client, "go-reports", func(ctx context.Context, task *taskqv1.Task) error {
		fmt.Printf("building %s\n", task.GetPayload())
		return nil // deleted; an error releases the task for another lease
	}, taskq.PullOptions{LeaseDuration: time.Minute, BatchSize: 10, Tag: "q4"})
	if err := puller.Run(ctx); err != nil {
		log.Fatal(err)
	}
}
