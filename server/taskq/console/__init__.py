"""The web console under /console on the HTTP port (docs/console.md)."""

from __future__ import annotations

from aiohttp import web

from taskq.api.engine_ref import EngineRef
from taskq.auth.authenticator import Authenticator
from taskq.console.failure_views import FailurePages
from taskq.console.queue_views import QueuePages
from taskq.console.views import Console


def register(app: web.Application, engine: EngineRef, authenticator: Authenticator | None) -> None:
    """Adds the console's pages to the HTTP port's application."""
    console = Console(engine, authenticator)
    console.register(app)
    QueuePages(console).register(app)
    FailurePages(console).register(app)


__all__ = ["register"]
