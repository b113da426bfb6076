package taskq

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"iter"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	taskqv1 "github.com/taskq/taskq/clients/go/gen/taskq/v1"
)

// TaskSpec describes a task to create. Only Payload is commonly needed.
type TaskSpec struct {
	// ID names the task (an id, or a full name in the same queue) to de-duplicate: a second
	// task of that name fails with [ErrTaskAlreadyExists], or [ErrTaskTombstoned] shortly
	// after the first finished. Empty lets the server generate a unique id.
	ID string
	// Payload is the work itself, opaque to the server (at most 1 MiB by default, with the
	// attributes and tag).
	Payload []byte
	// Attributes are headers for the worker (content type, trace context, ...).
	Attributes map[string]string
	// Tag groups tasks of a pull queue for leasing by tag.
	Tag string
	// ScheduleTime is when the task may first be delivered; zero means now (or Delay).
	ScheduleTime time.Time
	// Delay schedules the task this long from now (by this machine's clock) when
	// ScheduleTime is zero.
	Delay time.Duration
	// Retry overrides the queue's retry policy for this task; zero fields follow the queue.
	Retry RetryPolicy
	// DispatchDeadline overrides a push queue's dispatch deadline (15 s to 24 h).
	DispatchDeadline time.Duration
	// RequestID is the idempotency key (1 to 100 of [A-Za-z0-9_-]): a repeated create with
	// the same key in the same queue returns the first task instead of adding another. Empty
	// means a random one, chosen before the first attempt and sent on every retry, so that
	// the client's own retries on UNAVAILABLE never add a task twice. An application that
	// retries a create itself (after the client gave up) must set its own, the same on each
	// of its attempts.
	RequestID string
	// HTTPRequest is the HTTP request the task becomes (URL or path, method, headers; the
	// body is Payload), in a queue with an [HTTPTarget]; nil sends it to the queue's target
	// as it is. Tasks of other queues cannot have one.
	HTTPRequest *HTTPRequest
}

func (s TaskSpec) request(queue string) (*taskqv1.CreateTaskRequest, error) {
	httpRequest, err := s.HTTPRequest.proto()
	if err != nil {
		return nil, err
	}
	parent := QueueName(queue)
	task := &taskqv1.Task{
		Payload:          s.Payload,
		Attributes:       s.Attributes,
		Tag:              s.Tag,
		RetryConfig:      s.Retry.proto(),
		DispatchDeadline: optionalDuration(s.DispatchDeadline),
		HttpRequest:      httpRequest,
	}
	if s.ID != "" {
		task.Name = TaskName(parent, s.ID)
	}
	switch {
	case !s.ScheduleTime.IsZero():
		task.ScheduleTime = timestamppb.New(s.ScheduleTime)
	case s.Delay > 0:
		task.ScheduleTime = timestamppb.New(time.Now().Add(s.Delay))
	}
	requestID := s.RequestID
	if requestID == "" {
		requestID = newRequestID()
	}
	return &taskqv1.CreateTaskRequest{Parent: parent, Task: task, RequestId: requestID}, nil
}

// newRequestID is a random idempotency key: 128 bits, as 32 hex digits.
func newRequestID() string {
	var id [16]byte
	_, _ = rand.Read(id[:]) // crypto/rand.Read never fails
	return hex.EncodeToString(id[:])
}

// CreateTask adds a task to a queue and returns it (without its payload). Calls made close
// together, from any goroutines, share one BatchCreateTasks call unless batching is off
// ([WithoutBatching]); each caller still gets its own task or error, as if it had called
// alone. A failure with UNAVAILABLE is retried with the same request_id ([WithRetry]). If
// ctx ends first, the create may or may not have been made.
func (c *Client) CreateTask(ctx context.Context, queue string, spec TaskSpec) (*taskqv1.Task, error) {
	request, err := spec.request(queue)
	if err != nil {
		return nil, err
	}
	if c.creates != nil {
		return c.creates.submit(ctx, request.GetParent(), request)
	}
	response, err := c.tasks.CreateTask(ctx, request)
	if err != nil {
		return nil, convertError(ctx, err)
	}
	return response.GetTask(), nil
}

// CreateResult is the outcome of one item of [Client.CreateTasks]: the created task, or
// the error that refused it.
type CreateResult struct {
	Task *taskqv1.Task
	Err  error
}

// CreateTasks adds up to 1000 tasks to a queue in one call and one durable commit. It
// returns one result per spec, in order: one refused item does not fail the others. The
// error is for the call as a whole (an unknown queue, too many items).
func (c *Client) CreateTasks(ctx context.Context, queue string, specs []TaskSpec) ([]CreateResult, error) {
	request := &taskqv1.BatchCreateTasksRequest{Parent: QueueName(queue)}
	for i, spec := range specs {
		create, err := spec.request(queue)
		if err != nil {
			return nil, fmt.Errorf("%w (task %d)", err, i)
		}
		request.Requests = append(request.Requests, create)
	}
	response, err := c.tasks.BatchCreateTasks(ctx, request)
	if err != nil {
		return nil, convertError(ctx, err)
	}
	if len(response.GetResults()) != len(specs) {
		return nil, fmt.Errorf("taskq: the server answered %d results for %d tasks", len(response.GetResults()), len(specs))
	}
	results := make([]CreateResult, len(specs))
	for i, result := range response.GetResults() {
		if task := result.GetTask(); task != nil {
			results[i].Task = task
		} else if e := FromStatus(result.GetError()); e != nil {
			results[i].Err = e
		} else {
			results[i].Err = fmt.Errorf("taskq: the server answered an empty result for item %d", i)
		}
	}
	return results, nil
}

// GetTask returns a task, payload included; [ErrTaskNotFound] if there is none.
func (c *Client) GetTask(ctx context.Context, name string) (*taskqv1.Task, error) {
	response, err := c.tasks.GetTask(ctx, &taskqv1.GetTaskRequest{Name: name})
	if err != nil {
		return nil, convertError(ctx, err)
	}
	return response.GetTask(), nil
}

// ListTasksOptions restricts and shapes [Client.ListTasks]. Conditions are combined with AND.
type ListTasksOptions struct {
	// States keeps tasks in any of these states.
	States []taskqv1.TaskState
	// Tag keeps tasks of this tag.
	Tag string
	// Filter is a raw ListTasks filter (`state = READY AND tag = "x"`), added to the above.
	Filter string
	// WithPayload returns the tasks' payloads too.
	WithPayload bool
	// PageSize is how many tasks each call fetches (0: the server's default, 100).
	PageSize int32
}

func (o ListTasksOptions) filter() string {
	var terms []string
	if len(o.States) > 0 {
		names := make([]string, len(o.States))
		for i, state := range o.States {
			names[i] = state.String()
		}
		terms = append(terms, "state = ("+strings.Join(names, " OR ")+")")
	}
	if o.Tag != "" {
		escaped := strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(o.Tag)
		terms = append(terms, `tag = "`+escaped+`"`)
	}
	if o.Filter != "" {
		terms = append(terms, o.Filter)
	}
	return strings.Join(terms, " AND ")
}

// ListTasks iterates over a queue's tasks in task id order, following page tokens to the
// end. Iteration stops at the first error, which it yields.
//
//	for task, err := range client.ListTasks(ctx, "reports", taskq.ListTasksOptions{Tag: "q3"}) {
//		if err != nil { return err }
//		...
//	}
func (c *Client) ListTasks(ctx context.Context, queue string, options ListTasksOptions) iter.Seq2[*taskqv1.Task, error] {
	return func(yield func(*taskqv1.Task, error) bool) {
		request := &taskqv1.ListTasksRequest{
			Parent:   QueueName(queue),
			Filter:   options.filter(),
			View:     taskqv1.TaskView_TASK_VIEW_BASIC,
			PageSize: options.PageSize,
		}
		if options.WithPayload {
			request.View = taskqv1.TaskView_TASK_VIEW_FULL
		}
		for {
			response, err := c.tasks.ListTasks(ctx, request)
			if err != nil {
				yield(nil, convertError(ctx, err))
				return
			}
			for _, task := range response.GetTasks() {
				if !yield(task, nil) {
					return
				}
			}
			// A page may be short, even empty, while more remain: only an empty token ends.
			if response.GetNextPageToken() == "" {
				return
			}
			request.PageToken = response.GetNextPageToken()
		}
	}
}

// DeleteTask deletes a task. With a lease token it acknowledges the leased task, failing
// with [ErrLeaseLost] if the lease is no longer that one; with "" it removes the task
// whatever its state.
func (c *Client) DeleteTask(ctx context.Context, name, leaseToken string) error {
	_, err := c.tasks.DeleteTask(ctx, &taskqv1.DeleteTaskRequest{Name: name, LeaseToken: leaseToken})
	return convertError(ctx, err)
}

// Ack acknowledges a leased task (as LeaseTasks returned it, with its lease token): the
// task is done and deleted.
func (c *Client) Ack(ctx context.Context, task *taskqv1.Task) error {
	return c.DeleteTask(ctx, task.GetName(), task.GetLeaseToken())
}

// TaskRef names a task to delete, with the lease token to acknowledge it or "" to remove it.
type TaskRef struct {
	Name       string
	LeaseToken string
}

// Ref is the TaskRef acknowledging a leased task.
func Ref(task *taskqv1.Task) TaskRef {
	return TaskRef{Name: task.GetName(), LeaseToken: task.GetLeaseToken()}
}

// DeleteTasks deletes or acknowledges up to 1000 tasks of one queue in one call. It returns
// one error per item, in order, nil for each one deleted; the error is for the call as a
// whole.
func (c *Client) DeleteTasks(ctx context.Context, queue string, tasks []TaskRef) ([]error, error) {
	request := &taskqv1.BatchDeleteTasksRequest{Parent: QueueName(queue)}
	for _, task := range tasks {
		request.Requests = append(request.Requests, &taskqv1.DeleteTaskRequest{Name: task.Name, LeaseToken: task.LeaseToken})
	}
	return c.deleteTasks(ctx, request)
}

func (c *Client) deleteTasks(ctx context.Context, request *taskqv1.BatchDeleteTasksRequest) ([]error, error) {
	response, err := c.tasks.BatchDeleteTasks(ctx, request)
	if err != nil {
		return nil, convertError(ctx, err)
	}
	if len(response.GetResults()) != len(request.GetRequests()) {
		return nil, fmt.Errorf("taskq: the server answered %d results for %d deletes",
			len(response.GetResults()), len(request.GetRequests()))
	}
	errs := make([]error, len(response.GetResults()))
	for i, result := range response.GetResults() {
		if e := FromStatus(result); e != nil {
			errs[i] = e
		}
	}
	return errs, nil
}

// LeaseOptions are the arguments of [Client.LeaseTasks].
type LeaseOptions struct {
	// Duration is how long the leases last (required; at most 7 days).
	Duration time.Duration
	// MaxTasks is the most tasks to lease, 1 to 1000 (0: 1).
	MaxTasks int32
	// Tag leases only tasks of this tag.
	Tag string
	// OldestTag leases only tasks with the tag of the oldest ready task.
	OldestTag bool
	// Wait long-polls: when no task is ready, the call waits up to this long (at most 60 s)
	// and returns as soon as one is.
	Wait time.Duration
	// WithoutPayload leaves the payloads out of the response.
	WithoutPayload bool
}

// LeaseTasks leases ready tasks of a pull queue, oldest schedule time first. Each task
// carries its lease_token; acknowledge it with [Client.Ack], extend it with
// [Client.ModifyLease], give it back with [Client.Release]. An empty result means no task
// was ready. Fails with [ErrQueuePaused] or [ErrWrongQueueType]. When an attempt's answer
// is lost and the call retried, the tasks that attempt leased come back (ready, the attempt
// counted) when their lease expires.
func (c *Client) LeaseTasks(ctx context.Context, queue string, options LeaseOptions) ([]*taskqv1.Task, error) {
	maxTasks := options.MaxTasks
	if maxTasks == 0 {
		maxTasks = 1
	}
	request := &taskqv1.LeaseTasksRequest{
		Parent:        QueueName(queue),
		LeaseDuration: durationpb.New(options.Duration),
		MaxTasks:      maxTasks,
		Tag:           options.Tag,
		OldestTag:     options.OldestTag,
		Wait:          optionalDuration(options.Wait),
	}
	if options.WithoutPayload {
		request.ResponseView = taskqv1.TaskView_TASK_VIEW_BASIC
	}
	response, err := c.tasks.LeaseTasks(ctx, request)
	if err != nil {
		return nil, convertError(ctx, err)
	}
	return response.GetTasks(), nil
}

// ModifyLease sets the lease of a task to end d from now; 0 releases it at once for another
// worker (the attempt still counts). Fails with [ErrLeaseLost] if leaseToken is stale.
func (c *Client) ModifyLease(ctx context.Context, name, leaseToken string, d time.Duration) (*taskqv1.Task, error) {
	response, err := c.tasks.ModifyLease(ctx, &taskqv1.ModifyLeaseRequest{
		Name: name, LeaseToken: leaseToken, LeaseDuration: durationpb.New(d),
	})
	if err != nil {
		return nil, convertError(ctx, err)
	}
	return response.GetTask(), nil
}

// Release gives a leased task back at once, for another worker.
func (c *Client) Release(ctx context.Context, task *taskqv1.Task) error {
	_, err := c.ModifyLease(ctx, task.GetName(), task.GetLeaseToken(), 0)
	return err
}

// RunTask makes a scheduled or failed task ready now. A leased task fails with
// [ErrTaskLeased].
func (c *Client) RunTask(ctx context.Context, name string) (*taskqv1.Task, error) {
	response, err := c.tasks.RunTask(ctx, &taskqv1.RunTaskRequest{Name: name})
	if err != nil {
		return nil, convertError(ctx, err)
	}
	return response.GetTask(), nil
}
