"""google.cloud.tasks.v2beta2 tasks <-> taskq's tasks, and the pull-queue requests (lease
filters and durations), with the limits of Cloud Tasks' v2beta2 documentation. Queues and the
constants are in v2beta2_messages; what push tasks share with v2 in push_tasks.

A pull task's lease is named by its schedule_time: a leased task shows its lease's expiry there
(schedule_time_us), and AcknowledgeTask/RenewLease/CancelLease must give it back.
"""

from __future__ import annotations

import re
from typing import Any

from google.rpc import status_pb2

from taskq.api import convert, validate
from taskq.cloudtasks import names, push_tasks
from taskq.cloudtasks import v2beta2_messages as m
from taskq.cloudtasks.appengine_routing import AppEngine
from taskq.core import limits
from taskq.core.errors import InvalidArgument
from taskq.core.limits import SECOND
from taskq.core.model import Queue, QueueType, Stage, Task, content_size
from taskq.core.tasks import NewTask

# Tasks ----------------------------------------------------------------------------------------


def view(value: int, field: str) -> int:
    if value not in (0, m.VIEW_BASIC, m.VIEW_FULL):
        raise InvalidArgument.field(field, f"{value} is not a Task.View", "INVALID_ENUM_VALUE")
    return value or m.VIEW_BASIC


def check_tag(tag: str, field: str) -> str:
    if len(tag) > m.MAX_TAG_CHARS:
        raise InvalidArgument.field(field, f"must be less than {m.MAX_TAG_CHARS + 1} characters", "TAG_TOO_LONG")
    if len(tag.encode()) > limits.MAX_TAG_BYTES:
        raise InvalidArgument.field(field, f"is longer than {limits.MAX_TAG_BYTES} bytes of UTF-8 (taskq's limit)",
                                    "TAG_TOO_LONG")
    return tag


def new_task(message: Any, field: str, queue: Queue, parent: str, app: AppEngine, max_task_bytes: int) -> NewTask:
    """A NewTask from a v2beta2 Task: a pull_message in a pull queue; an app_engine_http_request
    in an App Engine queue, or an http_request in a push queue delivered over HTTP."""
    task_id = None
    if message.name:
        task_parent, queue_id, task_id = names.task(message.name, f"{field}.name")
        if queue_id != queue.queue_id or task_parent != parent:
            raise InvalidArgument.field(f"{field}.name", "must name a task of the parent queue", "PARENT_MISMATCH")
    schedule_us = None
    if message.HasField("schedule_time"):
        schedule_us = validate.timestamp_us(message.schedule_time, f"{field}.schedule_time")
    kind = message.WhichOneof("payload_type")
    queue_name = names.queue_name(queue, parent)
    if queue.type is QueueType.PULL:
        if kind != "pull_message":
            raise InvalidArgument.field(f"{field}.pull_message", f"is required: {queue_name} is a pull queue (its tasks "
                                        "can have no other payload type)", "REQUIRED_FIELD")
        payload = message.pull_message.payload
        tag = check_tag(message.pull_message.tag, f"{field}.pull_message.tag")
        push_tasks.check_size(content_size(payload, {}, tag), max_task_bytes, f"{field}.pull_message.payload")
        return NewTask(task_id=task_id, payload=payload, tag=tag, schedule_time_us=schedule_us)
    if kind == "pull_message":
        raise InvalidArgument.field(f"{field}.pull_message", f"can be set only in pull queues; {queue_name} is a push "
                                    "queue", "WRONG_QUEUE_TYPE")
    if kind == "app_engine_http_request":
        if m.target_kind(queue) != m.APP_ENGINE_TARGET:
            raise InvalidArgument.field(f"{field}.app_engine_http_request", f"can be set only if the queue has an "
                                        f"app_engine_http_target; {queue_name} has none", "NOT_AN_APP_ENGINE_QUEUE")
        request, body = push_tasks.app_engine_task(message.app_engine_http_request, f"{field}.app_engine_http_request",
                                                   "relative_url", "payload", queue, app, max_task_bytes)
    elif kind == "http_request":
        request, body = push_tasks.http_task(message.http_request, f"{field}.http_request", queue, max_task_bytes)
    else:
        raise InvalidArgument.field(f"{field}.app_engine_http_request", "a task of a push queue needs an "
                                    "app_engine_http_request or an http_request", "REQUIRED_FIELD")
    return NewTask(task_id=task_id, payload=body, schedule_time_us=schedule_us, http=request)


def schedule_time_us(task: Task) -> int:
    """A task's v2beta2 schedule_time: a leased task's is its lease's expiry."""
    return task.lease_expire_us if task.stage is Stage.LEASED and task.lease_expire_us else task.schedule_time_us


def task_to_pb(task: Task, queue: Queue, parent: str, view: int, app: AppEngine) -> Any:
    message = m.TaskPb(name=names.task_name(queue, parent, task.task_id), view=view)
    full = view == m.VIEW_FULL
    pull = queue.type is QueueType.PULL
    if pull:
        message.pull_message.SetInParent()
        message.pull_message.tag = task.tag
        if full:
            message.pull_message.payload = task.payload
    else:
        push_tasks.request_to_pb(message, task, queue, app, full, m.target_kind(queue) == m.APP_ENGINE_TARGET,
                                 "relative_url", "payload")
    message.schedule_time.CopyFrom(convert.timestamp(schedule_time_us(task)))
    # "create_time will be truncated to the nearest second."
    message.create_time.CopyFrom(convert.timestamp(task.create_time_us - task.create_time_us % SECOND))
    status = message.status
    status.attempt_dispatch_count = task.attempt_count
    if pull:  # the response count and attempt statuses "are not calculated for pull tasks"
        return message
    status.attempt_response_count = task.response_count
    if task.first_attempt_time_us:
        status.first_attempt_status.dispatch_time.CopyFrom(convert.timestamp(task.first_attempt_time_us))
    if task.last_attempt is not None:
        attempt = task.last_attempt
        last = status.last_attempt_status
        last.dispatch_time.CopyFrom(convert.timestamp(attempt.dispatch_time_us))
        if attempt.response_time_us:
            last.response_time.CopyFrom(convert.timestamp(attempt.response_time_us))
            last.response_status.CopyFrom(status_pb2.Status(code=attempt.error_code, message=attempt.error_message))
    return message


# Pull queues ----------------------------------------------------------------------------------


_TAG_FILTER = re.compile(r'\s*tag\s*=\s*(?:"((?:[^"\\]|\\.)*)"|(.*?))\s*', re.DOTALL)
_OLDEST_TAG_FILTER = re.compile(r"\s*tag_function\s*=\s*oldest_tag\s*\(\s*\)\s*")


def lease_filter(text: str) -> tuple[str | None, bool]:
    """LeaseTasks' filter: (tag, oldest_tag). `tag=<tag>` (the tag may be in double quotes,
    with \\" and \\\\ inside) or `tag_function=oldest_tag()`; empty: any task."""
    if not text.strip():
        return None, False
    if _OLDEST_TAG_FILTER.fullmatch(text):
        return None, True
    match = _TAG_FILTER.fullmatch(text)
    if match is None:
        raise InvalidArgument.field(
            "filter", f"{text[:100]!r} is not a lease filter: tag=<tag>, tag=\"<tag>\" or tag_function=oldest_tag()",
            "INVALID_FILTER",
        )
    tag = re.sub(r"\\(.)", r"\1", match.group(1)) if match.group(1) is not None else match.group(2)
    return check_tag(tag, "filter"), False


def lease_duration_us(message: Any, has: bool, field: str) -> int:
    """A required lease duration, truncated to whole seconds: 1 second to 1 week."""
    if not has:
        raise InvalidArgument.field(field, "is required", "REQUIRED_FIELD")
    value = m.whole_seconds(validate.duration_us(message, field, maximum_us=m.MAX_LEASE_DURATION_US))
    if value <= 0:
        raise InvalidArgument.field(field, "must be at least 1s (leases are truncated to whole seconds)",
                                    "DURATION_OUT_OF_RANGE")
    return value
