"""The web console under /console on the HTTP port (docs/console.md)."""

from __future__ import annotations

from aiohttp import web

from taskq.api.engine_ref import EngineRef
from taskq.auth.authenticator import Authenticator
from taskq.console.failure_views import FailurePages
from taskq.console.history import History
from taskq.console.queue_views import QueuePages
from taskq.console.views import Console

#: The application's History (tests take samples with run_once()).
HISTORY = web.AppKey("taskq_console_history", History)


def register(app: web.Application, engine: EngineRef, authenticator: Authenticator | None, *, sample: bool = True) -> None:
    """Adds the console's pages to the HTTP port's application. With `sample`, the charts'
    history is sampled once a minute while the port is up (tests on a FakeClock sample by hand)."""
    history = History(engine)
    console = Console(engine, authenticator, history)
    app[HISTORY] = history
    console.register(app)
    QueuePages(console, history).register(app)
    FailurePages(console).register(app)
    if sample:
        async def start(app: web.Application) -> None:
            history.start()

        async def stop(app: web.Application) -> None:
            await history.stop()

        app.on_startup.append(start)
        app.on_cleanup.append(stop)


__all__ = ["register", "HISTORY"]
