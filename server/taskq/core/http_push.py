"""The rules of HTTP push: what an HTTP target and a task's HTTP request may hold, and the one
request a task becomes (URL, method, headers, body) when it is delivered.

Pure functions, no I/O: the API layer and the App Engine bridge check fields with them, the
deliverer (taskq/http/) resolves each task's request with them. Errors name the request field.
"""

from __future__ import annotations

import dataclasses
import re
from urllib.parse import urlsplit

from taskq.core.errors import InvalidArgument
from taskq.core.model import HttpMethod, HttpRequest, HttpTarget, Queue, Task

#: Longest URL (a target's uri, a task's url or path), bytes.
MAX_URL_BYTES = 2048
#: Most headers on a target or a task.
MAX_HEADERS = 100
#: Header names and values of a target or a task together, bytes.
MAX_HEADER_BYTES = 64 * 1024

#: Headers that frame the request: nobody may set them. Lower case.
RESERVED_HEADERS = frozenset({
    "host", "content-length", "transfer-encoding", "connection", "keep-alive", "upgrade", "te", "trailer",
    "proxy-authorization", "proxy-connection",
})
#: Reserved prefixes (lower case): App Engine's headers (taskq sets the task headers; the SDK
#: trusts the others to say who the user is, e.g. X-AppEngine-User-Is-Admin, so a task must
#: not forge them), Cloud Tasks' and taskq's own.
RESERVED_PREFIXES = ("x-appengine-", "x-cloudtasks-", "x-taskq-")
#: App Engine headers a task may carry after all: the namespace the SDK records on each task.
ALLOWED_APP_ENGINE_HEADERS = frozenset({"x-appengine-current-namespace", "x-appengine-default-namespace"})


def reserved(name: str) -> bool:
    """Whether a header name (any case) is one a target or task may not set."""
    lower = name.lower()
    if lower in ALLOWED_APP_ENGINE_HEADERS:
        return False
    return lower in RESERVED_HEADERS or lower.startswith(RESERVED_PREFIXES)

_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
#: Header values: visible ASCII, spaces and tabs; no line breaks (header injection).
_VALUE = re.compile(r"[\t\x20-\x7e]*")
#: A URL or path: no spaces, no control characters, ASCII only (percent-encode the rest).
_URL_CHARS = re.compile(r"[\x21-\x7e]+")


def check_url(url: str, field: str, *, path_allowed: bool) -> None:
    """An absolute http(s) URL (or, where allowed, a path starting with `/`)."""
    if len(url.encode()) > MAX_URL_BYTES:
        raise InvalidArgument.field(field, f"is longer than {MAX_URL_BYTES} bytes", "URL_TOO_LONG")
    if not _URL_CHARS.fullmatch(url):
        raise InvalidArgument.field(
            field, "must be printable ASCII without spaces (percent-encode other characters)", "INVALID_URL"
        )
    if "#" in url:
        raise InvalidArgument.field(field, "must not have a fragment (#...): it is never sent", "INVALID_URL")
    if url.startswith("/"):
        if not path_allowed:
            raise InvalidArgument.field(field, "must be an absolute http:// or https:// URL", "INVALID_URL")
        if url.startswith("//"):
            raise InvalidArgument.field(field, "a path must not start with //", "INVALID_URL")
        return
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as error:
        raise InvalidArgument.field(field, f"is not a valid URL: {error}", "INVALID_URL") from None
    if parts.scheme not in ("http", "https"):
        what = "an absolute http:// or https:// URL" + (" or a path starting with /" if path_allowed else "")
        raise InvalidArgument.field(field, f"must be {what}", "INVALID_URL")
    if not parts.hostname:
        raise InvalidArgument.field(field, "has no host", "INVALID_URL")
    if parts.username is not None or parts.password is not None:
        raise InvalidArgument.field(
            field, "must not carry credentials (user:password@); send them in a header", "INVALID_URL"
        )
    if port == 0:
        raise InvalidArgument.field(field, "has port 0", "INVALID_URL")


def check_headers(headers: dict[str, str], field: str) -> None:
    if len(headers) > MAX_HEADERS:
        raise InvalidArgument.field(field, f"has {len(headers)} entries; at most {MAX_HEADERS}", "TOO_MANY_HEADERS")
    total = 0
    seen: set[str] = set()
    for name, value in headers.items():
        lower = name.lower()
        if not _TOKEN.fullmatch(name):
            raise InvalidArgument.field(field, f"{name[:100]!r} is not a valid header name", "INVALID_HEADER")
        if lower in seen:
            raise InvalidArgument.field(field, f"{name!r} is given twice (names are case-insensitive)", "INVALID_HEADER")
        seen.add(lower)
        if reserved(name):
            raise InvalidArgument.field(field, f"{name!r} is set by taskq itself and cannot be set", "RESERVED_HEADER")
        if not _VALUE.fullmatch(value):
            raise InvalidArgument.field(
                field, f"the value of {name!r} must be printable ASCII without line breaks", "INVALID_HEADER"
            )
        total += len(name) + len(value)
    if total > MAX_HEADER_BYTES:
        raise InvalidArgument.field(field, f"the headers are {total} bytes; at most {MAX_HEADER_BYTES}", "HEADERS_TOO_LARGE")


def check_target(target: HttpTarget, field: str) -> None:
    if target.uri:
        check_url(target.uri, f"{field}.uri", path_allowed=False)
    check_headers(target.headers, f"{field}.headers")


def check_request(request: HttpRequest, field: str) -> None:
    if request.url:
        check_url(request.url, f"{field}.url", path_allowed=True)
    check_headers(request.headers, f"{field}.headers")


def check_task_for_queue(queue: Queue, task: Task, field: str) -> None:
    """What a task's request needs from its queue: an HTTP target, a base for a path, a
    method that can carry the payload."""
    target = queue.http_target
    if task.http is None:
        if target is not None and not target.uri:
            raise InvalidArgument.field(
                f"{field}.http_request.url", f"is required: {queue.name}'s http_target has no uri", "URL_REQUIRED"
            )
    else:
        if target is None:
            raise InvalidArgument.field(
                f"{field}.http_request",
                f"{queue.name} is not delivered over HTTP (it has no http_target); leave http_request unset",
                "NOT_AN_HTTP_QUEUE",
            )
        if not task.http.url.startswith(("http://", "https://")) and not target.uri:
            raise InvalidArgument.field(
                f"{field}.http_request.url",
                f"must be an absolute URL: {queue.name}'s http_target has no uri to resolve a path against",
                "URL_REQUIRED",
            )
    if target is not None and task.payload and not method_of(target, task).has_body:
        raise InvalidArgument.field(
            f"{field}.payload", f"must be empty: a {method_of(target, task).name} request has no body",
            "PAYLOAD_NOT_ALLOWED",
        )


def method_of(target: HttpTarget, task: Task) -> HttpMethod:
    if task.http is not None and task.http.method is not None:
        return task.http.method
    return target.method


@dataclasses.dataclass(slots=True)
class ResolvedRequest:
    """The request a task becomes, before taskq's own headers are added."""

    method: HttpMethod
    url: str
    #: The task's headers under the queue's (names as given; case-insensitively unique).
    headers: dict[str, str]
    body: bytes


def resolve(target: HttpTarget, task: Task) -> ResolvedRequest:
    """The task's request on this target: its URL (a path goes under the target's uri, whose
    query is dropped), its method, the target's headers over its own, its payload as the body."""
    url = target.uri
    headers: dict[str, str] = {}
    if task.http is not None:
        if task.http.url.startswith("/"):
            # Under the target's path: an app behind a path prefix keeps its task paths.
            base = urlsplit(target.uri)
            url = f"{base.scheme}://{base.netloc}{base.path.rstrip('/')}{task.http.url}"
        elif task.http.url:
            url = task.http.url
        headers.update(task.http.headers)
    overrides = {name.lower() for name in target.headers}
    headers = {name: value for name, value in headers.items() if name.lower() not in overrides}
    headers.update(target.headers)
    method = method_of(target, task)
    body = task.payload if method.has_body else b""
    if body and not any(name.lower() == "content-type" for name in headers):
        headers["Content-Type"] = "application/octet-stream"
    return ResolvedRequest(method, url, headers, body)
