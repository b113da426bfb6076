package taskq_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	taskq "github.com/taskq/taskq/clients/go"
	taskqv1 "github.com/taskq/taskq/clients/go/gen/taskq/v1"
	"github.com/taskq/taskq/clients/go/internal/testserver"
)

// downtime is how long the restart tests keep the server down: longer than gRPC's own retry
// policy used to cover.
const downtime = 2 * time.Second

// flakyTaskService answers UNAVAILABLE (or `code`, when set) to the first `failures` calls of
// each method, and records the request_id of every CreateTask attempt.
type flakyTaskService struct {
	taskqv1.UnimplementedTaskServiceServer
	failures int
	code     codes.Code

	mu         sync.Mutex
	calls      map[string]int
	requestIDs []string
}

func (s *flakyTaskService) fail(method string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls[method]++
	if s.calls[method] <= s.failures {
		if s.code != codes.OK {
			return status.Error(s.code, "failing on purpose")
		}
		return status.Error(codes.Unavailable, "starting up")
	}
	return nil
}

func (s *flakyTaskService) snapshot() (map[string]int, []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	calls := map[string]int{}
	for method, n := range s.calls {
		calls[method] = n
	}
	return calls, append([]string(nil), s.requestIDs...)
}

func (s *flakyTaskService) CreateTask(_ context.Context, request *taskqv1.CreateTaskRequest) (*taskqv1.CreateTaskResponse, error) {
	s.mu.Lock()
	s.requestIDs = append(s.requestIDs, request.GetRequestId())
	s.mu.Unlock()
	if err := s.fail("CreateTask"); err != nil {
		return nil, err
	}
	return &taskqv1.CreateTaskResponse{Task: &taskqv1.Task{Name: request.GetParent() + "/tasks/t"}}, nil
}

func (s *flakyTaskService) StreamTasks(stream grpc.BidiStreamingServer[taskqv1.StreamTasksRequest, taskqv1.StreamTasksResponse]) error {
	return s.fail("StreamTasks")
}

// TestUnaryCallsRetryUnavailable checks the client's retries against a Go server that fails
// the first attempts: unary calls are retried (with the same request, so the same
// request_id); StreamTasks is not.
func TestUnaryCallsRetryUnavailable(t *testing.T) {
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fake := &flakyTaskService{failures: 2, calls: map[string]int{}}
	grpcServer := grpc.NewServer()
	taskqv1.RegisterTaskServiceServer(grpcServer, fake)
	go func() { _ = grpcServer.Serve(listener) }()
	defer grpcServer.Stop()

	client, err := taskq.Dial(testContext(t), listener.Addr().String(), taskq.WithoutBatching())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()

	task, err := client.CreateTask(testContext(t), "q", taskq.TaskSpec{Payload: []byte("x")})
	if err != nil || task.GetName() != "queues/q/tasks/t" {
		t.Fatalf("CreateTask = %v, %v; want success after the retries", task, err)
	}
	_, ids := fake.snapshot()
	if len(ids) != 3 || ids[0] == "" || ids[1] != ids[0] || ids[2] != ids[0] {
		t.Errorf("request ids of the attempts = %q, want 3 attempts with one non-empty id", ids)
	}

	stream, err := client.TaskService().StreamTasks(testContext(t))
	if err != nil {
		t.Fatal(err)
	}
	_, err = stream.Recv()
	if calls, _ := fake.snapshot(); status.Code(err) != codes.Unavailable || calls["StreamTasks"] != 1 {
		t.Errorf("StreamTasks = %v after %d calls, want UNAVAILABLE at once (no retry)", err, calls["StreamTasks"])
	}
}

// serveFake serves service on a free local port until the test ends; returns its address.
func serveFake(t *testing.T, service taskqv1.TaskServiceServer) string {
	t.Helper()
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	grpcServer := grpc.NewServer()
	taskqv1.RegisterTaskServiceServer(grpcServer, service)
	go func() { _ = grpcServer.Serve(listener) }()
	t.Cleanup(grpcServer.Stop)
	return listener.Addr().String()
}

// TestUnaryCallsRetryACanceledTheCallerDidNotCause: a server stopping gracefully cancels the
// calls it has received but not yet handled (the real server cannot be made to on cue, so a
// Go server answers CANCELLED instead). The client retries them as UNAVAILABLE, with the same
// request; without retries the CANCELLED is returned.
func TestUnaryCallsRetryACanceledTheCallerDidNotCause(t *testing.T) {
	fake := &flakyTaskService{failures: 2, code: codes.Canceled, calls: map[string]int{}}
	address := serveFake(t, fake)
	client, err := taskq.Dial(testContext(t), address, taskq.WithoutBatching(),
		taskq.WithRetry(taskq.CallRetry{InitialBackoff: 10 * time.Millisecond}))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	task, err := client.CreateTask(testContext(t), "q", taskq.TaskSpec{Payload: []byte("x")})
	if err != nil || task.GetName() != "queues/q/tasks/t" {
		t.Fatalf("CreateTask = %v, %v; want success after the retries", task, err)
	}
	if _, ids := fake.snapshot(); len(ids) != 3 || ids[0] == "" || ids[1] != ids[0] || ids[2] != ids[0] {
		t.Errorf("request ids of the attempts = %q, want 3 attempts with one non-empty id", ids)
	}

	once := &flakyTaskService{failures: 1, code: codes.Canceled, calls: map[string]int{}}
	plain, err := taskq.Dial(testContext(t), serveFake(t, once), taskq.WithoutBatching(), taskq.WithoutRetry())
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	if _, err := plain.CreateTask(testContext(t), "q", taskq.TaskSpec{Payload: []byte("x")}); taskq.CodeOf(err) != codes.Canceled {
		t.Errorf("without retries CreateTask = %v, want CANCELLED", err)
	}
}

// TestACallWhoseConnectionItsOwnerClosesIsNotRetried: closing a connection cancels its calls;
// that CANCELLED is the caller's own, so it is returned at once, not retried for the budget.
func TestACallWhoseConnectionItsOwnerClosesIsNotRetried(t *testing.T) {
	fake := &flakyTaskService{failures: 1 << 30, code: codes.Canceled, calls: map[string]int{}}
	conn, err := grpc.NewClient(serveFake(t, fake), append(taskq.DialOptions(), grpc.WithTransportCredentials(insecure.NewCredentials()))...)
	if err != nil {
		t.Fatal(err)
	}
	client := taskq.NewClient(conn, taskq.WithoutBatching(),
		taskq.WithRetry(taskq.CallRetry{InitialBackoff: 200 * time.Millisecond, MaxBackoff: 200 * time.Millisecond}))
	closer := time.AfterFunc(500*time.Millisecond, func() { _ = conn.Close() })
	defer closer.Stop()
	started := time.Now()
	_, err = client.CreateTask(testContext(t), "q", taskq.TaskSpec{Payload: []byte("x")})
	if taskq.CodeOf(err) != codes.Canceled || time.Since(started) > 5*time.Second {
		t.Errorf("CreateTask = %v after %v, want CANCELLED soon after the connection closed", err, time.Since(started))
	}
}

// TestCallsMadeWhileTheServerIsDownSucceedOnceItIsBack stops the real server and starts it
// again on the same address and data directory a moment later: a create made meanwhile
// succeeds, once; without retries it fails with UNAVAILABLE.
func TestCallsMadeWhileTheServerIsDownSucceedOnceItIsBack(t *testing.T) {
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
	ctx := testContext(t)
	client, err := taskq.Dial(ctx, own.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	unretried, err := taskq.Dial(ctx, own.Addr, taskq.WithoutRetry())
	if err != nil {
		t.Fatal(err)
	}
	defer unretried.Close()
	if _, err := client.CreateQueue(ctx, "restarts", taskq.QueueConfig{Type: taskq.PullQueue}); err != nil {
		t.Fatalf("CreateQueue: %v", err)
	}

	if err := own.Down(); err != nil {
		t.Fatal(err)
	}
	if _, err := unretried.CreateTask(ctx, "restarts", taskq.TaskSpec{Payload: []byte("lost")}); !taskq.IsUnavailable(err) {
		t.Errorf("CreateTask without retries while the server is down = %v, want UNAVAILABLE", err)
	}
	up := make(chan error, 1)
	go func() {
		time.Sleep(downtime)
		up <- own.Up()
	}()
	task, err := client.CreateTask(ctx, "restarts", taskq.TaskSpec{Payload: []byte("made during the restart")})
	if err := <-up; err != nil {
		t.Fatalf("restarting the server: %v", err)
	}
	if err != nil {
		t.Fatalf("CreateTask while the server was down = %v, want success once it is back", err)
	}
	if s := stats(t, client, "restarts"); s.GetTasksCount() != 1 {
		t.Errorf("%d tasks after the restart, want exactly the one created (%s)", s.GetTasksCount(), task.GetName())
	}
}

// TestACreateWhoseAnswerIsLostIsRetriedAndAddsOneTask puts tests/support/flaky_proxy.py
// between the client and the real server: the server creates the task and answers, the proxy
// cuts the connection after the answer's headers. The retry carries the same request_id, so
// the server answers with the task it created instead of adding a second one. Without
// retries the caller gets UNAVAILABLE although the task exists.
func TestACreateWhoseAnswerIsLostIsRetriedAndAddsOneTask(t *testing.T) {
	direct := dial(t)
	for _, mode := range []struct {
		name string
		opts []taskq.Option
	}{
		{"BatchCreateTasks", nil},
		{"CreateTask", []taskq.Option{taskq.WithoutBatching()}},
		{"without retries", []taskq.Option{taskq.WithoutBatching(), taskq.WithoutRetry()}},
	} {
		t.Run(mode.name, func(t *testing.T) {
			ctx := testContext(t)
			queue := newQueue(t, direct, taskq.QueueConfig{Type: taskq.PullQueue})
			proxy, err := testserver.StartProxy(server.Addr, 1)
			if err != nil {
				t.Fatal(err)
			}
			defer proxy.Close()
			client, err := taskq.Dial(ctx, proxy.Addr, mode.opts...)
			if err != nil {
				t.Fatal(err)
			}
			defer client.Close()

			task, err := client.CreateTask(ctx, queue, taskq.TaskSpec{Payload: []byte("once")})
			select {
			case line := <-proxy.Lines:
				if !strings.HasPrefix(line, "dropped response on stream") {
					t.Fatalf("the proxy said %q", line)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("the proxy lost no answer")
			}
			var names []string
			for found, err := range direct.ListTasks(ctx, queue, taskq.ListTasksOptions{}) {
				if err != nil {
					t.Fatalf("ListTasks: %v", err)
				}
				names = append(names, found.GetName())
			}
			if mode.name == "without retries" {
				if !taskq.IsUnavailable(err) || len(names) != 1 {
					t.Errorf("CreateTask = %v with %d tasks created, want UNAVAILABLE with 1", err, len(names))
				}
				return
			}
			if err != nil {
				t.Fatalf("CreateTask = %v, want success after the retry", err)
			}
			if len(names) != 1 || names[0] != task.GetName() {
				t.Errorf("tasks in the queue = %q, want exactly %s", names, task.GetName())
			}
		})
	}
}
