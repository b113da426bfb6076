"""The push tasks of both Cloud Tasks versions: HttpRequest and AppEngineHttpRequest <-> taskq's
HttpRequest (URL, method, headers) and payload, with the rules Google documents for both:

- HttpRequest tasks are sent with `User-Agent: Google-Cloud-Tasks` ("This will be set to
  Google-Cloud-Tasks"), whatever the task or its queue's header_overrides say. The task keeps
  it among its headers, so a task shows what it is sent with, and an HttpRequest whose URL is
  under an App Engine target's is still read back as an HttpRequest.
- A body only with POST, PUT or PATCH (HttpRequest) or POST or PUT (AppEngineHttpRequest).
- Task size (body, URL and headers): App Engine tasks at most 100 KiB ("For App Engine queues,
  the maximum task size is 100KB"); HTTP tasks at most --max-task-bytes (1 MiB by default;
  Cloud Tasks' limits page says 1 MB); both at most --max-task-bytes.
- AppEngineHttpRequest headers may not be X-Google-* ("cannot be set or overridden").
"""

from __future__ import annotations

from typing import Any

from taskq.cloudtasks.appengine_routing import AppEngine, routing_to_pb
from taskq.core import http_push
from taskq.core.errors import InvalidArgument
from taskq.core.model import HttpMethod, HttpRequest, Queue, Task, content_size

#: The User-Agent Cloud Tasks sets on HttpRequest tasks' requests (handlers may check it).
HTTP_USER_AGENT = "Google-Cloud-Tasks"
#: HttpRequest.body: "allowed only if the HTTP method is POST, PUT, or PATCH".
HTTP_BODY_METHODS: tuple[HttpMethod, ...] = (HttpMethod.POST, HttpMethod.PUT, HttpMethod.PATCH)
#: AppEngineHttpRequest's body: "allowed only if the HTTP method is POST or PUT".
APP_ENGINE_BODY_METHODS: tuple[HttpMethod, ...] = (HttpMethod.POST, HttpMethod.PUT)
MAX_APP_ENGINE_TASK_BYTES = 100 * 1024


def method(value: int, field: str) -> HttpMethod | None:
    """An HttpMethod of the API (the same numbers as taskq's); None when unspecified (0)."""
    if not value:
        return None
    try:
        return HttpMethod(value)
    except ValueError:
        raise InvalidArgument.field(field, f"{value} is not an HttpMethod", "INVALID_ENUM_VALUE") from None


def _is_user_agent(header: str) -> bool:
    return header.lower() == "user-agent"


def queue_headers(overrides: Any, field: str) -> dict[str, str]:
    """A queue http_target's header_overrides. They replace a task's headers at delivery, so a
    User-Agent among them (which would replace Google-Cloud-Tasks) is dropped."""
    headers = {o.header.key: o.header.value for o in overrides if not _is_user_agent(o.header.key)}
    http_push.check_headers(headers, field)
    return headers


def check_size(size: int, limit: int, field: str) -> None:
    if size > limit:
        raise InvalidArgument.field(field, f"the task is {size} bytes; the limit is {limit}", "TASK_TOO_LARGE")


def _check_body(body: bytes, request: HttpRequest, allowed: tuple[HttpMethod, ...], limit: int, field: str) -> None:
    assert request.method is not None
    if body and request.method not in allowed:
        names = " and ".join(m.name for m in allowed)
        raise InvalidArgument.field(field, f"a {request.method.name} request has no body (only {names} do)",
                                    "PAYLOAD_NOT_ALLOWED")
    check_size(content_size(body, {}, "", request), limit, field)


def http_task(message: Any, field: str, queue: Queue, max_task_bytes: int) -> tuple[HttpRequest, bytes]:
    """An HttpRequest's request and body. OAuth and OIDC tokens are minted by Google for
    Google's service accounts: they are accepted and no Authorization header is sent
    (docs/cloud-tasks.md); sign with X-Taskq-Signature instead.

    The method is stored as None, the queue's, when the task gives none (Cloud Tasks' default,
    POST, is the queue's unless it has a method) and when the queue has a method: "When
    specified, it overrides HttpRequest for the task", then and after the queue's method
    changes. taskq's HttpTarget cannot tell a queue's POST from none, so a queue's POST leaves
    a task's own method alone. A body the queue's method cannot carry "will be ignored at
    execution time": it is dropped."""
    if not message.url:
        raise InvalidArgument.field(f"{field}.url", "is required", "REQUIRED_FIELD")
    http_push.check_url(message.url, f"{field}.url", path_allowed=False)
    headers = {name: value for name, value in message.headers.items() if not _is_user_agent(name)}
    headers["User-Agent"] = HTTP_USER_AGENT
    http_push.check_headers(headers, f"{field}.headers")
    given = method(message.http_method, f"{field}.http_method")
    request = HttpRequest(message.url, given or HttpMethod.POST, headers)
    body = message.body
    _check_body(body, request, HTTP_BODY_METHODS, max_task_bytes, f"{field}.body")
    target = queue.http_target
    if target is not None and target.method is not HttpMethod.POST:
        request.method = None
        body = body if target.method.has_body else b""
    else:
        request.method = given
    return request, body


def app_engine_task(
    message: Any, field: str, path_name: str, body_name: str, queue: Queue, app: AppEngine, max_task_bytes: int
) -> tuple[HttpRequest, bytes]:
    """An AppEngineHttpRequest's request (its URL routed) and body; `path_name` and
    `body_name` are the version's names of the relative URI and the body."""
    headers = dict(message.headers)
    for name in headers:
        if name.lower().startswith("x-google-"):
            raise InvalidArgument.field(f"{field}.headers", f"{name!r} cannot be set (X-Google-* are Google's)",
                                        "RESERVED_HEADER")
    http_push.check_headers(headers, f"{field}.headers")
    routing = message.app_engine_routing if message.HasField("app_engine_routing") else None
    url = app.url_of(getattr(message, path_name) or "/", f"{field}.{path_name}", routing, queue)
    request = HttpRequest(url, method(message.http_method, f"{field}.http_method") or HttpMethod.POST, headers)
    body = getattr(message, body_name)
    _check_body(body, request, APP_ENGINE_BODY_METHODS, min(max_task_bytes, MAX_APP_ENGINE_TASK_BYTES),
                f"{field}.{body_name}")
    return request, body


def request_to_pb(
    message: Any, task: Task, queue: Queue, app: AppEngine, full: bool, app_engine_queue: bool, path_name: str,
    body_name: str,
) -> None:
    """Sets a Task message's http_request or app_engine_http_request (`path_name`, `body_name`:
    as in app_engine_task) from a push task. An absolute URL under an --appengine-targets
    entry's base URL, of a task not sent as an HttpRequest, reads as an App Engine task routed
    there, when the queue can hold App Engine tasks (`app_engine_queue`)."""
    if task.finished:
        return  # a request-id retry's summary of a task done since: its request is gone
    request = task.http or HttpRequest()
    target = queue.http_target
    method_ = request.method or (target.method if target is not None else HttpMethod.POST)
    body = task.payload if full else b""
    sent_as_http = request.headers.get("User-Agent") == HTTP_USER_AGENT
    routed, path = app.target_of_url(request.url) if app_engine_queue and not sent_as_http else ("", "")
    if request.url.startswith(("http://", "https://")) and not routed:
        http = message.http_request
        http.url, http.http_method, http.body = request.url, method_.value, body
        http.headers.update(request.headers)
        return
    if target is None:
        return  # a task streamed to taskq.v1 workers: no payload type of Cloud Tasks fits
    engine = message.app_engine_http_request
    engine.http_method = method_.value
    setattr(engine, path_name, path if routed else (request.url or "/"))
    engine.headers.update(request.headers)
    setattr(engine, body_name, body)
    if routed:
        routing_to_pb(engine.app_engine_routing, routed, app.targets[routed])
    else:
        routing_to_pb(engine.app_engine_routing, app.target_of_base(target.uri), target.uri)
