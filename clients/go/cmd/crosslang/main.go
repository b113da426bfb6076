// Command crosslang is the Go part of the cross-language check (tests/crosslang/check.sh):
// it creates a pull queue and one tagged task, and prints the task's name.
//
//	go run ./cmd/crosslang -addr 127.0.0.1:50051 -queue crosslang -tag from-go -payload hello
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"time"

	taskq "github.com/taskq/taskq/clients/go"
)

func main() {
	addr := flag.String("addr", taskq.DefaultAddress, "the taskq server, host:port")
	queue := flag.String("queue", "crosslang", "the pull queue to create the task in")
	tag := flag.String("tag", "from-go", "the task's tag")
	payload := flag.String("payload", "made in Go", "the task's payload")
	flag.Parse()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	client, err := taskq.Dial(ctx, *addr)
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()
	_, err = client.CreateQueue(ctx, *queue, taskq.QueueConfig{Type: taskq.PullQueue})
	if err != nil && !errors.Is(err, taskq.ErrQueueAlreadyExists) {
		log.Fatal(err)
	}
	task, err := client.CreateTask(ctx, *queue, taskq.TaskSpec{
		Payload:    []byte(*payload),
		Tag:        *tag,
		Attributes: map[string]string{"created-by": "go"},
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(task.GetName())
}
