package taskq

import (
	"context"
	"iter"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	taskqv1 "github.com/taskq/taskq/clients/go/gen/taskq/v1"
)

// Queue types, for [QueueConfig.Type].
const (
	// PushQueue: the server streams tasks to workers ([Worker]) under the queue's rate limits.
	PushQueue = taskqv1.QueueType_QUEUE_TYPE_PUSH
	// PullQueue: workers lease tasks ([Client.LeaseTasks], [PullWorker]).
	PullQueue = taskqv1.QueueType_QUEUE_TYPE_PULL
)

// QueueConfig is the configuration of a queue. Zero fields are left unset: the server
// applies its defaults (documented in proto/taskq/v1/queue.proto) and returns the effective
// values.
type QueueConfig struct {
	// Type is PushQueue (the default) or PullQueue. It cannot be changed later.
	Type taskqv1.QueueType

	// MaxDispatchesPerSecond is a push queue's token-bucket rate; 0 means unlimited.
	MaxDispatchesPerSecond float64
	// MaxBurstSize is the token-bucket size; 0 means max(1, rate/5), or 5 without a rate.
	MaxBurstSize int32
	// MaxConcurrentDispatches caps a push queue's tasks out at once; 0 means 1000.
	MaxConcurrentDispatches int32

	// Retry is when failed tasks are retried and when the server gives up.
	Retry RetryPolicy

	// DispatchDeadline is how long a pushed task stays leased to its worker (15 s to 24 h;
	// 0 means 10 minutes). The [Worker] extends it while the handler runs.
	DispatchDeadline time.Duration
	// DeadLetterQueue (an id or full name) receives the tasks whose retries are exhausted;
	// empty keeps them in this queue in state TASK_STATE_FAILED.
	DeadLetterQueue string
	// TaskTTL is how long failed tasks are kept; 0 means 31 days.
	TaskTTL time.Duration
	// TombstoneTTL is how long a finished task's name stays reserved; 0 means 1 hour.
	TombstoneTTL time.Duration

	// HTTPTarget makes a push queue deliver its tasks as HTTP requests to a worker service
	// instead of streaming them to workers; nil means streamed push. Pull queues cannot have
	// one. UpdateQueue changes or removes it with the field "http_target".
	HTTPTarget *HTTPTarget
}

// RetryPolicy is a retry configuration: a queue's, or a task's overrides of it, where zero
// fields follow the queue.
type RetryPolicy struct {
	// MaxAttempts counts the first attempt. 0 leaves it unset (a queue: unlimited; a task:
	// the queue's); -1 means unlimited.
	MaxAttempts int32
	// MaxRetryDuration is how long after the first attempt a task is still retried; 0 leaves
	// it unset (unlimited).
	MaxRetryDuration time.Duration
	// MinBackoff is the delay before the first retry (0: 0.1 s).
	MinBackoff time.Duration
	// MaxBackoff is the longest delay between attempts (0: 3600 s).
	MaxBackoff time.Duration
	// MaxDoublings is how often the delay doubles before it grows linearly; nil: 16.
	MaxDoublings *int32
}

func (p RetryPolicy) proto() *taskqv1.RetryConfig {
	if p == (RetryPolicy{}) {
		return nil
	}
	config := &taskqv1.RetryConfig{
		MaxRetryDuration: optionalDuration(p.MaxRetryDuration),
		MinBackoff:       optionalDuration(p.MinBackoff),
		MaxBackoff:       optionalDuration(p.MaxBackoff),
		MaxDoublings:     p.MaxDoublings,
	}
	if p.MaxAttempts != 0 {
		config.MaxAttempts = &p.MaxAttempts
	}
	return config
}

func (c QueueConfig) proto(name string) (*taskqv1.Queue, error) {
	target, err := c.HTTPTarget.proto()
	if err != nil {
		return nil, err
	}
	queue := &taskqv1.Queue{
		Name:             name,
		Type:             c.Type,
		RetryConfig:      c.Retry.proto(),
		DispatchDeadline: optionalDuration(c.DispatchDeadline),
		TaskTtl:          optionalDuration(c.TaskTTL),
		TombstoneTtl:     optionalDuration(c.TombstoneTTL),
		HttpTarget:       target,
	}
	if c.DeadLetterQueue != "" {
		queue.DeadLetterQueue = QueueName(c.DeadLetterQueue)
	}
	if c.MaxDispatchesPerSecond != 0 || c.MaxBurstSize != 0 || c.MaxConcurrentDispatches != 0 {
		queue.RateLimits = &taskqv1.RateLimits{
			MaxBurstSize:            c.MaxBurstSize,
			MaxConcurrentDispatches: c.MaxConcurrentDispatches,
		}
		if c.MaxDispatchesPerSecond != 0 {
			queue.RateLimits.MaxDispatchesPerSecond = &c.MaxDispatchesPerSecond
		}
	}
	return queue, nil
}

func optionalDuration(d time.Duration) *durationpb.Duration {
	if d == 0 {
		return nil
	}
	return durationpb.New(d)
}

// CreateQueue creates a queue (an id or full name). A queue of that name that exists fails
// with [ErrQueueAlreadyExists].
func (c *Client) CreateQueue(ctx context.Context, queue string, config QueueConfig) (*taskqv1.Queue, error) {
	message, err := config.proto(QueueName(queue))
	if err != nil {
		return nil, err
	}
	response, err := c.queues.CreateQueue(ctx, &taskqv1.CreateQueueRequest{Queue: message})
	if err != nil {
		return nil, convertError(ctx, err)
	}
	return response.GetQueue(), nil
}

// GetQueue returns a queue with its effective configuration; [ErrQueueNotFound] if there
// is none.
func (c *Client) GetQueue(ctx context.Context, queue string) (*taskqv1.Queue, error) {
	response, err := c.queues.GetQueue(ctx, &taskqv1.GetQueueRequest{Name: QueueName(queue)})
	if err != nil {
		return nil, convertError(ctx, err)
	}
	return response.GetQueue(), nil
}

// ListQueues iterates over every queue in name order, fetching pageSize at a time (0: the
// server's default, 100). Iteration stops at the first error, which it yields.
func (c *Client) ListQueues(ctx context.Context, pageSize int32) iter.Seq2[*taskqv1.Queue, error] {
	return func(yield func(*taskqv1.Queue, error) bool) {
		request := &taskqv1.ListQueuesRequest{PageSize: pageSize}
		for {
			response, err := c.queues.ListQueues(ctx, request)
			if err != nil {
				yield(nil, convertError(ctx, err))
				return
			}
			for _, queue := range response.GetQueues() {
				if !yield(queue, nil) {
					return
				}
			}
			if response.GetNextPageToken() == "" {
				return
			}
			request.PageToken = response.GetNextPageToken()
		}
	}
}

// UpdateQueue changes the fields of the queue named by fields, proto paths such as
// "rate_limits.max_dispatches_per_second", "retry_config", "dispatch_deadline" or
// "http_target", to their values in config (Type is ignored). With no fields every
// changeable field is set, and the zero ones go back to their defaults (a nil HTTPTarget
// removes the queue's target).
func (c *Client) UpdateQueue(ctx context.Context, queue string, config QueueConfig, fields ...string) (*taskqv1.Queue, error) {
	message, err := config.proto(QueueName(queue))
	if err != nil {
		return nil, err
	}
	request := &taskqv1.UpdateQueueRequest{Queue: message}
	request.Queue.Type = taskqv1.QueueType_QUEUE_TYPE_UNSPECIFIED
	if len(fields) > 0 {
		request.UpdateMask = &fieldmaskpb.FieldMask{Paths: fields}
	}
	response, err := c.queues.UpdateQueue(ctx, request)
	if err != nil {
		return nil, convertError(ctx, err)
	}
	return response.GetQueue(), nil
}

// DeleteQueue deletes a queue and every task in it.
func (c *Client) DeleteQueue(ctx context.Context, queue string) error {
	_, err := c.queues.DeleteQueue(ctx, &taskqv1.DeleteQueueRequest{Name: QueueName(queue)})
	return convertError(ctx, err)
}

// PauseQueue stops the queue handing out tasks; it still accepts new ones.
func (c *Client) PauseQueue(ctx context.Context, queue string) (*taskqv1.Queue, error) {
	response, err := c.queues.PauseQueue(ctx, &taskqv1.PauseQueueRequest{Name: QueueName(queue)})
	if err != nil {
		return nil, convertError(ctx, err)
	}
	return response.GetQueue(), nil
}

// ResumeQueue lets a paused queue hand out tasks again.
func (c *Client) ResumeQueue(ctx context.Context, queue string) (*taskqv1.Queue, error) {
	response, err := c.queues.ResumeQueue(ctx, &taskqv1.ResumeQueueRequest{Name: QueueName(queue)})
	if err != nil {
		return nil, convertError(ctx, err)
	}
	return response.GetQueue(), nil
}

// PurgeQueue deletes every task created before the call, leased ones included; the
// response has the queue (with its purge_time) and the purged count. It is not retried on
// UNAVAILABLE: a second purge would also delete tasks created since the first, whose answer
// may only have been lost.
func (c *Client) PurgeQueue(ctx context.Context, queue string) (*taskqv1.PurgeQueueResponse, error) {
	response, err := c.queues.PurgeQueue(ctx, &taskqv1.PurgeQueueRequest{Name: QueueName(queue)})
	if err != nil {
		return nil, convertError(ctx, err)
	}
	return response, nil
}

// GetQueueStats returns the queue's counts and rates.
func (c *Client) GetQueueStats(ctx context.Context, queue string) (*taskqv1.QueueStats, error) {
	response, err := c.queues.GetQueueStats(ctx, &taskqv1.GetQueueStatsRequest{Name: QueueName(queue)})
	if err != nil {
		return nil, convertError(ctx, err)
	}
	return response.GetStats(), nil
}
