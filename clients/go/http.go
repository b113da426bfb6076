package taskq

import (
	"fmt"
	"maps"
	"strings"

	taskqv1 "github.com/taskq/taskq/clients/go/gen/taskq/v1"
)

// HTTP push: a push queue with an [HTTPTarget] delivers each task as an HTTP request to a
// worker service instead of streaming it to a [Worker]. A 2xx answer within the dispatch
// deadline completes the task; anything else is a failed attempt, retried as usual. The
// requests carry App Engine's X-AppEngine-* headers and, when the server has signing
// secrets, X-Taskq-Signature, which [VerifySignature] and [VerifyRequest] check.

// HTTPTarget is where a push queue delivers its tasks as HTTP requests ([QueueConfig.HTTPTarget]).
type HTTPTarget struct {
	// URI is the worker service's base URL: http:// or https://, a host, and optionally a
	// port and a path. Tasks whose [HTTPRequest.URL] is a path are sent under it (URI
	// "https://w.example.com/app" and URL "/work?x=1" give "https://w.example.com/app/work?x=1");
	// tasks without a URL to URI itself. Empty only when every task has an absolute URL.
	URI string
	// Method is the HTTP method of tasks that do not choose one: "POST" (the default when
	// empty), "GET", "HEAD", "PUT", "DELETE", "PATCH" or "OPTIONS" (http.MethodPut, ...).
	Method string
	// Headers are added to every request, replacing a task's header of the same name.
	Headers map[string]string
}

// HTTPRequest is the HTTP request a task of a queue with an [HTTPTarget] becomes
// ([TaskSpec.HTTPRequest]); its body is the task's payload.
type HTTPRequest struct {
	// URL is an absolute http:// or https:// URL, or a path with an optional query
	// ("/work?x=1") sent under the queue's URI. Empty means the queue's URI. Printable ASCII:
	// percent-encode the rest.
	URL string
	// Method is the HTTP method ("PUT", http.MethodPut, ...); empty means the queue's. GET,
	// HEAD, DELETE and OPTIONS requests have no body, so the payload must be empty.
	Method string
	// Headers are request headers, such as Content-Type (application/octet-stream by default
	// when there is a payload). The queue's headers replace those of the same name.
	Headers map[string]string
}

func (t *HTTPTarget) proto() (*taskqv1.HttpTarget, error) {
	if t == nil {
		return nil, nil
	}
	method, err := httpMethod(t.Method)
	if err != nil {
		return nil, err
	}
	return &taskqv1.HttpTarget{Uri: t.URI, HttpMethod: method, Headers: maps.Clone(t.Headers)}, nil
}

func (r *HTTPRequest) proto() (*taskqv1.HttpRequest, error) {
	if r == nil {
		return nil, nil
	}
	method, err := httpMethod(r.Method)
	if err != nil {
		return nil, err
	}
	return &taskqv1.HttpRequest{Url: r.URL, HttpMethod: method, Headers: maps.Clone(r.Headers)}, nil
}

// httpMethod is the HttpMethod of a method name ("" is unset); the name is case-insensitive.
func httpMethod(name string) (taskqv1.HttpMethod, error) {
	if name == "" {
		return taskqv1.HttpMethod_HTTP_METHOD_UNSPECIFIED, nil
	}
	value, ok := taskqv1.HttpMethod_value["HTTP_METHOD_"+strings.ToUpper(name)]
	if !ok || value == int32(taskqv1.HttpMethod_HTTP_METHOD_UNSPECIFIED) {
		return 0, fmt.Errorf("taskq: unsupported HTTP method %q (want POST, GET, HEAD, PUT, DELETE, PATCH or OPTIONS)", name)
	}
	return taskqv1.HttpMethod(value), nil
}

// HTTPMethodName is the method name ("PUT") of an HttpMethod as the server returns it in
// HttpTarget and HttpRequest messages; "" for HTTP_METHOD_UNSPECIFIED.
func HTTPMethodName(method taskqv1.HttpMethod) string {
	if method == taskqv1.HttpMethod_HTTP_METHOD_UNSPECIFIED {
		return ""
	}
	return strings.TrimPrefix(method.String(), "HTTP_METHOD_")
}
