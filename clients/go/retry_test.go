package taskq_test

import (
	"context"
	"net"
	"sync"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	taskq "github.com/taskq/taskq/clients/go"
	taskqv1 "github.com/taskq/taskq/clients/go/gen/taskq/v1"
)

// flakyTaskService answers UNAVAILABLE to the first `failures` calls of each method, and
// records the request_id of every CreateTask attempt.
type flakyTaskService struct {
	taskqv1.UnimplementedTaskServiceServer
	failures int

	mu         sync.Mutex
	calls      map[string]int
	requestIDs []string
}

func (s *flakyTaskService) fail(method string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls[method]++
	if s.calls[method] <= s.failures {
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

// TestUnaryCallsRetryUnavailable checks the client's service config against a Go server
// that fails the first attempts: unary calls are retried (with the same request, so the same
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
