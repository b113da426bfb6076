"""Checks of request fields, and their conversion into what the core takes.

Every check raises InvalidArgument naming the field by its path in the request (for
google.rpc.BadRequest) and a stable reason. What needs the store or the clock (does the queue
exist, is the schedule time too far) is checked by the core.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any, TypeVar

from google.protobuf import duration_pb2, timestamp_pb2

from taskq.api import convert
from taskq.core import http_push, limits
from taskq.core.errors import InvalidArgument, TaskqError
from taskq.core.limits import ServerLimits
from taskq.core.model import HttpMethod, HttpRequest, HttpTarget, Queue, QueueType, RetryPolicy, content_size
from taskq.core.queues import UPDATABLE_PATHS
from taskq.core.tasks import NewTask
from taskq.v1 import http_pb2, queue_pb2, task_pb2, task_service_pb2

T = TypeVar("T")

_QUEUE_NAME = re.compile(rf"queues/({limits.QUEUE_ID_PATTERN})")
_TASK_NAME = re.compile(rf"queues/({limits.QUEUE_ID_PATTERN})/tasks/({limits.TASK_ID_PATTERN})")
_REQUEST_ID = re.compile(limits.REQUEST_ID_PATTERN)

_MIN_TIMESTAMP_SECONDS = -62_135_596_800  # 0001-01-01T00:00:00Z
_MAX_TIMESTAMP_SECONDS = 253_402_300_799  # 9999-12-31T23:59:59Z
_MAX_DURATION_SECONDS = 315_576_000_000  # 10,000 years, the protobuf limit
_MAX_TOKEN_CHARS = 256

# Names ---------------------------------------------------------------------------------------


def queue_id(name: str, field: str) -> str:
    """The queue id of `queues/{queue_id}`."""
    if not name:
        raise InvalidArgument.field(field, "is required", "REQUIRED_FIELD")
    match = _QUEUE_NAME.fullmatch(name)
    if match is None:
        raise InvalidArgument.field(
            field, f"{_shorten(name)!r} is not a queue name (queues/ then 1 to 100 of A-Z a-z 0-9 -)", "INVALID_NAME"
        )
    return match.group(1)


def task_ids(name: str, field: str) -> tuple[str, str]:
    """(queue id, task id) of `queues/{queue_id}/tasks/{task_id}`."""
    if not name:
        raise InvalidArgument.field(field, "is required", "REQUIRED_FIELD")
    match = _TASK_NAME.fullmatch(name)
    if match is None:
        raise InvalidArgument.field(
            field,
            f"{_shorten(name)!r} is not a task name (queues/{{queue}}/tasks/ then 1 to 500 of A-Z a-z 0-9 _ -)",
            "INVALID_NAME",
        )
    return match.group(1), match.group(2)


def _shorten(text: str, limit: int = 120) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


def lease_token(token: str, field: str, required: bool) -> str:
    if not token:
        if required:
            raise InvalidArgument.field(field, "is required", "REQUIRED_FIELD")
        return ""
    if len(token) > _MAX_TOKEN_CHARS:
        raise InvalidArgument.field(field, f"is longer than {_MAX_TOKEN_CHARS} characters", "INVALID_LEASE_TOKEN")
    if not (token.isascii() and token.isprintable()):
        # Tokens are printable ASCII; anything else cannot name a lease (and would not compare).
        raise InvalidArgument.field(field, "is not a lease token (printable ASCII)", "INVALID_LEASE_TOKEN")
    return token


# Scalars -------------------------------------------------------------------------------------


def timestamp_us(value: timestamp_pb2.Timestamp, field: str) -> int:
    if not 0 <= value.nanos <= 999_999_999:
        raise InvalidArgument.field(field, f"nanos must be 0 to 999999999, got {value.nanos}", "INVALID_TIMESTAMP")
    if not _MIN_TIMESTAMP_SECONDS <= value.seconds <= _MAX_TIMESTAMP_SECONDS:
        raise InvalidArgument.field(field, "is outside years 0001 to 9999", "INVALID_TIMESTAMP")
    return max(0, convert.timestamp_us(value))


def duration_us(
    value: duration_pb2.Duration, field: str, *, minimum_us: int = 0, maximum_us: int, allow_zero: bool = True
) -> int:
    """A non-negative duration within [minimum_us, maximum_us] (0 also allowed if allow_zero)."""
    if abs(value.nanos) > 999_999_999 or abs(value.seconds) > _MAX_DURATION_SECONDS or (
        value.seconds and value.nanos and (value.seconds > 0) != (value.nanos > 0)
    ):
        raise InvalidArgument.field(field, "is not a valid duration", "INVALID_DURATION")
    if value.seconds < 0 or value.nanos < 0:
        raise InvalidArgument.field(field, "must not be negative", "INVALID_DURATION")
    result = convert.duration_us(value)
    if result == 0 and allow_zero:
        return 0
    if result == 0 and not allow_zero:
        raise InvalidArgument.field(field, "must be greater than 0", "INVALID_DURATION")
    # Compare the exact value: the conversion rounds nanoseconds up to whole microseconds.
    nanos = value.seconds * 1_000_000_000 + value.nanos
    if nanos < minimum_us * 1000 or nanos > maximum_us * 1000:
        raise InvalidArgument.field(
            field, f"must be between {_seconds(minimum_us)} and {_seconds(maximum_us)}", "DURATION_OUT_OF_RANGE"
        )
    return result


def _seconds(duration: int) -> str:
    seconds = duration / 1_000_000
    return f"{seconds:g}s"


def int_range(value: int, field: str, low: int, high: int) -> int:
    if not low <= value <= high:
        raise InvalidArgument.field(field, f"must be between {low} and {high}, got {value}", "VALUE_OUT_OF_RANGE")
    return value


def view(value: int, field: str, default: int) -> int:
    if value == task_pb2.TASK_VIEW_UNSPECIFIED:
        return default
    if value not in (task_pb2.TASK_VIEW_BASIC, task_pb2.TASK_VIEW_FULL):
        raise InvalidArgument.field(field, f"{value} is not a TaskView", "INVALID_ENUM_VALUE")
    return value


# Retry configuration -------------------------------------------------------------------------


def retry_policy(message: queue_pb2.RetryConfig, field: str) -> RetryPolicy:
    """The fields that are set; None for the others."""
    policy = RetryPolicy()
    if message.HasField("max_attempts"):
        attempts = int_range(message.max_attempts, f"{field}.max_attempts", -1, limits.MAX_ATTEMPTS_LIMIT)
        policy.max_attempts = max(attempts, 0)
    if message.HasField("max_retry_duration"):
        policy.max_retry_duration_us = duration_us(
            message.max_retry_duration, f"{field}.max_retry_duration", maximum_us=limits.MAX_RETRY_DURATION_LIMIT_US
        )
    if message.HasField("min_backoff"):
        policy.min_backoff_us = duration_us(
            message.min_backoff, f"{field}.min_backoff", maximum_us=limits.MAX_BACKOFF_LIMIT_US
        )
    if message.HasField("max_backoff"):
        policy.max_backoff_us = duration_us(
            message.max_backoff, f"{field}.max_backoff", maximum_us=limits.MAX_BACKOFF_LIMIT_US
        )
    if message.HasField("max_doublings"):
        policy.max_doublings = int_range(message.max_doublings, f"{field}.max_doublings", 0, limits.MAX_DOUBLINGS_LIMIT)
    if (
        policy.min_backoff_us is not None
        and policy.max_backoff_us is not None
        and policy.min_backoff_us > policy.max_backoff_us
    ):
        raise InvalidArgument.field(f"{field}.min_backoff", "must not exceed max_backoff", "MIN_BACKOFF_ABOVE_MAX")
    return policy


def queue_retry_policy(message: queue_pb2.RetryConfig, field: str) -> RetryPolicy:
    """A complete queue policy: unset fields get their defaults. As in App Engine, when only
    one backoff bound is set and the other's default would contradict it, both are equal."""
    policy = retry_policy(message, field)
    if policy.min_backoff_us is None:
        policy.min_backoff_us = limits.DEFAULT_MIN_BACKOFF_US
        if policy.max_backoff_us is not None and policy.max_backoff_us < policy.min_backoff_us:
            policy.min_backoff_us = policy.max_backoff_us
    if policy.max_backoff_us is None:
        policy.max_backoff_us = max(limits.DEFAULT_MAX_BACKOFF_US, policy.min_backoff_us)
    if policy.max_attempts is None:
        policy.max_attempts = 0
    if policy.max_retry_duration_us is None:
        policy.max_retry_duration_us = 0
    if policy.max_doublings is None:
        policy.max_doublings = limits.DEFAULT_MAX_DOUBLINGS
    return policy


# Queues --------------------------------------------------------------------------------------


def queue(message: queue_pb2.Queue, field: str = "queue") -> Queue:
    """A complete Queue from a CreateQueue/UpdateQueue message, defaults filled in."""
    identifier = queue_id(message.name, f"{field}.name")
    if message.type not in (queue_pb2.QUEUE_TYPE_UNSPECIFIED, queue_pb2.QUEUE_TYPE_PUSH, queue_pb2.QUEUE_TYPE_PULL):
        raise InvalidArgument.field(f"{field}.type", f"{message.type} is not a QueueType", "INVALID_ENUM_VALUE")
    queue_type = QueueType.PULL if message.type == queue_pb2.QUEUE_TYPE_PULL else QueueType.PUSH
    rate_limits = message.rate_limits
    rate = None
    if rate_limits.HasField("max_dispatches_per_second"):
        rate = rate_limits.max_dispatches_per_second
        if not math.isfinite(rate) or rate <= 0 or rate > limits.MAX_DISPATCHES_PER_SECOND:
            raise InvalidArgument.field(
                f"{field}.rate_limits.max_dispatches_per_second",
                f"must be greater than 0 and at most {limits.MAX_DISPATCHES_PER_SECOND:g}; leave it unset for no limit",
                "VALUE_OUT_OF_RANGE",
            )
    burst = int_range(rate_limits.max_burst_size, f"{field}.rate_limits.max_burst_size", 0, limits.MAX_BURST_SIZE)
    concurrent = int_range(
        rate_limits.max_concurrent_dispatches,
        f"{field}.rate_limits.max_concurrent_dispatches",
        0,
        limits.MAX_CONCURRENT_DISPATCHES,
    )
    dead_letter = ""
    if message.dead_letter_queue:
        dead_letter = queue_id(message.dead_letter_queue, f"{field}.dead_letter_queue")
    target = None
    if message.HasField("http_target"):
        if queue_type is QueueType.PULL:
            raise InvalidArgument.field(
                f"{field}.http_target", "pull queues cannot have one: their workers lease tasks", "HTTP_TARGET_ON_PULL_QUEUE"
            )
        target = http_target(message.http_target, f"{field}.http_target")
    return Queue(
        queue_id=identifier,
        type=queue_type,
        retry=queue_retry_policy(message.retry_config, f"{field}.retry_config"),
        dispatch_deadline_us=_optional_duration(
            message,
            "dispatch_deadline",
            f"{field}.dispatch_deadline",
            limits.DEFAULT_DISPATCH_DEADLINE_US,
            limits.MIN_DISPATCH_DEADLINE_US,
            limits.MAX_DISPATCH_DEADLINE_US,
        ),
        task_ttl_us=_optional_duration(
            message, "task_ttl", f"{field}.task_ttl", limits.DEFAULT_TASK_TTL_US, limits.MIN_TASK_TTL_US,
            limits.MAX_TASK_TTL_US,
        ),
        tombstone_ttl_us=_tombstone_ttl(message, f"{field}.tombstone_ttl"),
        max_dispatches_per_second=rate,
        max_burst_size=burst,
        max_concurrent_dispatches=concurrent or limits.DEFAULT_MAX_CONCURRENT_DISPATCHES,
        dead_letter_queue=dead_letter,
        http_target=target,
    )


def http_method(value: int, field: str, default: HttpMethod | None) -> HttpMethod | None:
    if value == http_pb2.HTTP_METHOD_UNSPECIFIED:
        return default
    try:
        return HttpMethod(value)
    except ValueError:
        raise InvalidArgument.field(field, f"{value} is not an HttpMethod", "INVALID_ENUM_VALUE") from None


def http_target(message: http_pb2.HttpTarget, field: str) -> HttpTarget:
    method = http_method(message.http_method, f"{field}.http_method", HttpMethod.POST)
    assert method is not None
    target = HttpTarget(message.uri, method, dict(message.headers))
    http_push.check_target(target, field)
    return target


def http_request(message: http_pb2.HttpRequest, field: str) -> HttpRequest:
    request = HttpRequest(message.url, http_method(message.http_method, f"{field}.http_method", None),
                          dict(message.headers))
    http_push.check_request(request, field)
    return request


def _optional_duration(message, name: str, field: str, default: int, minimum: int, maximum: int) -> int:
    if not message.HasField(name):
        return default
    value = duration_us(getattr(message, name), field, minimum_us=minimum, maximum_us=maximum, allow_zero=True)
    return value or default


def _tombstone_ttl(message: queue_pb2.Queue, field: str) -> int:
    if not message.HasField("tombstone_ttl"):
        return limits.DEFAULT_TOMBSTONE_TTL_US
    return duration_us(message.tombstone_ttl, field, maximum_us=limits.MAX_TOMBSTONE_TTL_US)


def update_paths(paths: list[str]) -> list[str]:
    for index, path in enumerate(paths):
        if path in ("name", "type", "state", "create_time", "update_time", "purge_time"):
            raise InvalidArgument.field(
                f"update_mask.paths[{index}]", f"{path} cannot be changed", "FIELD_NOT_UPDATABLE"
            )
        if path not in UPDATABLE_PATHS:
            raise InvalidArgument.field(
                f"update_mask.paths[{index}]",
                f"unknown path {_shorten(path)!r}; allowed: {', '.join(sorted(UPDATABLE_PATHS))}",
                "INVALID_UPDATE_MASK",
            )
    return list(paths)


# Tasks ---------------------------------------------------------------------------------------


def new_task(
    request: task_service_pb2.CreateTaskRequest, parent_queue_id: str, field: str, server_limits: ServerLimits
) -> NewTask:
    """A NewTask from one CreateTaskRequest whose parent has been checked."""
    if not request.HasField("task"):
        raise InvalidArgument.field(f"{field}task", "is required", "REQUIRED_FIELD")
    task = request.task
    task_field = f"{field}task"
    task_id = None
    payload = task.payload
    tag = task.tag
    if (
        not task.name
        and not tag
        and len(payload) <= server_limits.max_task_bytes
        and not request.response_view
        and not task.attributes
        and not (task.HasField("schedule_time") or task.HasField("retry_config") or task.HasField("dispatch_deadline")
                 or task.HasField("http_request"))
        and (not request.request_id or _REQUEST_ID.fullmatch(request.request_id))
    ):
        # The common create (a payload, perhaps a request id) in one pass: the checks below
        # would all pass, at twice the cost, on the busiest call there is.
        return NewTask(None, payload, {}, "", None, None, 0, request.request_id)
    if task.name:
        queue_of_task, task_id = task_ids(task.name, f"{task_field}.name")
        if queue_of_task != parent_queue_id:
            raise InvalidArgument.field(
                f"{task_field}.name", f"names a task of queues/{queue_of_task}, not of the parent", "PARENT_MISMATCH"
            )
    if len(task.attributes) > limits.MAX_ATTRIBUTES:
        raise InvalidArgument.field(
            f"{task_field}.attributes", f"has {len(task.attributes)} entries; at most {limits.MAX_ATTRIBUTES}",
            "TOO_MANY_ATTRIBUTES",
        )
    for key in task.attributes:
        if not key or len(key.encode()) > limits.MAX_ATTRIBUTE_KEY_BYTES:
            raise InvalidArgument.field(
                f"{task_field}.attributes", f"keys must be 1 to {limits.MAX_ATTRIBUTE_KEY_BYTES} bytes",
                "INVALID_ATTRIBUTE_KEY",
            )
    if len(task.tag.encode()) > limits.MAX_TAG_BYTES:
        raise InvalidArgument.field(f"{task_field}.tag", f"is longer than {limits.MAX_TAG_BYTES} bytes", "TAG_TOO_LONG")
    attributes = dict(task.attributes)
    http = http_request(task.http_request, f"{task_field}.http_request") if task.HasField("http_request") else None
    size = content_size(task.payload, attributes, task.tag, http)
    if size > server_limits.max_task_bytes:
        raise InvalidArgument.field(
            f"{task_field}.payload",
            f"the task is {size} bytes (payload, attributes, tag and HTTP request); the limit is "
            f"{server_limits.max_task_bytes}",
            "TASK_TOO_LARGE",
        )
    schedule_us = None
    if task.HasField("schedule_time"):
        schedule_us = timestamp_us(task.schedule_time, f"{task_field}.schedule_time")
    retry = None
    if task.HasField("retry_config"):
        retry = retry_policy(task.retry_config, f"{task_field}.retry_config")
        if retry.is_empty():
            retry = None
    deadline_us = 0
    if task.HasField("dispatch_deadline"):
        deadline_us = duration_us(
            task.dispatch_deadline, f"{task_field}.dispatch_deadline", minimum_us=limits.MIN_DISPATCH_DEADLINE_US,
            maximum_us=limits.MAX_DISPATCH_DEADLINE_US,
        )
    if request.request_id and not _REQUEST_ID.fullmatch(request.request_id):
        raise InvalidArgument.field(
            f"{field}request_id", "must be 1 to 100 characters of A-Z a-z 0-9 _ -", "INVALID_REQUEST_ID"
        )
    view(request.response_view, f"{field}response_view", task_pb2.TASK_VIEW_BASIC)
    return NewTask(
        task_id=task_id,
        payload=task.payload,
        attributes=attributes,
        tag=task.tag,
        schedule_time_us=schedule_us,
        retry=retry,
        dispatch_deadline_us=deadline_us,
        request_id=request.request_id,
        http=http,
    )


def batch_size(count: int, field: str) -> None:
    if count == 0:
        raise InvalidArgument.field(field, "must hold at least one request", "REQUIRED_FIELD")
    if count > limits.MAX_BATCH:
        raise InvalidArgument.field(field, f"holds {count} requests; at most {limits.MAX_BATCH}", "BATCH_TOO_LARGE")


def item_or_error(check: Callable[..., T], *args: Any) -> T | TaskqError:
    """Runs a check for one batch item; its InvalidArgument becomes that item's result."""
    try:
        return check(*args)
    except InvalidArgument as error:
        return error
