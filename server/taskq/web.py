"""The HTTP port (`--http-listen`): App Engine's API bridge at `POST /rpc_http`, and Prometheus
metrics at `GET /metrics` (registered by app.py, taskq/metrics). With roles checked, both name
their caller (taskq/auth): the bridge in its protocol's way, GET paths by an Authorization
header or a client certificate (401, 403).

The web console lives under /console (taskq/console). The bridge needs the SDK's
message definitions, from the `appengine` extra (`pip install 'taskq[appengine]'`); without
them the port answers 501 with how to install them.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Awaitable, Callable

from aiohttp import web

from taskq.auth import policy
from taskq.auth.authenticator import Authenticator, Credentials, bearer_token
from taskq.core.engine import Engine
from taskq.core.errors import PermissionDenied, TaskqError, Unauthenticated

log = logging.getLogger(__name__)


class HttpPort:
    def __init__(self, engine: Engine, listen: str, target_urls: dict[str, str], max_body_bytes: int,
                 ssl_context: ssl.SSLContext | None = None, authenticator: Authenticator | None = None,
                 open_paths: frozenset[str] = frozenset()) -> None:
        self._listen = listen
        #: HTTPS when set (taskq/tls.py keeps its certificates current).
        self._ssl_context = ssl_context
        self._runner: web.AppRunner | None = None
        self.port: int | None = None
        try:
            from taskq.appengine.bridge import Bridge
        except ImportError as error:
            log.warning("the App Engine API bridge is off: %s (install taskq[appengine])", error)
            self._bridge = None
        else:
            self._bridge = Bridge(engine, target_urls, authenticator)
        #: Who calls, when roles are checked (the bridge reads credentials from the request).
        self._authenticator = authenticator
        #: GET paths served without credentials although roles are checked (auth_open_services).
        self._open_paths = open_paths
        self._app = web.Application(client_max_size=max_body_bytes)
        self._app.router.add_post("/rpc_http", self._rpc_http)

    @property
    def app(self) -> web.Application:
        """The aiohttp application, for routes that check their callers themselves (the web
        console, taskq/console, which keeps sessions of its own)."""
        return self._app

    def add_get(self, path: str, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> None:
        """Serves GET `path` with `handler` (before start): /metrics (taskq/metrics). With roles
        checked, the caller needs the role taskq/auth/policy.py gives `GET {path}`, unless the
        path is open: 401 without usable credentials, 403 without the role."""
        if self._authenticator is not None and path not in self._open_paths:
            handler = self._checked(f"GET {path}", handler)
        self._app.router.add_get(path, handler)

    def _checked(self, name: str, handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
                 ) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        authenticator = self._authenticator
        assert authenticator is not None
        rule = policy.RULES[name]  # a path without a rule is a bug: it fails at start-up, not open

        async def checked(request: web.Request) -> web.StreamResponse:
            try:
                principal = await authenticator.principal(_credentials(request))
                policy.check(principal, name, rule, request)
            except Unauthenticated as error:
                return web.Response(status=401, headers={"WWW-Authenticate": "Bearer"},
                                    text=f"{error.reason}: {error.message}\n")
            except PermissionDenied as error:
                return web.Response(status=403, text=f"{error.reason}: {error.message}\n")
            except TaskqError as error:
                return web.Response(status=503, text=f"{error.reason}: {error.message}\n")
            return await handler(request)

        return checked

    async def start(self) -> int:
        """Listens; returns the port (a port in use raises OSError)."""
        host, _, port = self._listen.rpartition(":")
        self._runner = web.AppRunner(self._app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host.strip("[]"), int(port), reuse_address=False, ssl_context=self._ssl_context)
        await site.start()
        self.port = int(self._runner.addresses[0][1])
        return self.port

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _rpc_http(self, request: web.Request) -> web.Response:
        if self._bridge is None:
            return web.Response(status=501, text="the App Engine API bridge needs the appengine extra: "
                                "pip install 'taskq[appengine]'\n")
        body = await request.read()
        credentials = None
        if self._authenticator is not None:
            try:
                credentials = _credentials(request)
            except TaskqError as error:
                return web.Response(status=401, text=f"{error.reason}: {error.message}\n")
        return web.Response(body=await self._bridge.call(body, credentials), content_type="application/octet-stream")


def _credentials(request: web.Request) -> Credentials:
    """The request's bearer token and its connection's client certificate (mTLS), DER."""
    return Credentials(bearer_token(request.headers.getall("Authorization", [])), client_certificate(request))


def client_certificate(request: web.Request) -> bytes | None:
    """The client certificate (DER) of the request's connection, None without one (no mTLS)."""
    ssl_object = request.transport.get_extra_info("ssl_object") if request.transport is not None else None
    certificate = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
    return certificate or None
