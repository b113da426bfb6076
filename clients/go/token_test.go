package taskq_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	taskq "github.com/taskq/taskq/clients/go"
	taskqv1 "github.com/taskq/taskq/clients/go/gen/taskq/v1"
	"github.com/taskq/taskq/clients/go/internal/testserver"
)

// The bearer token, against a stand-in server that checks "authorization: Bearer <token>" the
// way taskq's authentication does (the committed server did not check tokens yet): a call with
// the right token is answered, one with another token or none gets UNAUTHENTICATED. The
// stand-in also listens on a Unix socket, for the unix: and ipv4: address forms. The last test
// goes through the real server when it checks tokens.

const standInToken = "s3cret-token_1.A/b+c="

// authStandIn is a TaskService and QueueService that records the authorization headers it
// receives and refuses calls without the expected one.
type authStandIn struct {
	taskqv1.UnimplementedTaskServiceServer
	taskqv1.UnimplementedQueueServiceServer

	mu      sync.Mutex
	headers map[string][]string // method -> the authorization values of its calls
	acked   []string
}

func (s *authStandIn) check(ctx context.Context, method string) error {
	md, _ := metadata.FromIncomingContext(ctx)
	values := md.Get("authorization")
	s.mu.Lock()
	s.headers[method] = append(s.headers[method], values...)
	s.mu.Unlock()
	if !slices.Equal(values, []string{"Bearer " + standInToken}) {
		return status.Error(codes.Unauthenticated, "a valid bearer token is required")
	}
	return nil
}

func (s *authStandIn) seen(method string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.headers[method])
}

func (s *authStandIn) GetQueue(ctx context.Context, request *taskqv1.GetQueueRequest) (*taskqv1.GetQueueResponse, error) {
	if err := s.check(ctx, "GetQueue"); err != nil {
		return nil, err
	}
	return &taskqv1.GetQueueResponse{Queue: &taskqv1.Queue{Name: request.GetName()}}, nil
}

func (s *authStandIn) StreamTasks(stream grpc.BidiStreamingServer[taskqv1.StreamTasksRequest, taskqv1.StreamTasksResponse]) error {
	if err := s.check(stream.Context(), "StreamTasks"); err != nil {
		return err
	}
	subscription, err := stream.Recv()
	if err != nil {
		return err
	}
	task := &taskqv1.Task{
		Name:            subscription.GetSubscription().GetQueue() + "/tasks/one",
		Payload:         []byte("hello"),
		LeaseToken:      "lease-1",
		LeaseExpireTime: timestamppb.New(time.Now().Add(time.Minute)),
	}
	if err := stream.Send(&taskqv1.StreamTasksResponse{Tasks: []*taskqv1.Task{task}}); err != nil {
		return err
	}
	for {
		request, err := stream.Recv()
		if err != nil {
			return nil // the worker ended the stream
		}
		s.mu.Lock()
		for _, ack := range request.GetAcks() {
			s.acked = append(s.acked, ack.GetName())
		}
		s.mu.Unlock()
	}
}

// startStandIn serves an authStandIn on 127.0.0.1 and on a Unix socket until the test ends;
// it returns the server, host:port and the socket's path.
func startStandIn(t *testing.T) (*authStandIn, string, string) {
	t.Helper()
	standIn := &authStandIn{headers: map[string][]string{}}
	server := grpc.NewServer()
	taskqv1.RegisterTaskServiceServer(server, standIn)
	taskqv1.RegisterQueueServiceServer(server, standIn)
	tcp, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	socket := filepath.Join(t.TempDir(), "taskq.sock")
	unix, err := net.Listen("unix", socket)
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = server.Serve(tcp) }()
	go func() { _ = server.Serve(unix) }()
	t.Cleanup(server.Stop)
	return standIn, tcp.Addr().String(), socket
}

func dialStandIn(t *testing.T, address string, opts ...taskq.Option) *taskq.Client {
	t.Helper()
	client, err := taskq.Dial(t.Context(), address, opts...)
	if err != nil {
		t.Fatalf("Dial(%s): %v", address, err)
	}
	t.Cleanup(func() { _ = client.Close() })
	return client
}

func TestTheTokenIsSentWithUnaryCalls(t *testing.T) {
	standIn, address, _ := startStandIn(t)
	client := dialStandIn(t, address, taskq.WithToken(standInToken))
	if _, err := client.GetQueue(testContext(t), "q"); err != nil {
		t.Fatalf("GetQueue with the token: %v", err)
	}
	if got := standIn.seen("GetQueue"); !slices.Equal(got, []string{"Bearer " + standInToken}) {
		t.Errorf("authorization headers = %q, want one Bearer %s", got, standInToken)
	}
}

// noEnvironmentToken keeps the test from $TASKQ_TOKEN and $TASKQ_TOKEN_FILE.
func noEnvironmentToken(t *testing.T) {
	t.Setenv(taskq.TokenEnv, "")
	t.Setenv(taskq.TokenFileEnv, "")
}

func TestAWrongTokenOrNoneIsUnauthenticated(t *testing.T) {
	noEnvironmentToken(t)
	standIn, address, _ := startStandIn(t)
	for _, opts := range [][]taskq.Option{{taskq.WithToken("wrong")}, {}, {taskq.WithToken("")}} {
		client := dialStandIn(t, address, opts...)
		_, err := client.GetQueue(testContext(t), "q")
		if taskq.CodeOf(err) != codes.Unauthenticated {
			t.Errorf("GetQueue = %v, want UNAUTHENTICATED", err)
		}
	}
	if got := standIn.seen("GetQueue"); !slices.Equal(got, []string{"Bearer wrong"}) {
		t.Errorf("authorization headers = %q, want only Bearer wrong (none without a token)", got)
	}
}

func TestThePushWorkersStreamCarriesTheToken(t *testing.T) {
	standIn, address, _ := startStandIn(t)
	client := dialStandIn(t, address, taskq.WithToken(standInToken))
	handled := make(chan string, 1)
	worker := taskq.NewWorker(client, "push", func(ctx context.Context, task *taskqv1.Task) error {
		handled <- string(task.GetPayload())
		return nil
	}, taskq.WorkerOptions{Logger: logger()})
	stop := runWorker(t, worker.Run)
	select {
	case payload := <-handled:
		if payload != "hello" {
			t.Errorf("handled %q, want hello", payload)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the worker received no task")
	}
	eventually(t, 10*time.Second, "the ack", func() bool {
		standIn.mu.Lock()
		defer standIn.mu.Unlock()
		return len(standIn.acked) == 1
	})
	if err := stop(); err != nil {
		t.Errorf("Run = %v", err)
	}
	if got := standIn.seen("StreamTasks"); !slices.Equal(got, []string{"Bearer " + standInToken}) {
		t.Errorf("the stream's authorization headers = %q, want one Bearer %s", got, standInToken)
	}
}

func TestAWorkerWithAWrongTokenStopsWithUnauthenticated(t *testing.T) {
	_, address, _ := startStandIn(t)
	client := dialStandIn(t, address, taskq.WithToken("wrong"))
	worker := taskq.NewWorker(client, "push", func(ctx context.Context, task *taskqv1.Task) error { return nil },
		taskq.WorkerOptions{Logger: logger()})
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := worker.Run(ctx); taskq.CodeOf(err) != codes.Unauthenticated {
		t.Errorf("Run = %v, want UNAUTHENTICATED", err)
	}
}

func TestATokenThatCannotBeAHeaderIsRefusedByDial(t *testing.T) {
	for _, token := range []string{"two words", "line\nbreak", "naïve", " \n"} {
		client, err := taskq.Dial(t.Context(), "127.0.0.1:50051", taskq.WithToken(token))
		if client != nil {
			_ = client.Close()
		}
		if !errors.Is(err, taskq.ErrInvalidToken) {
			t.Errorf("Dial with token %q = %v, want ErrInvalidToken", token, err)
		}
	}
}

func TestNewClientSendsTheTokenOnAConnectionOfTheCallers(t *testing.T) {
	standIn, address, _ := startStandIn(t)
	conn, err := grpc.NewClient(address, append(taskq.DialOptions(), grpc.WithTransportCredentials(insecureCredentials()))...)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := taskq.NewClient(conn, taskq.WithToken(standInToken))
	if _, err := client.GetQueue(testContext(t), "q"); err != nil {
		t.Errorf("GetQueue: %v", err)
	}
	if got := standIn.seen("GetQueue"); len(got) != 1 {
		t.Errorf("authorization headers = %q, want one", got)
	}
}

func TestUnixSocketsDNSAndIPListsReachTheServer(t *testing.T) {
	_, address, socket := startStandIn(t)
	_, port, _ := net.SplitHostPort(address)
	dead, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadAddress := dead.Addr().String()
	_ = dead.Close() // nothing listens there now
	for _, target := range []string{
		"unix:" + socket,
		"unix://" + socket,
		"dns:///127.0.0.1:" + port,
		"ipv4:" + deadAddress + ",127.0.0.1:" + port, // the first that connects
		"http://127.0.0.1:" + port,
	} {
		client := dialStandIn(t, target, taskq.WithToken(standInToken))
		if _, err := client.GetQueue(testContext(t), "q"); err != nil {
			t.Errorf("GetQueue through %s: %v", target, err)
		}
	}
}

func insecureCredentials() credentials.TransportCredentials { return insecure.NewCredentials() }

func TestATokenFileIsReadAgainWhenItChanges(t *testing.T) {
	standIn, address, _ := startStandIn(t)
	file := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(file, []byte("first-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	client := dialStandIn(t, address, taskq.WithTokenFile(file))
	call := func() {
		t.Helper()
		_, _ = client.GetQueue(testContext(t), "q")
	}
	call()
	if err := os.WriteFile(file, []byte("the-second-token"), 0o600); err != nil {
		t.Fatal(err)
	}
	call()
	if err := os.Remove(file); err != nil { // mid-rotation: the token read before is kept
		t.Fatal(err)
	}
	call()
	want := []string{"Bearer first-token", "Bearer the-second-token", "Bearer the-second-token"}
	if got := standIn.seen("GetQueue"); !slices.Equal(got, want) {
		t.Errorf("authorization headers = %q, want %q", got, want)
	}
	if _, err := taskq.Dial(t.Context(), address, taskq.WithTokenFile(file)); !errors.Is(err, taskq.ErrInvalidToken) ||
		!strings.Contains(err.Error(), "cannot read the token file "+file) {
		t.Errorf("Dial with a missing token file = %v, want ErrInvalidToken naming it", err)
	}
}

func TestTheTokenComesFromTheEnvironmentWithoutAnOption(t *testing.T) {
	standIn, address, _ := startStandIn(t)
	file := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(file, []byte("from-a-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv(taskq.TokenEnv, "from-the-environment")
	t.Setenv(taskq.TokenFileEnv, file)
	_, _ = dialStandIn(t, address).GetQueue(testContext(t), "q")                           // $TASKQ_TOKEN first
	_, _ = dialStandIn(t, address, taskq.WithToken("given")).GetQueue(testContext(t), "q") // an option wins
	_, _ = dialStandIn(t, address, taskq.WithToken("")).GetQueue(testContext(t), "q")      // none, said so
	t.Setenv(taskq.TokenEnv, "")
	_, _ = dialStandIn(t, address).GetQueue(testContext(t), "q") // then $TASKQ_TOKEN_FILE
	want := []string{"Bearer from-the-environment", "Bearer given", "Bearer from-a-file"}
	if got := standIn.seen("GetQueue"); !slices.Equal(got, want) {
		t.Errorf("authorization headers = %q, want %q", got, want)
	}
}

func TestATokenGoesInPlainTextOnlyToThisMachine(t *testing.T) {
	noEnvironmentToken(t)
	// Dials nothing: the connections Dial starts go to this dialer, which fails them.
	nowhere := taskq.WithDialOptions(grpc.WithContextDialer(func(context.Context, string) (net.Conn, error) {
		return nil, errors.New("not connecting in this test")
	}))
	token := taskq.WithToken("secret")
	for _, c := range []struct {
		address string
		opts    []taskq.Option
		refused bool
	}{
		{"10.1.2.3:50051", nil, true},
		{"taskq.example.com", nil, true},
		{"http://taskq.example.com", nil, true},
		{"ipv4:127.0.0.1:7001,10.1.2.3:7002", nil, true},
		{"10.1.2.3:50051", []taskq.Option{taskq.AllowPlaintextToken()}, false},
		{"10.1.2.3:50051", []taskq.Option{taskq.WithTLS(taskq.TLSSettings{})}, false},
		{"https://10.1.2.3", nil, false},
		{"localhost:50051", nil, false},
		{"LOCALHOST.", nil, false},
		{"127.0.0.2:50051", nil, false},
		{"[::1]:50051", nil, false},
		{"unix:/run/taskq.sock", nil, false},
		{"dns:///localhost:50051", nil, false},
		{"ipv4:127.0.0.1:7001,127.0.0.2:7002", nil, false},
	} {
		client, err := taskq.Dial(t.Context(), c.address, append([]taskq.Option{token, nowhere}, c.opts...)...)
		if client != nil {
			_ = client.Close()
		}
		if c.refused != errors.Is(err, taskq.ErrPlaintextToken) || (!c.refused && err != nil) {
			t.Errorf("Dial(%s) with a token = %v, want refused: %v", c.address, err, c.refused)
		}
	}
}

// TestTokensAgainstTheRealServer runs the token through a real taskq server configured with a
// tokens file (auth_tokens_file, TASKQ_AUTH_TOKENS_FILE: the SHA-256 of each token with its
// roles). A server without authentication answers a call without a token: the test is then
// skipped, the stand-in tests above standing in for it.
func TestTokensAgainstTheRealServer(t *testing.T) {
	needServer(t)
	token := "taskq_go-test-token-0123456789abcdefghijklmnopqrs"
	digest := sha256.Sum256([]byte(token))
	tokens := filepath.Join(t.TempDir(), "tokens.yaml")
	content := fmt.Sprintf("tokens:\n  - name: go-test\n    sha256: %x\n    roles: [admin]\n", digest)
	if err := os.WriteFile(tokens, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	authServer, err := testserver.StartWithEnv("TASKQ_AUTH_TOKENS_FILE=" + tokens)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := authServer.Stop(); err != nil {
			t.Error(err)
		}
	})
	anonymous := dialStandIn(t, authServer.Addr, taskq.WithoutRetry())
	_, err = anonymous.GetQueue(testContext(t), "anything")
	if taskq.CodeOf(err) != codes.Unauthenticated {
		t.Skipf("this server does not check tokens (a call without one got %v)", err)
	}

	client := dialStandIn(t, authServer.Addr, taskq.WithToken(token))
	queue := newQueue(t, client, taskq.QueueConfig{Type: taskq.PushQueue})
	if _, err := client.CreateTask(testContext(t), queue, taskq.TaskSpec{Payload: []byte("hello")}); err != nil {
		t.Fatalf("CreateTask with the token: %v", err)
	}
	handled := make(chan struct{}, 1)
	worker := taskq.NewWorker(client, queue, func(ctx context.Context, task *taskqv1.Task) error {
		handled <- struct{}{}
		return nil
	}, taskq.WorkerOptions{Logger: logger()})
	stop := runWorker(t, worker.Run)
	select {
	case <-handled:
	case <-time.After(10 * time.Second):
		t.Fatal("the worker with the token received no task")
	}
	if err := stop(); err != nil {
		t.Errorf("Run = %v", err)
	}

	wrong := dialStandIn(t, authServer.Addr, taskq.WithToken("taskq_wrong"))
	if _, err := wrong.GetQueue(testContext(t), queue); taskq.CodeOf(err) != codes.Unauthenticated {
		t.Errorf("GetQueue with a wrong token = %v, want UNAUTHENTICATED", err)
	}
	wrongWorker := taskq.NewWorker(wrong, queue, func(context.Context, *taskqv1.Task) error { return nil },
		taskq.WorkerOptions{Logger: logger()})
	if err := wrongWorker.Run(testContext(t)); taskq.CodeOf(err) != codes.Unauthenticated {
		t.Errorf("a worker with a wrong token: Run = %v, want UNAUTHENTICATED", err)
	}
}
