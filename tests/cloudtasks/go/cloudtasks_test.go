// Google's official Go Cloud Tasks client (cloud.google.com/go/cloudtasks/apiv2) against a real
// taskq, configured as an emulator user would: endpoint = taskq's address, no authentication, a
// plaintext gRPC connection. HTTP targets point at a loopback HTTP server of this test, which
// records what it gets.
//
// The server is `$TASKQ_BIN serve` (default: the checkout's .venv/bin/taskq) on a free port.
package cloudtasks_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	cloudtasks "cloud.google.com/go/cloudtasks/apiv2"
	"cloud.google.com/go/cloudtasks/apiv2/cloudtaskspb"
	"google.golang.org/api/iterator"
	"google.golang.org/api/option"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/fieldmaskpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

const parent = "projects/taskq-go/locations/us-central1"

// Fixtures ---------------------------------------------------------------------------------------

type taskqServer struct {
	cmd     *exec.Cmd
	addr    string
	dataDir string
	stderr  *strings.Builder
}

func taskqBin() string {
	if bin := os.Getenv("TASKQ_BIN"); bin != "" {
		return bin
	}
	root, _ := filepath.Abs(filepath.Join("..", "..", ".."))
	return filepath.Join(root, ".venv", "bin", "taskq")
}

func startTaskq(t *testing.T) *taskqServer {
	t.Helper()
	dataDir := t.TempDir()
	cmd := exec.Command(taskqBin(), "serve", "--listen", "127.0.0.1:0", "--data-dir", dataDir,
		"--durability", "nosync", "--http-allow-networks", "127.0.0.0/8")
	var stderr strings.Builder
	cmd.Stderr = &lockedWriter{w: &stderr}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", cmd.Path, err)
	}
	found := make(chan string, 1)
	go func() {
		scanner := bufio.NewScanner(stdout)
		pattern := regexp.MustCompile(`taskq listening on (\S+:\d+)`)
		for scanner.Scan() {
			if m := pattern.FindStringSubmatch(scanner.Text()); m != nil {
				found <- m[1]
			}
		}
	}()
	server := &taskqServer{cmd: cmd, dataDir: dataDir, stderr: &stderr}
	t.Cleanup(server.stop)
	select {
	case server.addr = <-found:
		return server
	case <-time.After(30 * time.Second):
		t.Fatalf("taskq did not start in 30 s:\n%s", stderr.String())
		return nil
	}
}

func (s *taskqServer) stop() {
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = s.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		_ = s.cmd.Process.Kill()
		<-done
	}
}

type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

type request struct {
	Method string
	Path   string // with the query
	Header http.Header
	Body   string
}

// receiver is an HTTP server on 127.0.0.1 recording every request; paths under /fail answer 500.
type receiver struct {
	server   *httptest.Server
	mu       sync.Mutex
	requests []request
}

func startReceiver(t *testing.T) *receiver {
	r := &receiver{}
	r.server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.requests = append(r.requests, request{req.Method, req.URL.RequestURI(), req.Header.Clone(), string(body)})
		r.mu.Unlock()
		if strings.HasPrefix(req.URL.Path, "/fail") {
			http.Error(w, "failing on purpose", http.StatusInternalServerError)
			return
		}
		_, _ = w.Write([]byte("ok"))
	}))
	t.Cleanup(r.server.Close)
	return r
}

func (r *receiver) at(path string) []request {
	r.mu.Lock()
	defer r.mu.Unlock()
	var got []request
	for _, req := range r.requests {
		if req.Path == path {
			got = append(got, req)
		}
	}
	return got
}

func waitFor(t *testing.T, what string, check func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !check() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func wantCode(t *testing.T, err error, want codes.Code, what string) {
	t.Helper()
	if got := status.Code(err); got != want {
		t.Errorf("%s: got %v (%v), want %v", what, got, err, want)
	}
}

func queueName(id string) string   { return parent + "/queues/" + id }
func shortName(name string) string { return name[strings.LastIndex(name, "/")+1:] }
func inAnHour() *timestamppb.Timestamp {
	return timestamppb.New(time.Now().Add(time.Hour).Truncate(time.Second))
}
func seconds(d *durationpb.Duration) float64 { return d.AsDuration().Seconds() }

// The test -------------------------------------------------------------------------------------

func TestOfficialGoClient(t *testing.T) {
	server := startTaskq(t)
	recv := startReceiver(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	// The emulator settings: where the server is, no credentials, a plaintext connection.
	client, err := cloudtasks.NewClient(ctx,
		option.WithEndpoint(server.addr),
		option.WithoutAuthentication(),
		option.WithGRPCDialOption(grpc.WithTransportCredentials(insecure.NewCredentials())),
	)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	defer func() {
		if t.Failed() {
			t.Logf("taskq's log:\n%s", server.stderr.String())
		}
	}()

	httpTask := func(path string, method cloudtaskspb.HttpMethod, body string, headers map[string]string) *cloudtaskspb.Task {
		return &cloudtaskspb.Task{MessageType: &cloudtaskspb.Task_HttpRequest{HttpRequest: &cloudtaskspb.HttpRequest{
			Url: recv.server.URL + path, HttpMethod: method, Body: []byte(body), Headers: headers,
		}}}
	}

	t.Run("CreateQueue with rate limits and a retry config; GetQueue reads it back", func(t *testing.T) {
		name := queueName("orders")
		created, err := client.CreateQueue(ctx, &cloudtaskspb.CreateQueueRequest{Parent: parent, Queue: &cloudtaskspb.Queue{
			Name:       name,
			RateLimits: &cloudtaskspb.RateLimits{MaxDispatchesPerSecond: 5, MaxConcurrentDispatches: 3},
			RetryConfig: &cloudtaskspb.RetryConfig{MaxAttempts: 4, MinBackoff: durationpb.New(time.Second),
				MaxBackoff: durationpb.New(20 * time.Second), MaxDoublings: 3},
		}})
		if err != nil {
			t.Fatal(err)
		}
		if created.GetName() != name {
			t.Errorf("created name %q", created.GetName())
		}
		q, err := client.GetQueue(ctx, &cloudtaskspb.GetQueueRequest{Name: name})
		if err != nil {
			t.Fatal(err)
		}
		if q.GetName() != name || q.GetState() != cloudtaskspb.Queue_RUNNING {
			t.Errorf("name %q state %v", q.GetName(), q.GetState())
		}
		rl, rc := q.GetRateLimits(), q.GetRetryConfig()
		if rl.GetMaxDispatchesPerSecond() != 5 || rl.GetMaxConcurrentDispatches() != 3 || rl.GetMaxBurstSize() <= 0 {
			t.Errorf("rate limits %v", rl)
		}
		if rc.GetMaxAttempts() != 4 || seconds(rc.GetMinBackoff()) != 1 || seconds(rc.GetMaxBackoff()) != 20 || rc.GetMaxDoublings() != 3 {
			t.Errorf("retry config %v", rc)
		}
	})

	t.Run("a queue created with a name alone gets Cloud Tasks' defaults", func(t *testing.T) {
		name := queueName("defaults")
		if _, err := client.CreateQueue(ctx, &cloudtaskspb.CreateQueueRequest{Parent: parent, Queue: &cloudtaskspb.Queue{Name: name}}); err != nil {
			t.Fatal(err)
		}
		q, err := client.GetQueue(ctx, &cloudtaskspb.GetQueueRequest{Name: name})
		if err != nil {
			t.Fatal(err)
		}
		rl, rc := q.GetRateLimits(), q.GetRetryConfig()
		if q.GetName() != name || rl.GetMaxDispatchesPerSecond() != 500 || rl.GetMaxConcurrentDispatches() != 1000 || rl.GetMaxBurstSize() <= 0 {
			t.Errorf("queue %v", q)
		}
		if rc.GetMaxAttempts() != 100 || seconds(rc.GetMinBackoff()) != 0.1 || seconds(rc.GetMaxBackoff()) != 3600 || rc.GetMaxDoublings() != 16 {
			t.Errorf("retry config %v", rc)
		}
	})

	t.Run("CreateQueue of an existing name is ALREADY_EXISTS", func(t *testing.T) {
		_, err := client.CreateQueue(ctx, &cloudtaskspb.CreateQueueRequest{Parent: parent, Queue: &cloudtaskspb.Queue{Name: queueName("orders")}})
		wantCode(t, err, codes.AlreadyExists, "CreateQueue again")
	})

	t.Run("ListQueues pages one queue at a time, only the parent's queues", func(t *testing.T) {
		other := "projects/taskq-go/locations/europe-west1"
		var want []string
		for _, id := range []string{"list-a", "list-b", "list-c"} {
			name := other + "/queues/" + id
			want = append(want, name)
			if _, err := client.CreateQueue(ctx, &cloudtaskspb.CreateQueueRequest{Parent: other, Queue: &cloudtaskspb.Queue{Name: name}}); err != nil {
				t.Fatal(err)
			}
		}
		// Page by page, through the iterator's pager.
		pager := iterator.NewPager(client.ListQueues(ctx, &cloudtaskspb.ListQueuesRequest{Parent: other, PageSize: 1}), 1, "")
		var seen []string
		pages := 0
		for {
			var page []*cloudtaskspb.Queue
			token, err := pager.NextPage(&page)
			if err != nil {
				t.Fatal(err)
			}
			pages++
			if len(page) > 1 {
				t.Errorf("page %d has %d queues", pages, len(page))
			}
			for _, q := range page {
				seen = append(seen, q.GetName())
			}
			if token == "" || pages > 20 {
				break
			}
		}
		sort.Strings(seen)
		if pages < 3 || strings.Join(seen, ",") != strings.Join(want, ",") {
			t.Errorf("%d pages: %v, want %v", pages, seen, want)
		}
		// The iterator alone walks every page.
		seen = nil
		it := client.ListQueues(ctx, &cloudtaskspb.ListQueuesRequest{Parent: other, PageSize: 1})
		for {
			q, err := it.Next()
			if err == iterator.Done {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			seen = append(seen, q.GetName())
		}
		sort.Strings(seen)
		if strings.Join(seen, ",") != strings.Join(want, ",") {
			t.Errorf("iterator: %v, want %v", seen, want)
		}
	})

	t.Run("UpdateQueue changes only the fields of the update mask", func(t *testing.T) {
		name := queueName("orders")
		updated, err := client.UpdateQueue(ctx, &cloudtaskspb.UpdateQueueRequest{
			Queue: &cloudtaskspb.Queue{Name: name, RateLimits: &cloudtaskspb.RateLimits{
				MaxDispatchesPerSecond: 7, MaxConcurrentDispatches: 999}},
			UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"rate_limits.max_dispatches_per_second"}},
		})
		if err != nil {
			t.Fatal(err)
		}
		if updated.GetName() != name || updated.GetRateLimits().GetMaxDispatchesPerSecond() != 7 {
			t.Errorf("updated %v", updated)
		}
		q, err := client.GetQueue(ctx, &cloudtaskspb.GetQueueRequest{Name: name})
		if err != nil {
			t.Fatal(err)
		}
		if q.GetRateLimits().GetMaxDispatchesPerSecond() != 7 || q.GetRateLimits().GetMaxConcurrentDispatches() != 3 ||
			q.GetRetryConfig().GetMaxAttempts() != 4 || seconds(q.GetRetryConfig().GetMaxBackoff()) != 20 {
			t.Errorf("after the update: %v", q)
		}
	})

	t.Run("a queue's http_target header_overrides reach its tasks' requests, over the task's own", func(t *testing.T) {
		name := queueName("with-target")
		overrides := []*cloudtaskspb.HttpTarget_HeaderOverride{
			{Header: &cloudtaskspb.HttpTarget_Header{Key: "X-Queue-Header", Value: "from-queue"}}}
		created, err := client.CreateQueue(ctx, &cloudtaskspb.CreateQueueRequest{Parent: parent, Queue: &cloudtaskspb.Queue{
			Name: name, HttpTarget: &cloudtaskspb.HttpTarget{HeaderOverrides: overrides}}})
		if err != nil {
			t.Fatal(err)
		}
		q, err := client.GetQueue(ctx, &cloudtaskspb.GetQueueRequest{Name: name})
		if err != nil {
			t.Fatal(err)
		}
		for _, got := range []*cloudtaskspb.Queue{created, q} {
			if o := got.GetHttpTarget().GetHeaderOverrides(); len(o) != 1 || o[0].GetHeader().GetKey() != "X-Queue-Header" ||
				o[0].GetHeader().GetValue() != "from-queue" {
				t.Errorf("header_overrides %v", o)
			}
		}
		if _, err := client.CreateTask(ctx, &cloudtaskspb.CreateTaskRequest{Parent: name, Task: httpTask("/with-target",
			cloudtaskspb.HttpMethod_POST, "targeted", map[string]string{"X-Queue-Header": "from-task", "X-Task-Header": "task"})}); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the task of the queue with a target", func() bool { return len(recv.at("/with-target")) > 0 })
		r := recv.at("/with-target")[0]
		if r.Method != "POST" || r.Body != "targeted" || r.Header.Get("X-Queue-Header") != "from-queue" ||
			r.Header.Get("X-Task-Header") != "task" || r.Header.Get("X-CloudTasks-QueueName") != "with-target" {
			t.Errorf("the request: %+v", r)
		}
	})

	t.Run("http_request tasks (POST with body and headers, GET) reach the HTTP server as Google-Cloud-Tasks", func(t *testing.T) {
		queue := queueName("deliver")
		if _, err := client.CreateQueue(ctx, &cloudtaskspb.CreateQueueRequest{Parent: parent, Queue: &cloudtaskspb.Queue{Name: queue}}); err != nil {
			t.Fatal(err)
		}
		post, err := client.CreateTask(ctx, &cloudtaskspb.CreateTaskRequest{Parent: queue, Task: httpTask(
			"/post/path?lang=go", cloudtaskspb.HttpMethod_POST, `{"order": 42}`,
			map[string]string{"Content-Type": "application/json", "X-Test-Client": "go", "User-Agent": "mine"})})
		if err != nil {
			t.Fatal(err)
		}
		get, err := client.CreateTask(ctx, &cloudtaskspb.CreateTaskRequest{Parent: queue, Task: httpTask(
			"/get/path", cloudtaskspb.HttpMethod_GET, "", nil)})
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(post.GetName(), queue+"/tasks/") || !strings.HasPrefix(get.GetName(), queue+"/tasks/") {
			t.Errorf("task names %q %q", post.GetName(), get.GetName())
		}
		waitFor(t, "the POST", func() bool { return len(recv.at("/post/path?lang=go")) > 0 })
		p := recv.at("/post/path?lang=go")[0]
		if p.Method != "POST" || p.Body != `{"order": 42}` || p.Header.Get("Content-Type") != "application/json" ||
			p.Header.Get("X-Test-Client") != "go" {
			t.Errorf("the POST: %+v", p)
		}
		if p.Header.Get("X-CloudTasks-QueueName") != "deliver" || p.Header.Get("X-CloudTasks-TaskName") != shortName(post.GetName()) {
			t.Errorf("the POST's Cloud Tasks headers: %v", p.Header)
		}
		// Cloud Tasks documents HttpRequest.headers' User-Agent as set to this, whatever the task says.
		if ua := p.Header.Get("User-Agent"); ua != "Google-Cloud-Tasks" {
			t.Errorf("User-Agent %q, want Google-Cloud-Tasks", ua)
		}
		waitFor(t, "the GET", func() bool { return len(recv.at("/get/path")) > 0 })
		g := recv.at("/get/path")[0]
		if g.Method != "GET" || g.Body != "" || g.Header.Get("X-CloudTasks-QueueName") != "deliver" ||
			g.Header.Get("X-CloudTasks-TaskName") != shortName(get.GetName()) {
			t.Errorf("the GET: %+v", g)
		}
		// A task answered with 2xx is done: Cloud Tasks removes it.
		waitFor(t, "the delivered task to be gone", func() bool {
			_, err := client.GetTask(ctx, &cloudtaskspb.GetTaskRequest{Name: post.GetName()})
			return status.Code(err) == codes.NotFound
		})
	})

	hold := queueName("hold")

	t.Run("a named task, then the same name again: ALREADY_EXISTS", func(t *testing.T) {
		if _, err := client.CreateQueue(ctx, &cloudtaskspb.CreateQueueRequest{Parent: parent, Queue: &cloudtaskspb.Queue{Name: hold}}); err != nil {
			t.Fatal(err)
		}
		task := httpTask("/named", cloudtaskspb.HttpMethod_POST, "", nil)
		task.Name, task.ScheduleTime = hold+"/tasks/named-once", inAnHour()
		created, err := client.CreateTask(ctx, &cloudtaskspb.CreateTaskRequest{Parent: hold, Task: task})
		if err != nil {
			t.Fatal(err)
		}
		if created.GetName() != task.Name {
			t.Errorf("created %q", created.GetName())
		}
		_, err = client.CreateTask(ctx, &cloudtaskspb.CreateTaskRequest{Parent: hold, Task: task})
		wantCode(t, err, codes.AlreadyExists, "the same name again")
	})

	t.Run("GetTask and ListTasks: the body only in the FULL view", func(t *testing.T) {
		name := hold + "/tasks/with-body"
		task := httpTask("/with-body", cloudtaskspb.HttpMethod_PUT, "the body of the task", map[string]string{"X-Kind": "body"})
		task.Name, task.ScheduleTime, task.DispatchDeadline = name, inAnHour(), durationpb.New(30*time.Second)
		if _, err := client.CreateTask(ctx, &cloudtaskspb.CreateTaskRequest{Parent: hold, Task: task}); err != nil {
			t.Fatal(err)
		}
		basic, err := client.GetTask(ctx, &cloudtaskspb.GetTaskRequest{Name: name})
		if err != nil {
			t.Fatal(err)
		}
		hr := basic.GetHttpRequest()
		if basic.GetName() != name || basic.GetView() != cloudtaskspb.Task_BASIC || hr.GetUrl() != recv.server.URL+"/with-body" ||
			hr.GetHttpMethod() != cloudtaskspb.HttpMethod_PUT || len(hr.GetBody()) != 0 {
			t.Errorf("BASIC: %v", basic)
		}
		if !basic.GetScheduleTime().AsTime().Equal(task.ScheduleTime.AsTime()) || basic.GetCreateTime() == nil || basic.GetDispatchCount() != 0 ||
			seconds(basic.GetDispatchDeadline()) != 30 {
			t.Errorf("BASIC times and counts: %v", basic)
		}
		full, err := client.GetTask(ctx, &cloudtaskspb.GetTaskRequest{Name: name, ResponseView: cloudtaskspb.Task_FULL})
		if err != nil {
			t.Fatal(err)
		}
		if full.GetView() != cloudtaskspb.Task_FULL || string(full.GetHttpRequest().GetBody()) != "the body of the task" ||
			full.GetHttpRequest().GetHeaders()["X-Kind"] != "body" {
			t.Errorf("FULL: %v", full)
		}
		list := func(view cloudtaskspb.Task_View) map[string]*cloudtaskspb.Task {
			found := map[string]*cloudtaskspb.Task{}
			it := client.ListTasks(ctx, &cloudtaskspb.ListTasksRequest{Parent: hold, ResponseView: view})
			for {
				task, err := it.Next()
				if err == iterator.Done {
					return found
				}
				if err != nil {
					t.Fatal(err)
				}
				found[task.GetName()] = task
			}
		}
		listedBasic, listedFull := list(cloudtaskspb.Task_BASIC), list(cloudtaskspb.Task_FULL)
		if len(listedBasic) != 2 || listedBasic[hold+"/tasks/named-once"] == nil || listedBasic[name] == nil {
			t.Errorf("listed %v", listedBasic)
		} else if len(listedBasic[name].GetHttpRequest().GetBody()) != 0 || string(listedFull[name].GetHttpRequest().GetBody()) != "the body of the task" {
			t.Errorf("ListTasks bodies: BASIC %q, FULL %q", listedBasic[name].GetHttpRequest().GetBody(), listedFull[name].GetHttpRequest().GetBody())
		}
	})

	t.Run("ListTasks pages two tasks at a time; every page together holds every task once", func(t *testing.T) {
		queue := queueName("paged")
		if _, err := client.CreateQueue(ctx, &cloudtaskspb.CreateQueueRequest{Parent: parent, Queue: &cloudtaskspb.Queue{Name: queue}}); err != nil {
			t.Fatal(err)
		}
		var want []string
		for i := 0; i < 5; i++ {
			task := httpTask("/paged", cloudtaskspb.HttpMethod_POST, "", nil)
			task.Name, task.ScheduleTime = fmt.Sprintf("%s/tasks/paged-%d", queue, i), inAnHour()
			want = append(want, task.Name)
			if _, err := client.CreateTask(ctx, &cloudtaskspb.CreateTaskRequest{Parent: queue, Task: task}); err != nil {
				t.Fatal(err)
			}
		}
		pager := iterator.NewPager(client.ListTasks(ctx, &cloudtaskspb.ListTasksRequest{Parent: queue, PageSize: 2}), 2, "")
		var seen []string
		pages := 0
		for {
			var page []*cloudtaskspb.Task
			token, err := pager.NextPage(&page)
			if err != nil {
				t.Fatal(err)
			}
			pages++
			if len(page) > 2 {
				t.Errorf("page %d has %d tasks", pages, len(page))
			}
			for _, task := range page {
				seen = append(seen, task.GetName())
			}
			if token == "" || pages > 20 {
				break
			}
		}
		sort.Strings(seen)
		if pages < 3 || strings.Join(seen, ",") != strings.Join(want, ",") {
			t.Errorf("%d pages: %v, want %v", pages, seen, want)
		}
		seen = nil
		it := client.ListTasks(ctx, &cloudtaskspb.ListTasksRequest{Parent: queue, PageSize: 2})
		for {
			task, err := it.Next()
			if err == iterator.Done {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			seen = append(seen, task.GetName())
		}
		sort.Strings(seen)
		if strings.Join(seen, ",") != strings.Join(want, ",") {
			t.Errorf("iterator: %v, want %v", seen, want)
		}
	})

	t.Run("a paused queue delivers nothing; resumed, it delivers", func(t *testing.T) {
		queue := queueName("pausable")
		if _, err := client.CreateQueue(ctx, &cloudtaskspb.CreateQueueRequest{Parent: parent, Queue: &cloudtaskspb.Queue{Name: queue}}); err != nil {
			t.Fatal(err)
		}
		paused, err := client.PauseQueue(ctx, &cloudtaskspb.PauseQueueRequest{Name: queue})
		if err != nil || paused.GetState() != cloudtaskspb.Queue_PAUSED {
			t.Fatalf("PauseQueue: %v %v", paused, err)
		}
		if _, err := client.CreateTask(ctx, &cloudtaskspb.CreateTaskRequest{Parent: queue, Task: httpTask("/paused", cloudtaskspb.HttpMethod_POST, "", nil)}); err != nil {
			t.Fatal(err)
		}
		// Long enough for an idle running queue to deliver many times over (tasks arrive in ms).
		time.Sleep(time.Second)
		if n := len(recv.at("/paused")); n != 0 {
			t.Fatalf("%d deliveries while paused", n)
		}
		if q, err := client.GetQueue(ctx, &cloudtaskspb.GetQueueRequest{Name: queue}); err != nil || q.GetState() != cloudtaskspb.Queue_PAUSED {
			t.Errorf("GetQueue while paused: %v %v", q, err)
		}
		resumed, err := client.ResumeQueue(ctx, &cloudtaskspb.ResumeQueueRequest{Name: queue})
		if err != nil || resumed.GetState() != cloudtaskspb.Queue_RUNNING {
			t.Fatalf("ResumeQueue: %v %v", resumed, err)
		}
		waitFor(t, "the task after ResumeQueue", func() bool { return len(recv.at("/paused")) == 1 })
	})

	t.Run("RunTask delivers a task scheduled an hour ahead now", func(t *testing.T) {
		task := httpTask("/run-now", cloudtaskspb.HttpMethod_HTTP_METHOD_UNSPECIFIED, "run", nil)
		task.ScheduleTime = inAnHour()
		created, err := client.CreateTask(ctx, &cloudtaskspb.CreateTaskRequest{Parent: hold, Task: task})
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(300 * time.Millisecond)
		if n := len(recv.at("/run-now")); n != 0 {
			t.Fatalf("%d deliveries before RunTask", n)
		}
		ran, err := client.RunTask(ctx, &cloudtaskspb.RunTaskRequest{Name: created.GetName()})
		if err != nil || ran.GetName() != created.GetName() {
			t.Fatalf("RunTask: %v %v", ran, err)
		}
		waitFor(t, "the task run by RunTask", func() bool { return len(recv.at("/run-now")) > 0 })
		r := recv.at("/run-now")[0]
		if r.Method != "POST" || r.Body != "run" || r.Header.Get("X-CloudTasks-TaskName") != shortName(created.GetName()) {
			t.Errorf("the run task's request: %+v", r)
		}
	})

	t.Run("DeleteTask; then GetTask and DeleteTask are NOT_FOUND", func(t *testing.T) {
		name := hold + "/tasks/with-body"
		if err := client.DeleteTask(ctx, &cloudtaskspb.DeleteTaskRequest{Name: name}); err != nil {
			t.Fatal(err)
		}
		_, err := client.GetTask(ctx, &cloudtaskspb.GetTaskRequest{Name: name})
		wantCode(t, err, codes.NotFound, "GetTask of a deleted task")
		wantCode(t, client.DeleteTask(ctx, &cloudtaskspb.DeleteTaskRequest{Name: name}), codes.NotFound, "DeleteTask again")
	})

	t.Run("PurgeQueue removes every task", func(t *testing.T) {
		for i := 0; i < 3; i++ {
			task := httpTask("/purged", cloudtaskspb.HttpMethod_POST, "", nil)
			task.ScheduleTime = inAnHour()
			if _, err := client.CreateTask(ctx, &cloudtaskspb.CreateTaskRequest{Parent: hold, Task: task}); err != nil {
				t.Fatal(err)
			}
		}
		count := func() int {
			n := 0
			it := client.ListTasks(ctx, &cloudtaskspb.ListTasksRequest{Parent: hold})
			for {
				_, err := it.Next()
				if err == iterator.Done {
					return n
				}
				if err != nil {
					t.Fatal(err)
				}
				n++
			}
		}
		if n := count(); n < 4 {
			t.Errorf("%d tasks before the purge", n)
		}
		purged, err := client.PurgeQueue(ctx, &cloudtaskspb.PurgeQueueRequest{Name: hold})
		if err != nil {
			t.Fatal(err)
		}
		if purged.GetName() != hold || purged.GetPurgeTime() == nil || purged.GetPurgeTime().AsTime().IsZero() {
			t.Errorf("PurgeQueue answered %v", purged)
		}
		waitFor(t, "an empty queue after PurgeQueue", func() bool { return count() == 0 })
		if n := len(recv.at("/purged")); n != 0 {
			t.Errorf("%d purged tasks delivered", n)
		}
	})

	t.Run("DeleteQueue; then GetQueue is NOT_FOUND", func(t *testing.T) {
		if err := client.DeleteQueue(ctx, &cloudtaskspb.DeleteQueueRequest{Name: hold}); err != nil {
			t.Fatal(err)
		}
		_, err := client.GetQueue(ctx, &cloudtaskspb.GetQueueRequest{Name: hold})
		wantCode(t, err, codes.NotFound, "GetQueue of a deleted queue")
	})

	t.Run("documented errors: INVALID_ARGUMENT for bad names, NOT_FOUND for what is missing", func(t *testing.T) {
		_, err := client.GetQueue(ctx, &cloudtaskspb.GetQueueRequest{Name: parent + "/queues/bad_name!"})
		wantCode(t, err, codes.InvalidArgument, "GetQueue of a bad name")
		_, err = client.CreateQueue(ctx, &cloudtaskspb.CreateQueueRequest{Parent: parent, Queue: &cloudtaskspb.Queue{Name: "queues/no-parent"}})
		wantCode(t, err, codes.InvalidArgument, "CreateQueue without the parent in the name")
		_, err = client.CreateQueue(ctx, &cloudtaskspb.CreateQueueRequest{Parent: parent,
			Queue: &cloudtaskspb.Queue{Name: "projects/other/locations/l/queues/elsewhere"}})
		wantCode(t, err, codes.InvalidArgument, "CreateQueue under another parent")
		_, err = client.GetQueue(ctx, &cloudtaskspb.GetQueueRequest{Name: queueName("never-made")})
		wantCode(t, err, codes.NotFound, "GetQueue of a missing queue")
		_, err = client.CreateTask(ctx, &cloudtaskspb.CreateTaskRequest{Parent: queueName("never-made"),
			Task: httpTask("/x", cloudtaskspb.HttpMethod_POST, "", nil)})
		wantCode(t, err, codes.NotFound, "CreateTask in a missing queue")
		_, err = client.ListTasks(ctx, &cloudtaskspb.ListTasksRequest{Parent: queueName("never-made")}).Next()
		wantCode(t, err, codes.NotFound, "ListTasks of a missing queue")
		_, err = client.PauseQueue(ctx, &cloudtaskspb.PauseQueueRequest{Name: queueName("never-made")})
		wantCode(t, err, codes.NotFound, "PauseQueue of a missing queue")
		_, err = client.GetTask(ctx, &cloudtaskspb.GetTaskRequest{Name: queueName("orders") + "/tasks/never-made"})
		wantCode(t, err, codes.NotFound, "GetTask of a missing task")
		_, err = client.CreateTask(ctx, &cloudtaskspb.CreateTaskRequest{Parent: queueName("orders"), Task: &cloudtaskspb.Task{
			MessageType: &cloudtaskspb.Task_HttpRequest{HttpRequest: &cloudtaskspb.HttpRequest{Url: "not a url"}}}})
		wantCode(t, err, codes.InvalidArgument, "CreateTask with a bad URL")
	})

	t.Run("a handler answering 500 is retried: dispatch_count, response_count, last_attempt", func(t *testing.T) {
		queue := queueName("flaky")
		if _, err := client.CreateQueue(ctx, &cloudtaskspb.CreateQueueRequest{Parent: parent, Queue: &cloudtaskspb.Queue{
			Name: queue, RetryConfig: &cloudtaskspb.RetryConfig{MaxAttempts: 5, MinBackoff: durationpb.New(time.Second),
				MaxBackoff: durationpb.New(time.Second)},
		}}); err != nil {
			t.Fatal(err)
		}
		task, err := client.CreateTask(ctx, &cloudtaskspb.CreateTaskRequest{Parent: queue, Task: httpTask("/fail/once-more", cloudtaskspb.HttpMethod_POST, "doomed", nil)})
		if err != nil {
			t.Fatal(err)
		}
		waitFor(t, "two attempts", func() bool { return len(recv.at("/fail/once-more")) >= 2 })
		got := recv.at("/fail/once-more")
		if got[0].Header.Get("X-CloudTasks-TaskRetryCount") != "0" || got[1].Header.Get("X-CloudTasks-TaskRetryCount") != "1" {
			t.Errorf("retry counts %q %q", got[0].Header.Get("X-CloudTasks-TaskRetryCount"), got[1].Header.Get("X-CloudTasks-TaskRetryCount"))
		}
		if got[1].Header.Get("X-CloudTasks-TaskPreviousResponse") != "500" {
			t.Errorf("X-CloudTasks-TaskPreviousResponse %q", got[1].Header.Get("X-CloudTasks-TaskPreviousResponse"))
		}
		var seen *cloudtaskspb.Task
		waitFor(t, "the attempts on GetTask", func() bool {
			seen, err = client.GetTask(ctx, &cloudtaskspb.GetTaskRequest{Name: task.GetName()})
			return err == nil && seen.GetDispatchCount() >= 2 && seen.GetResponseCount() >= 2 && seen.GetLastAttempt().GetResponseStatus() != nil
		})
		if seen.GetFirstAttempt().GetDispatchTime() == nil || seen.GetLastAttempt().GetDispatchTime() == nil ||
			seen.GetLastAttempt().GetResponseTime() == nil {
			t.Errorf("attempt times: %v", seen)
		}
		if code := codes.Code(seen.GetLastAttempt().GetResponseStatus().GetCode()); code != codes.Internal {
			t.Errorf("last_attempt.response_status.code %v, want INTERNAL for HTTP 500", code)
		}
	})

	t.Run("a task whose attempts ran out is deleted, and its name stays taken", func(t *testing.T) {
		queue := queueName("exhausted")
		if _, err := client.CreateQueue(ctx, &cloudtaskspb.CreateQueueRequest{Parent: parent, Queue: &cloudtaskspb.Queue{
			Name: queue, RetryConfig: &cloudtaskspb.RetryConfig{MaxAttempts: 1}}}); err != nil {
			t.Fatal(err)
		}
		task := httpTask("/fail/only-once", cloudtaskspb.HttpMethod_POST, "", nil)
		task.Name = queue + "/tasks/only-once"
		if _, err := client.CreateTask(ctx, &cloudtaskspb.CreateTaskRequest{Parent: queue, Task: task}); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the one attempt", func() bool { return len(recv.at("/fail/only-once")) > 0 })
		waitFor(t, "the task to be deleted", func() bool {
			_, err := client.GetTask(ctx, &cloudtaskspb.GetTaskRequest{Name: task.Name})
			if err != nil && status.Code(err) != codes.NotFound {
				t.Fatalf("GetTask: %v", err)
			}
			return err != nil
		})
		if n := len(recv.at("/fail/only-once")); n != 1 {
			t.Errorf("%d attempts, want 1 (max_attempts 1)", n)
		}
		if _, err := client.ListTasks(ctx, &cloudtaskspb.ListTasksRequest{Parent: queue}).Next(); err != iterator.Done {
			t.Errorf("ListTasks of the queue: %v, want no task", err)
		}
		_, err := client.RunTask(ctx, &cloudtaskspb.RunTaskRequest{Name: task.Name})
		wantCode(t, err, codes.NotFound, "RunTask of the deleted task")
		wantCode(t, client.DeleteTask(ctx, &cloudtaskspb.DeleteTaskRequest{Name: task.Name}), codes.NotFound, "DeleteTask of the deleted task")
		_, err = client.CreateTask(ctx, &cloudtaskspb.CreateTaskRequest{Parent: queue, Task: task})
		wantCode(t, err, codes.AlreadyExists, "CreateTask with the deleted task's name")
	})
}
