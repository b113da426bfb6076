"""The HTTP request one delivery sends: the task's resolved request (core/http_push.py) plus
the headers App Engine and Cloud Tasks handlers read, the API ticket and the signature."""

from __future__ import annotations

import dataclasses
import re

from yarl import URL

from taskq.core import http_push
from taskq.core.model import HttpTarget, Task
from taskq.httppush import signature

#: Longest X-*-TaskRetryReason value, characters.
MAX_REASON_CHARS = 256
#: The address App Engine's task queue requests came from (X-AppEngine-User-IP).
APP_ENGINE_TASK_QUEUE_IP = "0.1.0.2"
#: The User-Agent of deliveries.
USER_AGENT = "taskq (AppEngine-Google compatible)"

_NOT_HEADER_SAFE = re.compile(r"[^\x20-\x7e]+")


@dataclasses.dataclass(slots=True)
class Outgoing:
    method: str
    url: URL
    headers: dict[str, str]
    body: bytes


def header_safe(text: str) -> str:
    """Text fit for a header value: printable ASCII on one line, at most MAX_REASON_CHARS."""
    return _NOT_HEADER_SAFE.sub(" ", text).strip()[:MAX_REASON_CHARS]


def task_headers(queue_id: str, task: Task) -> dict[str, str]:
    """App Engine's X-AppEngine-Task* headers and Cloud Tasks' X-CloudTasks-Task* twins."""
    retries = max(0, task.attempt_count - 1)
    values = {
        "QueueName": queue_id,
        "TaskName": task.task_id,
        "TaskRetryCount": str(retries),
        "TaskExecutionCount": str(task.response_count),
        "TaskETA": f"{task.schedule_time_us / 1_000_000:.6f}",
    }
    previous = task.previous_attempt
    if retries and previous is not None:
        if previous.http_status:
            values["TaskPreviousResponse"] = str(previous.http_status)
        if previous.error_message:
            values["TaskRetryReason"] = header_safe(previous.error_message)
    headers = {f"X-AppEngine-{name}": value for name, value in values.items()}
    headers.update({f"X-CloudTasks-{name}": value for name, value in values.items()})
    # App Engine's task queue called from this address; the SDK's deferred handler (and apps
    # that copied its check) accept only requests that carry it.
    headers["X-AppEngine-User-IP"] = APP_ENGINE_TASK_QUEUE_IP
    return headers


def build(target: HttpTarget, queue_id: str, task: Task, secrets: list[bytes], now_s: int) -> Outgoing:
    resolved = http_push.resolve(target, task)
    # Sent exactly as given (validated printable ASCII): the handler sees, and the signature
    # covers, the same target.
    url = URL(resolved.url, encoded=True)
    headers = dict(resolved.headers)
    headers.update(task_headers(queue_id, task))
    if task.trace_parent:
        # The creator's trace goes on in the handler (W3C Trace Context, which HTTP servers'
        # OpenTelemetry instrumentation reads); it replaces any such header the task named.
        for name in [name for name in headers if name.lower() in ("traceparent", "tracestate")]:
            del headers[name]
        headers["traceparent"] = task.trace_parent
        if task.trace_state:
            headers["tracestate"] = task.trace_state
    # An App Engine handler needs an API ticket to call the API (taskqueue.add) itself; the
    # bridge accepts any (docs/appengine.md).
    headers["X-AppEngine-Api-Ticket"] = f"taskq-{queue_id}-{task.task_id}"
    if secrets:
        headers[signature.HEADER] = signature.signature(
            secrets, now_s, resolved.method.name, url.raw_path_qs, queue_id, task.task_id, resolved.body
        )
    return Outgoing(resolved.method.name, url, headers, resolved.body)
