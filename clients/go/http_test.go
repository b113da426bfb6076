package taskq_test

import (
	"errors"
	"maps"
	"net/http"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"

	taskq "github.com/taskq/taskq/clients/go"
	taskqv1 "github.com/taskq/taskq/clients/go/gen/taskq/v1"
)

func TestHTTPPushFieldsRoundTrip(t *testing.T) {
	client := dial(t)
	ctx := testContext(t)
	queue := newQueue(t, client, taskq.QueueConfig{
		Type: taskq.PushQueue,
		HTTPTarget: &taskq.HTTPTarget{
			URI:     "https://worker.example.com/base",
			Method:  http.MethodPatch,
			Headers: map[string]string{"X-Env": "test"},
		},
	})
	// Paused, so that the server makes no delivery attempt while the test reads the tasks.
	if _, err := client.PauseQueue(ctx, queue); err != nil {
		t.Fatalf("PauseQueue: %v", err)
	}

	got, err := client.GetQueue(ctx, queue)
	if err != nil {
		t.Fatalf("GetQueue: %v", err)
	}
	target := got.GetHttpTarget()
	if target.GetUri() != "https://worker.example.com/base" || target.GetHttpMethod() != taskqv1.HttpMethod_HTTP_METHOD_PATCH ||
		!maps.Equal(target.GetHeaders(), map[string]string{"X-Env": "test"}) {
		t.Errorf("GetQueue().http_target = %v, want the created target", target)
	}

	created, err := client.CreateTask(ctx, queue, taskq.TaskSpec{
		Payload: []byte(`{"n":1}`),
		HTTPRequest: &taskq.HTTPRequest{
			URL:     "/path?x=1",
			Method:  http.MethodPut,
			Headers: map[string]string{"Content-Type": "application/json"},
		},
	})
	if err != nil {
		t.Fatalf("CreateTask: %v", err)
	}
	task, err := client.GetTask(ctx, created.GetName())
	if err != nil {
		t.Fatalf("GetTask: %v", err)
	}
	request := task.GetHttpRequest()
	if request.GetUrl() != "/path?x=1" || request.GetHttpMethod() != taskqv1.HttpMethod_HTTP_METHOD_PUT ||
		!maps.Equal(request.GetHeaders(), map[string]string{"Content-Type": "application/json"}) {
		t.Errorf("GetTask().http_request = %v, want the created request", request)
	}
	if string(task.GetPayload()) != `{"n":1}` || task.GetResponseCount() != 0 || task.GetLastAttempt().GetHttpStatus() != 0 {
		t.Errorf("GetTask = %v, want its payload and no responses yet", task)
	}

	// A task without a request of its own, and one with an absolute URL, in one batch.
	results, err := client.CreateTasks(ctx, queue, []taskq.TaskSpec{
		{Payload: []byte("plain")},
		{HTTPRequest: &taskq.HTTPRequest{URL: "https://other.example.com/hook", Method: "delete"}},
	})
	if err != nil || results[0].Err != nil || results[1].Err != nil {
		t.Fatalf("CreateTasks = %+v, %v", results, err)
	}
	plain, err := client.GetTask(ctx, results[0].Task.GetName())
	if err != nil || plain.GetHttpRequest().GetUrl() != "" || plain.GetHttpRequest().GetHttpMethod() != taskqv1.HttpMethod_HTTP_METHOD_UNSPECIFIED {
		t.Errorf("a task created without HTTPRequest = %v, %v; want no request of its own", plain.GetHttpRequest(), err)
	}
	absolute, err := client.GetTask(ctx, results[1].Task.GetName())
	if err != nil || absolute.GetHttpRequest().GetUrl() != "https://other.example.com/hook" ||
		absolute.GetHttpRequest().GetHttpMethod() != taskqv1.HttpMethod_HTTP_METHOD_DELETE {
		t.Errorf("the batch item's http_request = %v, %v", absolute.GetHttpRequest(), err)
	}

	updated, err := client.UpdateQueue(ctx, queue, taskq.QueueConfig{
		HTTPTarget: &taskq.HTTPTarget{URI: "https://worker.example.com/v2", Headers: map[string]string{"X-Env": "prod"}},
	}, "http_target")
	if err != nil {
		t.Fatalf("UpdateQueue(http_target): %v", err)
	}
	// The path replaces the whole target: the method goes back to the default (POST, which
	// the server may return as the effective value).
	method := updated.GetHttpTarget().GetHttpMethod()
	if updated.GetHttpTarget().GetUri() != "https://worker.example.com/v2" || updated.GetHttpTarget().GetHeaders()["X-Env"] != "prod" ||
		(method != taskqv1.HttpMethod_HTTP_METHOD_UNSPECIFIED && method != taskqv1.HttpMethod_HTTP_METHOD_POST) {
		t.Errorf("UpdateQueue().http_target = %v, want the new target", updated.GetHttpTarget())
	}
}

func TestHTTPTargetIsSetAndRemovedByUpdateQueue(t *testing.T) {
	client := dial(t)
	ctx := testContext(t)
	queue := newQueue(t, client, taskq.QueueConfig{Type: taskq.PushQueue})
	if _, err := client.PauseQueue(ctx, queue); err != nil {
		t.Fatalf("PauseQueue: %v", err)
	}
	set, err := client.UpdateQueue(ctx, queue, taskq.QueueConfig{
		HTTPTarget: &taskq.HTTPTarget{URI: "https://worker.example.com/base"},
	}, "http_target")
	if err != nil || set.GetHttpTarget().GetUri() != "https://worker.example.com/base" {
		t.Fatalf("UpdateQueue setting a target = %v, %v", set.GetHttpTarget(), err)
	}
	removed, err := client.UpdateQueue(ctx, queue, taskq.QueueConfig{}, "http_target")
	if err != nil || removed.GetHttpTarget() != nil {
		t.Fatalf("UpdateQueue removing the target = %v, %v; want none", removed.GetHttpTarget(), err)
	}
	if got, err := client.GetQueue(ctx, queue); err != nil || got.GetHttpTarget() != nil {
		t.Errorf("GetQueue after removing the target = %v, %v", got.GetHttpTarget(), err)
	}

	// A task of a queue without a target cannot carry a request.
	_, err = client.CreateTask(ctx, queue, taskq.TaskSpec{HTTPRequest: &taskq.HTTPRequest{URL: "/path"}})
	if taskq.CodeOf(err) != codes.InvalidArgument {
		t.Errorf("CreateTask with an HTTPRequest in a queue without a target = %v, want INVALID_ARGUMENT", err)
	}
}

func TestHTTPMethodsAreCheckedBeforeSending(t *testing.T) {
	// Nothing listens there: a spec that reached the wire would fail with UNAVAILABLE, a
	// *taskq.Error, instead of the client's own error.
	client, err := taskq.Dial(t.Context(), "127.0.0.1:1", taskq.WithoutRetry())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	ctx := testContext(t)
	refused := func(what string, err error) {
		t.Helper()
		var e *taskq.Error
		if err == nil || errors.As(err, &e) || !strings.Contains(err.Error(), "unsupported HTTP method") {
			t.Errorf("%s = %v, want the client's unsupported HTTP method error", what, err)
		}
	}
	_, err = client.CreateQueue(ctx, "q", taskq.QueueConfig{HTTPTarget: &taskq.HTTPTarget{Method: "FETCH"}})
	refused("CreateQueue with method FETCH", err)
	_, err = client.UpdateQueue(ctx, "q", taskq.QueueConfig{HTTPTarget: &taskq.HTTPTarget{Method: "HTTP_METHOD_PUT"}})
	refused("UpdateQueue with method HTTP_METHOD_PUT", err)
	_, err = client.CreateTask(ctx, "q", taskq.TaskSpec{HTTPRequest: &taskq.HTTPRequest{Method: "unspecified"}})
	refused("CreateTask with method unspecified", err)
	_, err = client.CreateTasks(ctx, "q", []taskq.TaskSpec{{}, {HTTPRequest: &taskq.HTTPRequest{Method: "CONNECT"}}})
	refused("CreateTasks with method CONNECT", err)

	for method, name := range map[taskqv1.HttpMethod]string{
		taskqv1.HttpMethod_HTTP_METHOD_UNSPECIFIED: "",
		taskqv1.HttpMethod_HTTP_METHOD_POST:        "POST",
		taskqv1.HttpMethod_HTTP_METHOD_OPTIONS:     "OPTIONS",
	} {
		if got := taskq.HTTPMethodName(method); got != name {
			t.Errorf("HTTPMethodName(%v) = %q, want %q", method, got, name)
		}
	}
}
