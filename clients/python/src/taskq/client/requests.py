"""Request messages built from Pythonic arguments: pure functions, no I/O.

The sync `Client` uses them, and so can any other transport (an asyncio client, a batching
layer that coalesces creates into BatchCreateTasks): the rules for names, durations, views,
filters, update masks and request ids live here once.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable, Mapping
from typing import Any, TypeAlias, TypedDict, Unpack, cast

from google.protobuf import field_mask_pb2

from taskq.client.names import queue_name, task_name, task_name_in
from taskq.client.times import Seconds, When, to_duration, to_timestamp
from taskq.v1 import http_pb2, queue_pb2, queue_service_pb2, task_pb2, task_service_pb2


class RetrySettings(TypedDict, total=False):
    """Retry settings of a queue, or per-task overrides of them (see RetryConfig in queue.proto).

    Durations are seconds or timedeltas. On a queue update, None resets a setting to its default.
    """

    max_attempts: int | None
    max_retry_duration: Seconds | None
    min_backoff: Seconds | None
    max_backoff: Seconds | None
    max_doublings: int | None


#: An HTTP method: a name such as "POST" or "get" (case-insensitive, HTTP_METHOD_ prefix
#: optional), an HttpMethod value, or None for the default (the queue's method, else POST).
HttpMethodLike: TypeAlias = str | int | None


class HttpTargetFields(TypedDict, total=False):
    """An HttpTarget as a mapping (see http.proto): where a push queue sends its tasks."""

    uri: str
    http_method: HttpMethodLike
    headers: Mapping[str, str] | None


class HttpRequestFields(TypedDict, total=False):
    """An HttpRequest as a mapping (see http.proto): the request one task becomes."""

    url: str
    http_method: HttpMethodLike
    headers: Mapping[str, str] | None


#: A queue's HTTP target: an HttpTarget message, a mapping of its fields
#: ({"uri": ..., "http_method": "PUT", "headers": {...}}), or just the URI.
HttpTargetLike: TypeAlias = http_pb2.HttpTarget | HttpTargetFields | Mapping[str, Any] | str
#: A task's HTTP request: an HttpRequest message, a mapping of its fields
#: ({"url": "/path", "http_method": "POST", "headers": {...}}), or just the URL or path.
HttpRequestLike: TypeAlias = http_pb2.HttpRequest | HttpRequestFields | Mapping[str, Any] | str


class QueueSettings(RetrySettings, total=False):
    """Changeable settings of a queue (see Queue in queue.proto).

    `max_dispatches_per_second=None` means unlimited; `dead_letter_queue` is a queue id or name,
    "" or None for none; `http_target` (push queues) makes the queue deliver its tasks as HTTP
    requests, see `http_target_message`. On a queue update, None resets a setting to its default
    (`http_target=None` removes the target: tasks are streamed to workers again).
    """

    max_dispatches_per_second: float | None
    max_burst_size: int | None
    max_concurrent_dispatches: int | None
    dispatch_deadline: Seconds | None
    dead_letter_queue: str | None
    task_ttl: Seconds | None
    tombstone_ttl: Seconds | None
    http_target: HttpTargetLike | None


_RETRY_PATHS = {
    "max_attempts": "retry_config.max_attempts",
    "max_retry_duration": "retry_config.max_retry_duration",
    "min_backoff": "retry_config.min_backoff",
    "max_backoff": "retry_config.max_backoff",
    "max_doublings": "retry_config.max_doublings",
}
#: Each queue setting and the UpdateQueue mask path that changes it.
QUEUE_SETTING_PATHS = {
    "max_dispatches_per_second": "rate_limits.max_dispatches_per_second",
    "max_burst_size": "rate_limits.max_burst_size",
    "max_concurrent_dispatches": "rate_limits.max_concurrent_dispatches",
    **_RETRY_PATHS,
    "dispatch_deadline": "dispatch_deadline",
    "dead_letter_queue": "dead_letter_queue",
    "task_ttl": "task_ttl",
    "tombstone_ttl": "tombstone_ttl",
    "http_target": "http_target",
}
_DURATION_SETTINGS = {"max_retry_duration", "min_backoff", "max_backoff", "dispatch_deadline", "task_ttl",
                      "tombstone_ttl"}

_QUEUE_TYPES = {"push": queue_pb2.QUEUE_TYPE_PUSH, "pull": queue_pb2.QUEUE_TYPE_PULL}
_VIEWS = {"basic": task_pb2.TASK_VIEW_BASIC, "full": task_pb2.TASK_VIEW_FULL}
#: Task states by their short, lower-case names, as the CLI and list filters take them.
TASK_STATES = {"scheduled": task_pb2.TASK_STATE_SCHEDULED, "ready": task_pb2.TASK_STATE_READY,
               "leased": task_pb2.TASK_STATE_LEASED, "failed": task_pb2.TASK_STATE_FAILED}

View = str | int | None


def new_request_id() -> str:
    """A random idempotency key for CreateTask (32 hex characters)."""
    return uuid.uuid4().hex


def view_value(view: View) -> task_pb2.TaskView:
    """A TaskView from "basic", "full", a TaskView value, or None (the call's default)."""
    if view is None:
        return task_pb2.TASK_VIEW_UNSPECIFIED
    if isinstance(view, str):
        try:
            return _VIEWS[view.lower().removeprefix("task_view_")]
        except KeyError:
            raise ValueError(f"view must be 'basic' or 'full', not {view!r}") from None
    return cast(task_pb2.TaskView, int(view))


def queue_type_value(queue_type: str | int | None) -> queue_pb2.QueueType:
    """A QueueType from "push", "pull", a QueueType value, or None (push)."""
    if queue_type is None:
        return queue_pb2.QUEUE_TYPE_UNSPECIFIED
    if isinstance(queue_type, str):
        try:
            return _QUEUE_TYPES[queue_type.lower().removeprefix("queue_type_")]
        except KeyError:
            raise ValueError(f"queue type must be 'push' or 'pull', not {queue_type!r}") from None
    return cast(queue_pb2.QueueType, int(queue_type))


#: HTTP methods by their upper-case names.
HTTP_METHODS = {http_pb2.HttpMethod.Name(value).removeprefix("HTTP_METHOD_"): value
                for value in http_pb2.HttpMethod.values() if value != http_pb2.HTTP_METHOD_UNSPECIFIED}


def http_method_value(method: HttpMethodLike) -> http_pb2.HttpMethod:
    """An HttpMethod from "POST", "get", "HTTP_METHOD_PUT", an HttpMethod value, or None (unset)."""
    if method is None:
        return http_pb2.HTTP_METHOD_UNSPECIFIED
    if isinstance(method, str):
        key = method.strip().upper().removeprefix("HTTP_METHOD_")
        if key in HTTP_METHODS:
            return HTTP_METHODS[key]
    elif isinstance(method, int) and not isinstance(method, bool) and method in http_pb2.HttpMethod.values():
        return cast(http_pb2.HttpMethod, method)
    raise ValueError(f"HTTP method must be one of {', '.join(HTTP_METHODS)} (any case), not {method!r}")


def _http_fields(value: Mapping[str, Any], url_field: str, what: str) -> dict[str, Any]:
    known = (url_field, "http_method", "headers")
    unknown = [key for key in value if key not in known]
    if unknown:
        raise TypeError(f"unknown {what} field {unknown[0]!r}; known: {', '.join(known)}")
    fields: dict[str, Any] = {"http_method": http_method_value(value.get("http_method"))}
    if value.get(url_field) is not None:
        fields[url_field] = value[url_field]
    headers = value.get("headers")
    if headers is not None:
        if not isinstance(headers, Mapping):
            raise TypeError(f"{what} headers are a mapping of names to values, not {type(headers).__name__}")
        fields["headers"] = dict(headers)
    return fields


def http_target_message(target: HttpTargetLike) -> http_pb2.HttpTarget:
    """An HttpTarget from a message (copied), a mapping of its fields ({"uri": ...,
    "http_method": "PUT", "headers": {...}}; the method by name, any case) or a URI string."""
    if isinstance(target, http_pb2.HttpTarget):
        copy = http_pb2.HttpTarget()
        copy.CopyFrom(target)
        return copy
    if isinstance(target, str):
        return http_pb2.HttpTarget(uri=target)
    if isinstance(target, Mapping):
        return http_pb2.HttpTarget(**_http_fields(target, "uri", "http_target"))
    raise TypeError(f"an http_target is an HttpTarget, a mapping or a URI string, not {type(target).__name__}")


def http_request_message(request: HttpRequestLike) -> http_pb2.HttpRequest:
    """An HttpRequest from a message (copied), a mapping of its fields ({"url": "/path?x=1",
    "http_method": "POST", "headers": {...}}; the method by name, any case) or a URL or path."""
    if isinstance(request, http_pb2.HttpRequest):
        copy = http_pb2.HttpRequest()
        copy.CopyFrom(request)
        return copy
    if isinstance(request, str):
        return http_pb2.HttpRequest(url=request)
    if isinstance(request, Mapping):
        return http_pb2.HttpRequest(**_http_fields(request, "url", "http_request"))
    raise TypeError(f"an http_request is an HttpRequest, a mapping or a URL string, not {type(request).__name__}")


# Queues ------------------------------------------------------------------------------------


def queue_message(
    queue: str, *, type: str | int | None = None, **settings: Unpack[QueueSettings]
) -> tuple[queue_pb2.Queue, list[str]]:
    """A Queue with the given settings, and the update-mask paths of exactly those settings.

    A setting given as None is left unset in the message but still listed in the paths, so
    an update resets it to its default.
    """
    message = queue_pb2.Queue(name=queue_name(queue), type=queue_type_value(type))
    paths = []
    values: dict[str, Any] = dict(settings)
    for key, value in values.items():
        if key not in QUEUE_SETTING_PATHS:
            raise TypeError(f"unknown queue setting {key!r}; known: {', '.join(QUEUE_SETTING_PATHS)}")
        paths.append(QUEUE_SETTING_PATHS[key])
        if value is None:
            continue
        if key == "dead_letter_queue":
            message.dead_letter_queue = queue_name(value) if value else ""
        elif key == "http_target":
            message.http_target.CopyFrom(http_target_message(value))
        elif key in _RETRY_PATHS:
            _set_retry_field(message.retry_config, key, value)
        elif key in _DURATION_SETTINGS:
            getattr(message, key).CopyFrom(to_duration(value))
        else:
            setattr(message.rate_limits, key, value)
    return message, paths


def _set_retry_field(config: queue_pb2.RetryConfig, key: str, value: Any) -> None:
    if key in _DURATION_SETTINGS:
        getattr(config, key).CopyFrom(to_duration(value))
    else:
        setattr(config, key, value)


def retry_config(**settings: Unpack[RetrySettings]) -> queue_pb2.RetryConfig | None:
    """A RetryConfig of the settings that are not None; None when there are none."""
    config = queue_pb2.RetryConfig()
    given = False
    for key, value in settings.items():
        if key not in _RETRY_PATHS:
            raise TypeError(f"unknown retry setting {key!r}; known: {', '.join(_RETRY_PATHS)}")
        if value is not None:
            _set_retry_field(config, key, value)
            given = True
    return config if given else None


def create_queue_request(queue: str | queue_pb2.Queue, *, type: str | int | None = None,
                         **settings: Unpack[QueueSettings]) -> queue_service_pb2.CreateQueueRequest:
    if isinstance(queue, queue_pb2.Queue):
        if type is not None or settings:
            raise TypeError("give either a Queue message or a name with settings, not both")
        return queue_service_pb2.CreateQueueRequest(queue=queue)
    message, _ = queue_message(queue, type=type, **settings)
    return queue_service_pb2.CreateQueueRequest(queue=message)


def update_queue_request(
    queue: str | queue_pb2.Queue, *, update_mask: Iterable[str] | None = None, **settings: Unpack[QueueSettings]
) -> queue_service_pb2.UpdateQueueRequest:
    """An UpdateQueue of exactly the given settings. With a Queue message, `update_mask` says
    which of its fields to change; an empty mask there changes every field (unset ones reset)."""
    if isinstance(queue, queue_pb2.Queue):
        if settings:
            raise TypeError("give either a Queue message or a name with settings, not both")
        mask = field_mask_pb2.FieldMask(paths=list(update_mask or []))
        return queue_service_pb2.UpdateQueueRequest(queue=queue, update_mask=mask)
    if not settings:
        # An empty mask would reset every setting to its default: never what a caller who
        # named nothing meant.
        raise ValueError("update_queue needs at least one setting to change")
    message, paths = queue_message(queue, **settings)
    paths.extend(path for path in update_mask or [] if path not in paths)
    return queue_service_pb2.UpdateQueueRequest(queue=message, update_mask=field_mask_pb2.FieldMask(paths=paths))


# Tasks -------------------------------------------------------------------------------------


def payload_bytes(payload: bytes | str) -> bytes:
    """The payload as bytes; text is encoded as UTF-8."""
    if isinstance(payload, str):
        return payload.encode()
    if isinstance(payload, (bytes, bytearray, memoryview)):
        return bytes(payload)
    raise TypeError(f"a payload is bytes or str, not {type(payload).__name__}")


def create_task_request(
    queue: str,
    payload: bytes | str = b"",
    *,
    name: str | None = None,
    tag: str | None = None,
    schedule_time: When | None = None,
    delay: Seconds | None = None,
    attributes: Mapping[str, str] | None = None,
    dispatch_deadline: Seconds | None = None,
    request_id: str | None = None,
    view: View = None,
    http_request: HttpRequestLike | None = None,
    **retry: Unpack[RetrySettings],
) -> task_service_pb2.CreateTaskRequest:
    """A CreateTaskRequest. `name` is a task id or a full name (for de-duplication); `delay`
    is seconds from now on this machine's clock, exclusive with `schedule_time`. `request_id`
    None (the default) means a random one, so that retries never add a second task; "" sends
    none. `http_request` (queues with an HTTP target) is the request the task becomes, see
    `http_request_message`; its body is the payload."""
    if delay is not None and schedule_time is not None:
        raise ValueError("give either delay or schedule_time, not both")
    task = task_pb2.Task(payload=payload_bytes(payload), attributes=dict(attributes or {}), tag=tag or "")
    if name:
        task.name = task_name_in(queue, name)
    if delay is not None:
        delay_seconds = delay.total_seconds() if hasattr(delay, "total_seconds") else delay
        task.schedule_time.CopyFrom(to_timestamp(time.time() + delay_seconds))
    elif schedule_time is not None:
        task.schedule_time.CopyFrom(to_timestamp(schedule_time))
    if dispatch_deadline is not None:
        task.dispatch_deadline.CopyFrom(to_duration(dispatch_deadline))
    if http_request is not None:
        task.http_request.CopyFrom(http_request_message(http_request))
    config = retry_config(**retry)
    if config is not None:
        task.retry_config.CopyFrom(config)
    return task_service_pb2.CreateTaskRequest(
        parent=queue_name(queue),
        task=task,
        request_id=new_request_id() if request_id is None else request_id,
        response_view=view_value(view),
    )


#: One item of a batch create: a Task message, a CreateTaskRequest, or the keyword arguments
#: of `create_task_request` as a mapping (e.g. {"payload": b"...", "tag": "t"}).
BatchItem: TypeAlias = task_pb2.Task | task_service_pb2.CreateTaskRequest | Mapping[str, Any]


def batch_create_tasks_request(queue: str, items: Iterable[BatchItem]) -> task_service_pb2.BatchCreateTasksRequest:
    """A BatchCreateTasksRequest; every item without a request_id gets a random one, so a retried
    batch adds no duplicates."""
    parent = queue_name(queue)
    batch = task_service_pb2.BatchCreateTasksRequest(parent=parent)
    for item in items:
        if isinstance(item, task_service_pb2.CreateTaskRequest):
            request = task_service_pb2.CreateTaskRequest()
            request.CopyFrom(item)
            if not request.request_id:
                request.request_id = new_request_id()
        elif isinstance(item, task_pb2.Task):
            request = task_service_pb2.CreateTaskRequest(task=item, request_id=new_request_id())
        elif isinstance(item, Mapping):
            request = create_task_request(parent, **item)
        else:
            raise TypeError(f"a batch item is a Task, a CreateTaskRequest or a mapping, not {type(item).__name__}")
        batch.requests.append(request)
    return batch


def task_filter(filter: str | None = None, *, state: str | int | Iterable[str | int] | None = None,
                tag: str | None = None) -> str:
    """A ListTasks filter: `filter` (raw syntax) AND the given state(s) AND the given tag."""
    terms = [filter] if filter else []
    if state is not None:
        states = [state] if isinstance(state, (str, int)) else list(state)
        names = [_state_name(one) for one in states]
        terms.append(f"state = {names[0]}" if len(names) == 1 else f"state = ({' OR '.join(names)})")
    if tag is not None:
        escaped = tag.replace("\\", "\\\\").replace('"', '\\"')
        terms.append(f'tag = "{escaped}"')
    return " AND ".join(terms)


def _state_name(state: str | int) -> str:
    if isinstance(state, str):
        short = state.lower().removeprefix("task_state_")
        if short not in TASK_STATES:
            raise ValueError(f"unknown task state {state!r}; known: {', '.join(TASK_STATES)}")
        return short.upper()
    return task_pb2.TaskState.Name(state).removeprefix("TASK_STATE_")


def list_tasks_request(queue: str, *, filter: str | None = None, state: str | int | Iterable[str | int] | None = None,
                       tag: str | None = None, view: View = None,
                       page_size: int | None = None) -> task_service_pb2.ListTasksRequest:
    return task_service_pb2.ListTasksRequest(
        parent=queue_name(queue),
        filter=task_filter(filter, state=state, tag=tag),
        view=view_value(view),
        page_size=page_size or 0,
    )


def lease_tasks_request(queue: str, *, lease_duration: Seconds, max_tasks: int = 1, tag: str | None = None,
                        oldest_tag: bool = False, wait: Seconds | None = None,
                        view: View = None) -> task_service_pb2.LeaseTasksRequest:
    request = task_service_pb2.LeaseTasksRequest(
        parent=queue_name(queue),
        lease_duration=to_duration(lease_duration),
        max_tasks=max_tasks,
        tag=tag or "",
        oldest_tag=oldest_tag,
        response_view=view_value(view),
    )
    if wait is not None:
        request.wait.CopyFrom(to_duration(wait))
    return request


def lease_token_of(task: str | task_pb2.Task, lease_token: str | None) -> str:
    """The explicit token, else the one a Task message carries, else ""."""
    if lease_token is not None:
        return lease_token
    return task.lease_token if isinstance(task, task_pb2.Task) else ""


def delete_task_request(task: str | task_pb2.Task, *, lease_token: str | None = None
                        ) -> task_service_pb2.DeleteTaskRequest:
    return task_service_pb2.DeleteTaskRequest(name=task_name(task), lease_token=lease_token_of(task, lease_token))


def batch_delete_tasks_request(
    queue: str, items: Iterable[str | task_pb2.Task | task_service_pb2.DeleteTaskRequest]
) -> task_service_pb2.BatchDeleteTasksRequest:
    """A BatchDeleteTasksRequest: task names delete, Task messages with a token acknowledge."""
    batch = task_service_pb2.BatchDeleteTasksRequest(parent=queue_name(queue))
    for item in items:
        batch.requests.append(item if isinstance(item, task_service_pb2.DeleteTaskRequest)
                              else delete_task_request(item))
    return batch


def modify_lease_request(task: str | task_pb2.Task, *, lease_duration: Seconds,
                         lease_token: str | None = None) -> task_service_pb2.ModifyLeaseRequest:
    return task_service_pb2.ModifyLeaseRequest(
        name=task_name(task), lease_token=lease_token_of(task, lease_token), lease_duration=to_duration(lease_duration)
    )
