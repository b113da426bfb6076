package taskq_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"

	taskq "github.com/taskq/taskq/clients/go"
	taskqv1 "github.com/taskq/taskq/clients/go/gen/taskq/v1"
	"github.com/taskq/taskq/clients/go/internal/testserver"
)

// server is the taskq server every test of this package talks to; nil when there is none.
var server *testserver.Server

func TestMain(m *testing.M) {
	var err error
	server, err = testserver.Start()
	if errors.Is(err, testserver.ErrNoServer) {
		fmt.Fprintln(os.Stderr, "skipping the integration tests:", err)
	} else if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	if server != nil {
		if err := server.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			code = 1
		}
	}
	os.Exit(code)
}

// needServer skips a test when no server could be started.
func needServer(t *testing.T) {
	t.Helper()
	if server == nil {
		t.Skip("no taskq server (set TASKQ_BIN)")
	}
}

// testContext is the test's context with a deadline, so that a hung call fails the test.
func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// dial connects a client to the test server, closed at the end of the test.
func dial(t *testing.T, opts ...taskq.Option) *taskq.Client {
	t.Helper()
	needServer(t)
	client, err := taskq.Dial(testContext(t), server.Addr, opts...)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() { _ = client.Close() })
	return client
}

var queueCount atomic.Int64

// newQueue creates a queue with a name unique to the test.
func newQueue(t *testing.T, client *taskq.Client, config taskq.QueueConfig) string {
	t.Helper()
	name := regexp.MustCompile(`[^A-Za-z0-9-]+`).ReplaceAllString(t.Name(), "-")
	id := fmt.Sprintf("%.80s-%d", name, queueCount.Add(1))
	queue, err := client.CreateQueue(testContext(t), id, config)
	if err != nil {
		t.Fatalf("CreateQueue(%s): %v", id, err)
	}
	return queue.GetName()
}

// logger is the workers' logger: their reports with -v, nothing otherwise.
func logger() *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// eventually polls condition until it holds, failing the test after timeout.
func eventually(t *testing.T, timeout time.Duration, what string, condition func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !condition() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stats returns the queue's statistics.
func stats(t *testing.T, client *taskq.Client, queue string) *taskqv1.QueueStats {
	t.Helper()
	s, err := client.GetQueueStats(testContext(t), queue)
	if err != nil {
		t.Fatalf("GetQueueStats: %v", err)
	}
	return s
}

// rpcCounter counts unary calls by method name ("BatchCreateTasks").
type rpcCounter struct {
	counts [32]atomic.Int64
	names  []string
}

func newRPCCounter() *rpcCounter {
	return &rpcCounter{names: []string{
		"CreateTask", "BatchCreateTasks", "DeleteTask", "BatchDeleteTasks", "ListTasks", "LeaseTasks", "ModifyLease",
		"StreamTasks.Send", // last: see streamInterceptor
	}}
}

func (c *rpcCounter) interceptor() grpc.DialOption {
	return grpc.WithChainUnaryInterceptor(func(ctx context.Context, method string, req, reply any,
		cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		for i, name := range c.names {
			if strings.HasSuffix(method, "/"+name) {
				c.counts[i].Add(1)
			}
		}
		return invoker(ctx, method, req, reply, cc, opts...)
	})
}

// streamInterceptor counts the messages sent on streams, as "StreamTasks.Send".
func (c *rpcCounter) streamInterceptor() grpc.DialOption {
	return grpc.WithChainStreamInterceptor(func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn,
		method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
		stream, err := streamer(ctx, desc, cc, method, opts...)
		if err != nil {
			return nil, err
		}
		return &countingStream{ClientStream: stream, sends: &c.counts[len(c.names)-1]}, nil
	})
}

type countingStream struct {
	grpc.ClientStream
	sends *atomic.Int64
}

func (s *countingStream) SendMsg(m any) error {
	s.sends.Add(1)
	return s.ClientStream.SendMsg(m)
}

func (c *rpcCounter) count(name string) int64 {
	for i, n := range c.names {
		if n == name {
			return c.counts[i].Load()
		}
	}
	panic("rpcCounter: unknown method " + name)
}

// runWorker runs a worker's Run in the background; the returned stop cancels its context
// and returns Run's error.
func runWorker(t *testing.T, run func(context.Context) error) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx) }()
	stopped := false
	var result error
	stop = func() error {
		if stopped {
			return result
		}
		stopped = true
		cancel()
		select {
		case result = <-done:
		case <-time.After(40 * time.Second):
			t.Fatal("the worker did not stop within 40 s")
		}
		return result
	}
	t.Cleanup(func() { _ = stop() })
	return stop
}
