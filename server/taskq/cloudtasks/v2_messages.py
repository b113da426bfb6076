"""google.cloud.tasks.v2 messages <-> taskq's queues and tasks, with Cloud Tasks' defaults and
limits (https://cloud.google.com/tasks/docs/reference/rpc/google.cloud.tasks.v2).

What maps how:
- A queue made through Cloud Tasks is a push queue delivered over HTTP; its tasks carry their
  own URL (HttpRequest.url), or a path on the App Engine app (AppEngineHttpRequest, sent to
  --appengine-url, or to the URL --appengine-targets gives its routing service).
- Queue defaults are Cloud Tasks': 500 dispatches/s (at most 500), 1000 concurrent (at most
  5000), 100 attempts (-1 unlimited), backoff 0.1 s to 1 h doubling 16 times; max_burst_size
  is output only. taskq's "unlimited" rate and attempts read as 0 and -1.
- A task's dispatch_count is taskq's attempt count; first_attempt carries its dispatch time,
  last_attempt the last attempt with its response status.
- HttpRequest tasks are sent with `User-Agent: Google-Cloud-Tasks`, whatever the task or its
  queue's header_overrides say, as Cloud Tasks documents; the task shows it among its headers.
"""

from __future__ import annotations

import math
from typing import Any

from google.cloud import tasks_v2
from google.rpc import status_pb2

from taskq.api import convert, validate
from taskq.cloudtasks import names
from taskq.core import http_push, limits
from taskq.core.errors import FailedPrecondition, InvalidArgument
from taskq.core.limits import DAY, MINUTE, SECOND
from taskq.core.model import HttpMethod, HttpRequest, HttpTarget, Queue, QueueState, QueueType, RetryPolicy, Task
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
MAX_URL_CHARS = 2083
#: Methods whose requests may carry a body (Cloud Tasks: "POST, PUT, or PATCH").
BODY_METHODS = (HttpMethod.POST, HttpMethod.PUT, HttpMethod.PATCH)
#: The User-Agent Cloud Tasks sets on HttpRequest tasks' requests (handlers may check it).
HTTP_USER_AGENT = "Google-Cloud-Tasks"

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
    if message.http_method:
        target.method = _method(message.http_method, f"{field}.http_method")
    # Queue headers replace a task's: a User-Agent among them would replace Google-Cloud-Tasks.
    target.headers = {override.header.key: override.header.value for override in message.header_overrides
                      if not _is_user_agent(override.header.key)}
    http_push.check_headers(target.headers, f"{field}.header_overrides")
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


def _method(value: int, field: str) -> HttpMethod:
    try:
        return HttpMethod(value)
    except ValueError:
        raise InvalidArgument.field(field, f"{value} is not an HttpMethod", "INVALID_ENUM_VALUE") from None


def new_task(
    message: Any, field: str, queue: Queue, parent: str, target_urls: dict[str, str], appengine_url: str
) -> NewTask:
    """A NewTask from a v2 Task: its name, schedule time, dispatch deadline, retry config and
    target (HttpRequest, or AppEngineHttpRequest resolved to the app's URL)."""
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
        request, body, deadline_max = _http_request(message.http_request, f"{field}.http_request"), \
            message.http_request.body, MAX_HTTP_DEADLINE_US
    elif kind == "app_engine_http_request":
        request = _app_engine_request(message.app_engine_http_request, f"{field}.app_engine_http_request", target_urls,
                                      appengine_url)
        body, deadline_max = message.app_engine_http_request.body, MAX_APP_ENGINE_DEADLINE_US
    else:
        raise InvalidArgument.field(f"{field}.http_request", "a task needs an http_request or an "
                                    "app_engine_http_request", "REQUIRED_FIELD")
    assert request.method is not None
    if body and request.method not in BODY_METHODS:
        raise InvalidArgument.field(f"{field}.{kind}.body", f"a {request.method.name} request has no body (only "
                                    "POST, PUT and PATCH do)", "PAYLOAD_NOT_ALLOWED")
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


def _http_request(message: Any, field: str) -> HttpRequest:
    if not message.url:
        raise InvalidArgument.field(f"{field}.url", "is required", "REQUIRED_FIELD")
    if len(message.url) > MAX_URL_CHARS:
        raise InvalidArgument.field(f"{field}.url", f"is longer than {MAX_URL_CHARS} characters", "URL_TOO_LONG")
    http_push.check_url(message.url, f"{field}.url", path_allowed=False)
    # OAuth and OIDC tokens are minted by Google for Google's service accounts: taskq accepts
    # them and sends no Authorization header (docs/cloud-tasks.md); sign with X-Taskq-Signature.
    headers = {name: value for name, value in message.headers.items() if not _is_user_agent(name)}
    headers["User-Agent"] = HTTP_USER_AGENT
    request = HttpRequest(message.url, _method(message.http_method or 1, f"{field}.http_method"), headers)
    http_push.check_headers(request.headers, f"{field}.headers")
    return request


def _is_user_agent(header: str) -> bool:
    return header.lower() == "user-agent"


def _app_engine_request(message: Any, field: str, target_urls: dict[str, str], appengine_url: str) -> HttpRequest:
    path = message.relative_uri or "/"
    if not path.startswith("/"):
        raise InvalidArgument.field(f"{field}.relative_uri", "must start with /", "INVALID_URL")
    service = message.app_engine_routing.service if message.HasField("app_engine_routing") else ""
    if service and service != "default":
        if service not in target_urls:
            raise FailedPrecondition(
                f"App Engine service {service!r} has no URL: add {service}=URL to the server's --appengine-targets",
                reason="APP_ENGINE_SERVICE_UNKNOWN",
            )
        url = target_urls[service].rstrip("/") + path
    else:
        if not appengine_url:
            raise FailedPrecondition(
                "App Engine tasks need the app's URL: start the server with --appengine-url",
                reason="APP_ENGINE_URL_UNSET",
            )
        url = path  # under the queue's target, the app's URL
    request = HttpRequest(url, _method(message.http_method or 1, f"{field}.http_method"), dict(message.headers))
    http_push.check_request(request, field)
    return request


def task_to_pb(task: Task, queue: Queue, parent: str, view: int) -> Any:
    message = TaskPb(name=names.task_name(queue, parent, task.task_id), view=view)
    request = task.http or HttpRequest()
    method = request.method or (queue.http_target.method if queue.http_target else HttpMethod.POST)
    body = task.payload if view == VIEW_FULL else b""
    if request.url.startswith(("http://", "https://")):
        message.http_request.url = request.url
        message.http_request.http_method = method.value
        message.http_request.headers.update(request.headers)
        message.http_request.body = body
    elif queue.http_target is not None:
        engine_request = message.app_engine_http_request
        engine_request.relative_uri = request.url or "/"
        engine_request.http_method = method.value
        engine_request.headers.update(request.headers)
        engine_request.body = body
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
