// Command example creates tasks on a taskq server and handles them: a push queue served by a
// Worker, a pull queue leased by tag and by a PullWorker. It is the README's example.
//
//	go run ./cmd/example                        # against `make serve` (127.0.0.1:50051)
//	go run ./cmd/example -addr 127.0.0.1:7000
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"sync/atomic"
	"time"

	taskq "github.com/taskq/taskq/clients/go"
	taskqv1 "github.com/taskq/taskq/clients/go/gen/taskq/v1"
)

func main() {
	addr := flag.String("addr", taskq.DefaultAddress, "the taskq server, host:port")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, *addr); err != nil {
		log.Fatal(err)
	}
}

func run(ctx context.Context, addr string) error {
	client, err := taskq.Dial(ctx, addr)
	if err != nil {
		return err
	}
	defer client.Close()

	// A push queue: the server streams its tasks to workers.
	_, err = client.CreateQueue(ctx, "go-emails", taskq.QueueConfig{Type: taskq.PushQueue})
	if err != nil && !errors.Is(err, taskq.ErrQueueAlreadyExists) {
		return err
	}
	for _, to := range []string{"ada@example.com", "alan@example.com"} {
		if _, err := client.CreateTask(ctx, "go-emails", taskq.TaskSpec{Payload: []byte(to)}); err != nil {
			return err
		}
	}

	// The worker runs the handler for each task, 4 at a time, until its context ends (here
	// after two emails). nil acknowledges the task; an error is retried with backoff.
	workerCtx, stopWorker := context.WithCancel(ctx)
	var sent atomic.Int32
	worker := taskq.NewWorker(client, "go-emails", func(ctx context.Context, task *taskqv1.Task) error {
		fmt.Printf("email to %s\n", task.GetPayload())
		if sent.Add(1) == 2 {
			stopWorker()
		}
		return nil
	}, taskq.WorkerOptions{Concurrency: 4})
	if err := worker.Run(workerCtx); err != nil {
		return err
	}

	// A pull queue: workers lease its tasks, optionally by tag, and delete them when done.
	_, err = client.CreateQueue(ctx, "go-reports", taskq.QueueConfig{Type: taskq.PullQueue})
	if err != nil && !errors.Is(err, taskq.ErrQueueAlreadyExists) {
		return err
	}
	for _, quarter := range []string{"q3", "q4"} {
		spec := taskq.TaskSpec{Payload: []byte("report " + quarter), Tag: quarter}
		if _, err := client.CreateTask(ctx, "go-reports", spec); err != nil {
			return err
		}
	}
	tasks, err := client.LeaseTasks(ctx, "go-reports", taskq.LeaseOptions{Duration: time.Minute, MaxTasks: 10, Tag: "q3"})
	if err != nil {
		return err
	}
	for _, task := range tasks {
		fmt.Printf("%s, leased by tag\n", task.GetPayload())
		if err := client.Ack(ctx, task); err != nil { // a stale lease: taskq.IsLeaseLost(err)
			return err
		}
	}

	// Or the pull loop: lease → handle → delete, extending leases while handlers run.
	pullCtx, stopPulling := context.WithCancel(ctx)
	puller := taskq.NewPullWorker(client, "go-reports", func(ctx context.Context, task *taskqv1.Task) error {
		fmt.Printf("%s, from the pull loop\n", task.GetPayload())
		stopPulling()
		return nil
	}, taskq.PullOptions{Wait: time.Second})
	return puller.Run(pullCtx)
}
