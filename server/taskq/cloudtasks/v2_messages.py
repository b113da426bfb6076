"""google.cloud.tasks.v2 messages <-> taskq's queues and tasks, with Cloud Tasks' defaults and
limits (https://cloud.google.com/tasks/docs/reference/rpc/google.cloud.tasks.v2).

What maps how:
- A queue made through Cloud Tasks is a push queue delivered over HTTP; its tasks carry their
  own URL (HttpRequest.url), or a path on the App Engine app (AppEngineHttpRequest, routed as
  v2beta2's are: appengine_routing.py). What both versions' push tasks share (User-Agent,
  bodies, sizes, reading them back) is push_tasks.py.
- Queue defaults are Cloud Tasks': 500 dispatches/s (at most 500), 1000 concurrent (at most
  5000), 100 attempts (-1 unlimited), backoff 0.1 s to 1 h doubling 16 times; max_burst_size
  is output only. taskq's "unlimited" rate and attempts read as 0 and -1.
- A task's dispatch_count is taskq's attempt count; first_attempt carries its dispatch time,
  last_attempt the last attempt with its response status.
"""

from __future__ import annotations

import math
from typing import Any

from google.cloud import tasks_v2
from google.rpc import status_pb2

from taskq.api import convert, validate
from taskq.cloudtasks import names, push_tasks
from taskq.cloudtasks.appengine_routing import AppEngine
from taskq.core import limits
from taskq.core.errors import InvalidArgument
from taskq.core.limits import DAY, MINUTE, SECOND
from taskq.core.model import HttpMethod, HttpTarget, Queue, QueueState, QueueType, RetryPolicy, Task
from taskq.core.tasks import NewTask

QueuePb: Any = tasks_v2.Queue.pb()
TaskPb: Any = tasks_v2.Task.pb()
RateLimitsPb: Any = tasks_v2.RateLimits.pb()
RetryConfigPb: Any = tasks_v2.RetryConfig.pb()
HttpRequestPb: Any = tasks_v2.HttpRequest.pb()
AppEngineHttpRequestPb: Any = tasks_v2.AppEngineHttpRequest.pb()
AttemptPb: Any = tasks_v2.Attempt.pb()

# Cloud Tasks' limits and defaults.
MAX_RATE = 500.0
DEFAULT_RATE = 500.0
MAX_CONCURRENT = 5000
DEFAULT_CONCURRENT = 1000
DEFAULT_MAX_ATTEMPTS = 100
MAX_HTTP_DEADLINE_US = 30 * MINUTE
MAX_APP_ENGINE_DEADLINE_US = DAY
MIN_DEADLINE_US = 15 * SECOND
MAX_SCHEDULE_AHEAD_US = 30 * DAY

STATE_RUNNING = QueuePb.State.Value("RUNNING")
STATE_PAUSED = QueuePb.State.Value("PAUSED")
VIEW_BASIC = TaskPb.View.Value("BASIC")
VIEW_FULL = TaskPb.View.Value("FULL")


# Queues ---------------------------------------------------------------------------------------


def queue_to_pb(queue: Queue, parent: str) -> Any:
    message = QueuePb(name=names.queue_name(queue, parent))
    rates = message.rate_limits
    if queue.max_dispatches_per_second is not None:
        rates.max_dispatches_per_second = queue.max_dispatches_per_second
    rates.max_burst_size = queue.burst_size
    rates.max_concurrent_dispatches = queue.max_concurrent_dispatches
    retry = message.retry_config
    retry.max_attempts = queue.retry.max_attempts or -1
    if queue.retry.max_retry_duration_us:
        retry.max_retry_duration.CopyFrom(convert.duration(queue.retry.max_retry_duration_us))
    retry.min_backoff.CopyFrom(convert.duration(queue.retry.min_backoff_us or 0))
    retry.max_backoff.CopyFrom(convert.duration(queue.retry.max_backoff_us or 0))
    retry.max_doublings = queue.retry.max_doublings or 0
    message.state = STATE_PAUSED if queue.state is QueueState.PAUSED else STATE_RUNNING
    if queue.purge_time_us:
        message.purge_time.CopyFrom(convert.timestamp(queue.purge_time_us))
    target = queue.http_target
    if target is not None and (target.headers or target.method is not HttpMethod.POST):
        message.http_target.http_method = target.method.value
        for name, value in target.headers.items():
            override = message.http_target.header_overrides.add()
            override.header.key, override.header.value = name, value
    return message


def rate_limits(message: Any, field: str, queue: Queue) -> None:
    """Sets the queue's rate and cap from a RateLimits (0: Cloud Tasks' default)."""
    rate = message.max_dispatches_per_second
    if rate:
        if not math.isfinite(rate) or not 0 < rate <= MAX_RATE:
            raise InvalidArgument.field(f"{field}.max_dispatches_per_second", f"must be greater than 0 and at most "
                                        f"{MAX_RATE:g}", "VALUE_OUT_OF_RANGE")
        queue.max_dispatches_per_second = rate
    else:
        queue.max_dispatches_per_second = DEFAULT_RATE
    queue.max_burst_size = 0  # output only in Cloud Tasks: derived from the rate
    concurrent = message.max_concurrent_dispatches
    if concurrent:
        validate.int_range(concurrent, f"{field}.max_concurrent_dispatches", 1, MAX_CONCURRENT)
        queue.max_concurrent_dispatches = concurrent
    else:
        queue.max_concurrent_dispatches = DEFAULT_CONCURRENT


def retry_config(message: Any, field: str, complete: bool) -> RetryPolicy:
    """A RetryConfig: 0 (unset in proto3) takes Cloud Tasks' default when `complete` (a queue),
    else stays unset (a task's override). max_attempts -1 is unlimited."""
    policy = RetryPolicy()
    if message.max_attempts:
        attempts = validate.int_range(message.max_attempts, f"{field}.max_attempts", -1, limits.MAX_ATTEMPTS_LIMIT)
        policy.max_attempts = max(attempts, 0)
    elif complete:
        policy.max_attempts = DEFAULT_MAX_ATTEMPTS
    for name, attribute, maximum in (
        ("max_retry_duration", "max_retry_duration_us", limits.MAX_RETRY_DURATION_LIMIT_US),
        ("min_backoff", "min_backoff_us", limits.MAX_BACKOFF_LIMIT_US),
        ("max_backoff", "max_backoff_us", limits.MAX_BACKOFF_LIMIT_US),
    ):
        if message.HasField(name):
            setattr(policy, attribute, validate.duration_us(getattr(message, name), f"{field}.{name}", maximum_us=maximum))
    if message.max_doublings:
        policy.max_doublings = validate.int_range(message.max_doublings, f"{field}.max_doublings", 0,
                                                  limits.MAX_DOUBLINGS_LIMIT)
    if not complete:
        return policy
    policy.max_retry_duration_us = policy.max_retry_duration_us or 0
    policy.min_backoff_us = limits.DEFAULT_MIN_BACKOFF_US if policy.min_backoff_us is None else policy.min_backoff_us
    policy.max_backoff_us = limits.DEFAULT_MAX_BACKOFF_US if policy.max_backoff_us is None else policy.max_backoff_us
    policy.max_doublings = limits.DEFAULT_MAX_DOUBLINGS if policy.max_doublings is None else policy.max_doublings
    if policy.min_backoff_us > policy.max_backoff_us:
        raise InvalidArgument.field(f"{field}.min_backoff", "must not exceed max_backoff", "MIN_BACKOFF_ABOVE_MAX")
    return policy


def http_target(message: Any, field: str, base_uri: str) -> HttpTarget:
    """The queue's HTTP target: Cloud Tasks' queue-level http_target gives headers and a
    method; the base URI is the App Engine app's (for AppEngineHttpRequest tasks)."""
    target = HttpTarget(uri=base_uri)
    if message is None:
        return target
    if message.HasField("uri_override"):
        raise InvalidArgument.field(f"{field}.uri_override", "is not supported by taskq: give each task its URL",
                                    "UNSUPPORTED_FIELD")
    target.method = push_tasks.method(message.http_method, f"{field}.http_method") or HttpMethod.POST
    target.headers = push_tasks.queue_headers(message.header_overrides, f"{field}.header_overrides")
    return target


def new_queue(message: Any, field: str, parent: str, appengine_url: str) -> Queue:
    """A complete queue from a CreateQueue (or UpdateQueue creating one)."""
    queue_parent, queue_id = names.queue(message.name, f"{field}.name")
    if queue_parent != parent:
        raise InvalidArgument.field(f"{field}.name", f"must be under the parent {parent}", "PARENT_MISMATCH")
    queue = Queue(
        queue_id=queue_id, type=QueueType.PUSH, retry=RetryPolicy(), dispatch_deadline_us=limits.DEFAULT_DISPATCH_DEADLINE_US,
        task_ttl_us=limits.DEFAULT_TASK_TTL_US, tombstone_ttl_us=limits.DEFAULT_TOMBSTONE_TTL_US, cloud_parent=parent,
    )
    rate_limits(message.rate_limits, f"{field}.rate_limits", queue)
    queue.retry = retry_config(message.retry_config, f"{field}.retry_config", complete=True)
    queue.http_target = http_target(message.http_target if message.HasField("http_target") else None,
                                    f"{field}.http_target", appengine_url)
    return queue


# Tasks ----------------------------------------------------------------------------------------


def new_task(message: Any, field: str, queue: Queue, parent: str, app: AppEngine, max_task_bytes: int) -> NewTask:
    """A NewTask from a v2 Task: its name, schedule time, dispatch deadline, retry config and
    target (HttpRequest, or AppEngineHttpRequest routed to the app or one of its services)."""
    task_id = None
    if message.name:
        task_parent, queue_id, task_id = names.task(message.name, f"{field}.name")
        if queue_id != queue.queue_id or task_parent != parent:
            raise InvalidArgument.field(f"{field}.name", "must name a task of the parent queue", "PARENT_MISMATCH")
    schedule_us = None
    if message.HasField("schedule_time"):
        schedule_us = validate.timestamp_us(message.schedule_time, f"{field}.schedule_time")
    kind = message.WhichOneof("message_type")
    if kind == "http_request":
        request, body = push_tasks.http_task(message.http_request, f"{field}.http_request", queue, max_task_bytes)
        deadline_max = MAX_HTTP_DEADLINE_US
    elif kind == "app_engine_http_request":
        request, body = push_tasks.app_engine_task(message.app_engine_http_request, f"{field}.app_engine_http_request",
                                                   "relative_uri", "body", queue, app, max_task_bytes)
        deadline_max = MAX_APP_ENGINE_DEADLINE_US
    else:
        raise InvalidArgument.field(f"{field}.http_request", "a task needs an http_request or an "
                                    "app_engine_http_request", "REQUIRED_FIELD")
    deadline_us = 0
    if message.HasField("dispatch_deadline"):
        deadline_us = validate.duration_us(message.dispatch_deadline, f"{field}.dispatch_deadline",
                                           minimum_us=MIN_DEADLINE_US, maximum_us=deadline_max)
    retry = None
    if message.HasField("retry_config"):
        retry = retry_config(message.retry_config, f"{field}.retry_config", complete=False)
        retry = None if retry.is_empty() else retry
    return NewTask(task_id=task_id, payload=body, schedule_time_us=schedule_us, retry=retry,
                   dispatch_deadline_us=deadline_us, http=request)


def task_to_pb(task: Task, queue: Queue, parent: str, view: int, app: AppEngine) -> Any:
    message = TaskPb(name=names.task_name(queue, parent, task.task_id), view=view)
    # Every v2 queue may hold both kinds of tasks.
    push_tasks.request_to_pb(message, task, queue, app, view == VIEW_FULL, True, "relative_uri", "body")
    message.schedule_time.CopyFrom(convert.timestamp(task.schedule_time_us))
    message.create_time.CopyFrom(convert.timestamp(task.create_time_us))
    message.dispatch_deadline.CopyFrom(convert.duration(task.dispatch_deadline_us or queue.dispatch_deadline_us))
    message.dispatch_count = task.attempt_count
    message.response_count = task.response_count
    if task.first_attempt_time_us:
        message.first_attempt.dispatch_time.CopyFrom(convert.timestamp(task.first_attempt_time_us))
    if task.last_attempt is not None:
        attempt = task.last_attempt
        last = message.last_attempt
        last.dispatch_time.CopyFrom(convert.timestamp(attempt.dispatch_time_us))
        if attempt.response_time_us:
            last.response_time.CopyFrom(convert.timestamp(attempt.response_time_us))
            last.response_status.CopyFrom(status_pb2.Status(code=attempt.error_code, message=attempt.error_message))
    if task.retry is not None and not task.retry.is_empty():
        retry = message.retry_config
        if task.retry.max_attempts is not None:
            retry.max_attempts = task.retry.max_attempts or -1
        for name, attribute in (("max_retry_duration", "max_retry_duration_us"), ("min_backoff", "min_backoff_us"),
                                ("max_backoff", "max_backoff_us")):
            if getattr(task.retry, attribute) is not None:
                getattr(retry, name).CopyFrom(convert.duration(getattr(task.retry, attribute)))
        if task.retry.max_doublings is not None:
            retry.max_doublings = task.retry.max_doublings
    return message
