"""The web console's pages under /console on the HTTP port: server-rendered HTML (Jinja2),
plain forms, and one small script of our own that polls a JSON endpoint for live numbers.

Every page and action calls the core as the gRPC servicers do (api/validate, the engine's
queues and tasks), and is checked with the API's own rules (auth/policy.RULES) against the
principal of the session (console/session.py). Without authentication the console is open, as
the API is.
"""

from __future__ import annotations

import dataclasses
import hashlib
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import jinja2
from aiohttp import web

from taskq.api.engine_ref import EngineRef
from taskq.auth import policy
from taskq.auth.auth_file import token_hash
from taskq.auth.authenticator import Authenticator, Credentials
from taskq.auth.roles import Principal, Role
from taskq.console import session
from taskq.console.history import History, sparkline
from taskq.core import limits
from taskq.core.engine import Engine
from taskq.core.errors import Code, InvalidArgument, PermissionDenied, TaskqError, Unauthenticated
from taskq.core.model import US_PER_SECOND, QueueState, QueueType
from taskq.core.queues import QueueStats
from taskq.web import client_certificate

_HERE = Path(__file__).parent
PREFIX = "/console"

#: The queues page's sort keys (the `sort` query parameter) -> the row value sorted by.
SORT_KEYS = ("name", "type", "state", "total", "scheduled", "ready", "leased", "failed", "oldest", "rate")

_HTTP_STATUS = {
    Code.INVALID_ARGUMENT: 400, Code.NOT_FOUND: 404, Code.ALREADY_EXISTS: 409, Code.FAILED_PRECONDITION: 409,
    Code.PERMISSION_DENIED: 403, Code.UNAUTHENTICATED: 401, Code.RESOURCE_EXHAUSTED: 429, Code.UNAVAILABLE: 503,
}

#: Sent with every page: only our own files, no framing by other sites.
_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


@dataclasses.dataclass
class Viewer:
    """Who looks at a page: the principal (None: the console is open) and what its forms' CSRF
    tokens are bound to (the session cookie, or the client certificate's hash)."""

    principal: Principal | None
    binding: str | None

    @property
    def name(self) -> str | None:
        return self.principal.name if self.principal is not None else None

    def may(self, method: str, request: Any) -> bool:
        """Whether the API's rule for `method` lets this viewer make `request`."""
        if self.principal is None:
            return True
        try:
            policy.check(self.principal, method, policy.RULES[method], request)
        except PermissionDenied:
            return False
        return True

    def check(self, method: str, request: Any) -> None:
        """Raises PermissionDenied as the API would."""
        if self.principal is not None:
            policy.check(self.principal, method, policy.RULES[method], request)

    def sees(self, queue_id: str) -> bool:
        return self.principal is None or self.principal.allows(Role.VIEWER, queue_id)


@dataclasses.dataclass
class QueueRow:
    """A line of the queues page (and of its live JSON)."""

    queue_id: str
    type: str
    state: str
    total: int
    scheduled: int
    ready: int
    leased: int
    failed: int
    #: Seconds the oldest waiting task has been due (None: nothing waits).
    oldest: float | None
    #: Tasks handed out per second over the last minute.
    rate: float
    #: The queue's max_dispatches_per_second (None: unlimited; pull queues have none).
    limit: float | None

    def live(self) -> dict[str, Any]:
        """The numbers the page's script replaces, as shown."""
        return {
            "state": self.state, "total": self.total, "scheduled": self.scheduled, "ready": self.ready,
            "leased": self.leased, "failed": self.failed, "oldest": age(self.oldest), "rate": rate_text(self.rate, self.limit),
        }


def age(seconds: float | None) -> str:
    """3d 4h, 2h 5m, 4m 10s, 12s; "-" for none."""
    if seconds is None:
        return "-"
    whole = max(0, int(seconds))
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    if minutes:
        return f"{minutes}m {secs}s"
    return f"{secs}s"


def rate_text(rate: float, limit: float | None) -> str:
    shown = f"{rate:.2f}/s"
    if limit is None:
        return shown
    return f"{shown} of {limit:g}/s"


class Console:
    def __init__(self, engine: EngineRef, authenticator: Authenticator | None, history: History) -> None:
        self._engine = engine
        self._authenticator = authenticator
        #: The last hour of each queue (console/history.py), for the charts.
        self.history = history
        self._templates = jinja2.Environment(
            loader=jinja2.FileSystemLoader(_HERE / "templates"), autoescape=True, undefined=jinja2.StrictUndefined,
        )
        self._templates.filters["age"] = age

    def register(self, app: web.Application) -> None:
        routes = app.router
        routes.add_get(PREFIX, self._home)
        routes.add_get(PREFIX + "/", self._home)
        routes.add_get(PREFIX + "/login", self._login_page)
        routes.add_post(PREFIX + "/login", self._login)
        routes.add_post(PREFIX + "/logout", self._logout)
        routes.add_get(PREFIX + "/queues", self._queues_page)
        routes.add_get(PREFIX + "/queues.json", self._queues_json)
        routes.add_static(PREFIX + "/static", _HERE / "static", append_version=True)

    # Sessions -------------------------------------------------------------------------------

    def engine(self) -> Engine:
        return self._engine.get()

    def key(self) -> bytes:
        return self.engine().page_token_key

    async def viewer(self, request: web.Request) -> Viewer:
        """The session's viewer; Unauthenticated without a valid session when roles are checked."""
        if self._authenticator is None:
            return Viewer(None, None)
        key = self.key()
        cookie = request.cookies.get(session.COOKIE)
        if cookie and cookie.startswith(session.SEALED):
            token = session.opened_token(key, cookie, time.time())
            if token is not None:
                return Viewer(await self._authenticator.principal(Credentials(token=token)), cookie)
        elif cookie:
            hashed = session.hashed_token(key, cookie, time.time())
            principal = self._authenticator.file_token_principal(hashed) if hashed else None
            if principal is not None:
                return Viewer(principal, cookie)
        certificate = client_certificate(request)
        if certificate is not None:
            # mTLS: the browser's client certificate names the caller, as it does for the API.
            principal = await self._authenticator.principal(Credentials(certificate=certificate))
            return Viewer(principal, "certificate:" + hashlib.sha256(certificate).hexdigest())
        raise Unauthenticated("log in with a token")

    def check_csrf(self, viewer: Viewer, form: Any) -> None:
        if not session.csrf_ok(self.key(), viewer.binding, str(form.get("csrf", ""))):
            raise InvalidArgument.field("csrf", "the form is out of date or was not sent from this console: reload the "
                                        "page and try again", "CSRF_TOKEN_MISMATCH")

    # Pages ----------------------------------------------------------------------------------

    def render(self, request: web.Request, template: str, viewer: Viewer | None, status: int = 200,
                **values: Any) -> web.Response:
        key = self.key()
        body = self._templates.get_template(template).render(
            viewer=viewer, open=self._authenticator is None, prefix=PREFIX,
            csrf=session.csrf_token(key, viewer.binding if viewer else None),
            **values,
        )
        return web.Response(text=body, status=status, content_type="text/html", headers=_HEADERS)

    def failure(self, request: web.Request, viewer: Viewer | None, error: TaskqError) -> web.StreamResponse:
        if isinstance(error, Unauthenticated):
            # After the login, back to the page; a form's action would answer a GET with 405.
            back = request.path_qs if request.method == "GET" else ""
            raise web.HTTPSeeOther(f"{PREFIX}/login" + (f"?{urlencode({'next': back})}" if back else ""))
        return self.render(request, "error.html", viewer, status=_HTTP_STATUS.get(error.code, 500), error=error)

    async def _home(self, request: web.Request) -> web.StreamResponse:
        raise web.HTTPSeeOther(f"{PREFIX}/queues")

    async def _login_page(self, request: web.Request) -> web.StreamResponse:
        if self._authenticator is None:
            raise web.HTTPSeeOther(f"{PREFIX}/queues")
        return self.render(request, "login.html", None, next=_local(request.query.get("next", "")), message=None)

    async def _login(self, request: web.Request) -> web.StreamResponse:
        if self._authenticator is None:
            raise web.HTTPSeeOther(f"{PREFIX}/queues")
        form = await request.post()
        next_path = _local(str(form.get("next", "")))
        if not session.csrf_ok(self.key(), None, str(form.get("csrf", ""))):
            return self.render(request, "login.html", None, status=403, next=next_path,
                                message="The form had expired: try again.")
        token = str(form.get("token", "")).strip()
        try:
            if not token:
                raise Unauthenticated("enter a token")
            await self._authenticator.principal(Credentials(token=token))
            expires = int(time.time()) + session.SESSION_SECONDS
            if self._authenticator.file_token_principal(token_hash(token)) is not None:
                value = session.cookie_value(self.key(), token_hash(token), expires)
            else:  # a JWT: sealed, since its hash names nothing
                sealed = session.sealed_value(self.key(), token, expires)
                if sealed is None:
                    raise Unauthenticated(f"the token is too long to keep in a cookie (over {session.MAX_COOKIE_CHARS} "
                                          "characters sealed)")
                value = sealed
        except TaskqError as error:
            return self.render(request, "login.html", None, status=401, next=next_path, message=error.message)
        response = web.HTTPSeeOther(next_path or f"{PREFIX}/queues")
        response.set_cookie(session.COOKIE, value,
                            max_age=session.SESSION_SECONDS, path=PREFIX, httponly=True, samesite="Strict",
                            secure=request.secure)
        raise response

    async def _logout(self, request: web.Request) -> web.StreamResponse:
        form = await request.post()
        try:
            viewer = await self.viewer(request)
            self.check_csrf(viewer, form)
        except TaskqError:
            pass  # an ended session is logged out anyway
        response = web.HTTPSeeOther(f"{PREFIX}/login" if self._authenticator else f"{PREFIX}/queues")
        response.del_cookie(session.COOKIE, path=PREFIX)
        raise response

    async def _queues_page(self, request: web.Request) -> web.StreamResponse:
        viewer = None
        try:
            viewer = await self.viewer(request)
            query = _queue_query(request)
            rows = await self._queue_rows(viewer, query)
        except TaskqError as error:
            return self.failure(request, viewer, error)
        depths = {row.queue_id: [sample.depth for sample in self.history.of(row.queue_id)] for row in rows}
        return self.render(request, "queues.html", viewer, rows=rows, query=query, sort_keys=SORT_KEYS,
                            depths=depths, sparkline=sparkline,
                            live_url=f"{PREFIX}/queues.json?{request.query_string}")

    async def _queues_json(self, request: web.Request) -> web.StreamResponse:
        try:
            viewer = await self.viewer(request)
            rows = await self._queue_rows(viewer, _queue_query(request))
        except TaskqError as error:
            return web.json_response({"error": error.message, "reason": error.reason},
                                     status=_HTTP_STATUS.get(error.code, 500), headers=_HEADERS)
        return web.json_response({"queues": {row.queue_id: row.live() for row in rows}}, headers=_HEADERS)

    # Data -----------------------------------------------------------------------------------

    async def _queue_rows(self, viewer: Viewer, query: dict[str, str]) -> list[QueueRow]:
        """The queues the viewer may see (as ListQueues answers them), filtered and sorted by
        the query, each with its GetQueueStats counters."""
        engine = self._engine.get()
        rows = []
        after = ""
        while True:
            queues, after = await engine.queues.page(after, limits.MAX_PAGE_SIZE)
            for queue in queues:
                if not viewer.sees(queue.queue_id) or not _matches(queue, query):
                    continue
                try:
                    stats = await engine.queues.stats(queue.queue_id)
                except TaskqError:
                    continue  # deleted meanwhile
                rows.append(queue_row(engine.clock.now_us(), queue, stats))
            if not after:
                break
        key = query["sort"]
        rows.sort(key=lambda row: _sort_value(row, key), reverse=query["order"] == "desc")
        return rows


def queue_row(now_us: int, queue: Any, stats: QueueStats) -> QueueRow:
    oldest = None if stats.oldest_schedule_time_us is None else (now_us - stats.oldest_schedule_time_us) / US_PER_SECOND
    return QueueRow(
        queue_id=queue.queue_id, type=QueueType(queue.type).name.lower(), state=QueueState(queue.state).name.lower(),
        total=stats.tasks_count, scheduled=stats.scheduled_count, ready=stats.ready_count, leased=stats.leased_count,
        failed=stats.failed_count, oldest=oldest, rate=stats.effective_dispatch_rate,
        limit=queue.max_dispatches_per_second if queue.type is QueueType.PUSH else None,
    )


def _sort_value(row: QueueRow, key: str) -> Any:
    if key == "name":
        return row.queue_id
    if key == "oldest":
        return row.oldest if row.oldest is not None else -1.0
    return getattr(row, key)


def _queue_query(request: web.Request) -> dict[str, str]:
    """The queues page's query parameters, checked: q (part of the name), type, state, sort,
    order."""
    query = request.query
    values = {
        "q": query.get("q", "").strip()[:200],
        "type": query.get("type", ""),
        "state": query.get("state", ""),
        "sort": query.get("sort", "name") or "name",
        "order": query.get("order", "asc") or "asc",
    }
    if values["type"] not in ("", "push", "pull"):
        raise InvalidArgument.field("type", "must be push or pull", "INVALID_FILTER")
    if values["state"] not in ("", "running", "paused"):
        raise InvalidArgument.field("state", "must be running or paused", "INVALID_FILTER")
    if values["sort"] not in SORT_KEYS:
        raise InvalidArgument.field("sort", f"must be one of {', '.join(SORT_KEYS)}", "INVALID_FILTER")
    if values["order"] not in ("asc", "desc"):
        raise InvalidArgument.field("order", "must be asc or desc", "INVALID_FILTER")
    return values


def _matches(queue: Any, query: dict[str, str]) -> bool:
    if query["q"] and query["q"].lower() not in queue.queue_id.lower():
        return False
    if query["type"] and QueueType(queue.type).name.lower() != query["type"]:
        return False
    return not (query["state"] and QueueState(queue.state).name.lower() != query["state"])


def _local(path: str) -> str:
    """`path` when it is a console path of this server (after login), else "" (no open redirect)."""
    if path.startswith(PREFIX + "/") and not path.startswith("//") and "\\" not in path:
        return path
    return ""


__all__ = ["Console", "Viewer", "PREFIX", "age", "rate_text", "queue_row"]
