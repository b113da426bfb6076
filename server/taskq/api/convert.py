"""Translation between taskq.v1 messages and core.model objects: the only place doing it.

Incoming values are assumed valid (api/validate.py checked them); outgoing ones are built
from what the core returned.
"""

from __future__ import annotations

from google.protobuf import duration_pb2, timestamp_pb2

from taskq.core.model import US_PER_SECOND, Queue, RetryPolicy, Task
from taskq.core.queues import QueueStats
from taskq.v1 import queue_pb2, task_pb2

_NANOS_PER_US = 1000


def timestamp(time_us: int) -> timestamp_pb2.Timestamp:
    seconds, micros = divmod(time_us, US_PER_SECOND)
    return timestamp_pb2.Timestamp(seconds=seconds, nanos=micros * _NANOS_PER_US)


def duration(duration_us: int) -> duration_pb2.Duration:
    seconds, micros = divmod(duration_us, US_PER_SECOND)
    return duration_pb2.Duration(seconds=seconds, nanos=micros * _NANOS_PER_US)


def timestamp_us(value: timestamp_pb2.Timestamp) -> int:
    return value.seconds * US_PER_SECOND + value.nanos // _NANOS_PER_US


def duration_us(value: duration_pb2.Duration) -> int:
    # Durations are validated non-negative before conversion; round nanoseconds up so that a
    # positive duration never becomes zero.
    return value.seconds * US_PER_SECOND + -(-value.nanos // _NANOS_PER_US)


def queue_name(queue_id: str) -> str:
    return f"queues/{queue_id}"


def task_name(queue_id: str, task_id: str) -> str:
    return f"queues/{queue_id}/tasks/{task_id}"


# Tasks ---------------------------------------------------------------------------------------


def retry_to_proto(policy: RetryPolicy, message: queue_pb2.RetryConfig) -> None:
    if policy.max_attempts is not None:
        message.max_attempts = policy.max_attempts
    if policy.max_retry_duration_us is not None:
        message.max_retry_duration.CopyFrom(duration(policy.max_retry_duration_us))
    if policy.min_backoff_us is not None:
        message.min_backoff.CopyFrom(duration(policy.min_backoff_us))
    if policy.max_backoff_us is not None:
        message.max_backoff.CopyFrom(duration(policy.max_backoff_us))
    if policy.max_doublings is not None:
        message.max_doublings = policy.max_doublings


def _state_value(state) -> int:
    return task_pb2.TASK_STATE_UNSPECIFIED if state is None else state.value


def _set_time(field: timestamp_pb2.Timestamp, time_us: int) -> None:
    # Setting the fields in place is about twice as fast as building a Timestamp and copying it.
    seconds, micros = divmod(time_us, US_PER_SECOND)
    field.seconds = seconds
    field.nanos = micros * _NANOS_PER_US


def task_to_proto(queue_id: str, task: Task, now_us: int, view: int) -> task_pb2.Task:
    """The API view of a task; `view` is TASK_VIEW_BASIC or TASK_VIEW_FULL."""
    message = task_pb2.Task()
    fill_task(message, queue_id, task, now_us, view)
    return message


def fill_task(message: task_pb2.Task, queue_id: str, task: Task, now_us: int, view: int) -> None:
    """Writes the API view of a task into an empty message, such as a repeated field's new
    element: building in place saves a copy per task in batch responses and stream messages."""
    message.name = f"queues/{queue_id}/tasks/{task.task_id}"
    if task.tag:
        message.tag = task.tag
    message.state = _state_value(task.state(now_us))  # type: ignore[assignment]  # enum values are ints
    if task.attempt_count:
        message.attempt_count = task.attempt_count
    if task.lease_token:
        message.lease_token = task.lease_token
    message.view = view  # type: ignore[assignment]  # a TaskView value, checked by the API layer
    if task.attributes:
        message.attributes.update(task.attributes)
    _set_time(message.schedule_time, task.schedule_time_us)
    if task.create_time_us:
        _set_time(message.create_time, task.create_time_us)
    if view == task_pb2.TASK_VIEW_FULL and task.payload:
        message.payload = task.payload
    if task.retry is not None and not task.retry.is_empty():
        retry_to_proto(task.retry, message.retry_config)
    if task.dispatch_deadline_us:
        message.dispatch_deadline.CopyFrom(duration(task.dispatch_deadline_us))
    if task.first_attempt_time_us:
        _set_time(message.first_attempt_time, task.first_attempt_time_us)
    attempt = task.last_attempt
    if attempt is not None:
        last = message.last_attempt
        _set_time(last.dispatch_time, attempt.dispatch_time_us)
        if attempt.response_time_us:
            _set_time(last.response_time, attempt.response_time_us)
        if attempt.error_code:
            last.error.code = attempt.error_code
            last.error.message = attempt.error_message
        if attempt.http_status:
            last.http_status = attempt.http_status
    if task.lease_expire_us:
        _set_time(message.lease_expire_time, task.lease_expire_us)
    if task.http is not None:
        request = message.http_request
        request.url = task.http.url
        if task.http.method is not None:
            request.http_method = task.http.method.value  # type: ignore[assignment]
        if task.http.headers:
            request.headers.update(task.http.headers)
    if task.response_count:
        message.response_count = task.response_count
    if task.trace_parent:
        message.trace_parent = task.trace_parent
        message.trace_state = task.trace_state


# Queues --------------------------------------------------------------------------------------


def queue_to_proto(queue: Queue) -> queue_pb2.Queue:
    message = queue_pb2.Queue(
        name=queue.name,
        type=queue.type.value,  # type: ignore[arg-type]  # core's enums carry the API's values
        dispatch_deadline=duration(queue.dispatch_deadline_us),
        dead_letter_queue=queue_name(queue.dead_letter_queue) if queue.dead_letter_queue else "",
        task_ttl=duration(queue.task_ttl_us),
        tombstone_ttl=duration(queue.tombstone_ttl_us),
        state=queue.state.value,  # type: ignore[arg-type]
        create_time=timestamp(queue.create_time_us),
        update_time=timestamp(queue.update_time_us),
    )
    limits = message.rate_limits
    if queue.max_dispatches_per_second is not None:
        limits.max_dispatches_per_second = queue.max_dispatches_per_second
    limits.max_burst_size = queue.burst_size
    limits.max_concurrent_dispatches = queue.max_concurrent_dispatches
    retry_to_proto(queue.retry, message.retry_config)
    if queue.purge_time_us:
        message.purge_time.CopyFrom(timestamp(queue.purge_time_us))
    if queue.http_target is not None:
        target = message.http_target
        target.uri = queue.http_target.uri
        target.http_method = queue.http_target.method.value  # type: ignore[assignment]
        target.headers.update(queue.http_target.headers)
    return message


def stats_to_proto(stats: QueueStats) -> queue_pb2.QueueStats:
    message = queue_pb2.QueueStats(
        tasks_count=stats.tasks_count,
        scheduled_count=stats.scheduled_count,
        ready_count=stats.ready_count,
        leased_count=stats.leased_count,
        failed_count=stats.failed_count,
        executed_last_minute=stats.executed_last_minute,
        leased_last_minute=stats.leased_last_minute,
        concurrent_dispatches=stats.concurrent_dispatches,
        effective_dispatch_rate=stats.effective_dispatch_rate,
    )
    if stats.oldest_schedule_time_us is not None:
        message.oldest_schedule_time.CopyFrom(timestamp(stats.oldest_schedule_time_us))
    return message
