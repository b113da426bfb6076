"""Running an App Engine app (Google's `appengine-python-standard` SDK) against taskq.

    from google.appengine.api import wrap_wsgi_app
    from taskq.client.appengine import with_api_ticket

    app.wsgi_app = with_api_ticket(wrap_wsgi_app(app.wsgi_app, use_deferred=True))

Why: the SDK makes no API call (taskqueue.add, deferred.defer, ...) without an API ticket;
without one it raises `RPCFailedError: Attempted RPC call without active security ticket`.
On App Engine the front end puts an `X-AppEngine-Api-Ticket` header on every request it
passes to the app, and `wrap_wsgi_app`'s middlewares hand it to the SDK from the WSGI
environ key `HTTP_X_APPENGINE_API_TICKET` (copied to os.environ in the SDK's default legacy
mode, to a context variable otherwise: both read that key). Self-hosted, the push requests
taskq sends carry a ticket, but every other request (your users') comes without one, so
each handler that adds a task would fail. `with_api_ticket` puts a ticket in the environ of
every request that has none, before the SDK's middlewares read it; it must therefore wrap
`wrap_wsgi_app(...)`, not be wrapped by it. A ticket the request carries is left as it is.

With a taskq token in the app's environment (TASKQ_TOKEN, or TASKQ_TOKEN_FILE naming a file
holding one), every request's ticket is that token, whatever ticket the request carried: a
taskq server that checks callers takes the API ticket as the app's bearer token (its roles
decide what the app may do), and the SDK carries it to every call unchanged. Without one, a
request keeps its own ticket and one without gets `ticket`: enough for a server that checks
no callers, where whoever reaches taskq's HTTP port can add, lease and delete tasks (keep that
port on a private network, reachable by the app only). And since App Engine stripped `X-AppEngine-*`
headers from outside requests while a self-hosted app has no such front end, a task handler
must not trust `X-AppEngine-QueueName` alone: verify taskq's `X-Taskq-Signature`
(`taskq.client.signature.verify_wsgi_request`) or have a proxy strip those headers from
outside requests (docs/appengine.md).

This module does not import the SDK: it only sets an environ key.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from taskq.client.bearer import bearer_token

#: The WSGI environ key the SDK reads the API ticket from (the X-AppEngine-Api-Ticket header).
TICKET_ENVIRON_KEY = "HTTP_X_APPENGINE_API_TICKET"
#: The ticket given to requests that carry none.
DEFAULT_TICKET = "taskq"

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def with_api_ticket(app: WsgiApp, ticket: str = DEFAULT_TICKET) -> WsgiApp:
    """`app` (a WSGI application, normally the result of the SDK's `wrap_wsgi_app`) behind a
    middleware that gives every request the app's taskq token as its API ticket (when
    TASKQ_TOKEN or TASKQ_TOKEN_FILE is set, read now; a token file is read again when it
    changes), else gives every request without an API ticket the ticket `ticket`, so that its
    handler can call App Engine's APIs through taskq. Raises ValueError for an empty ticket or
    one that is not a string (the SDK treats an empty ticket as none)."""
    if not isinstance(ticket, str) or not ticket:
        raise ValueError("the API ticket must be a non-empty string")
    token = bearer_token(None, None)

    def with_ticket(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if token is not None:
            # Replaced, not kept: a request's own ticket (taskq's push requests carry one) is no
            # credential, and an outside caller must not choose the one the app calls with.
            environ[TICKET_ENVIRON_KEY] = token.token()
        elif not environ.get(TICKET_ENVIRON_KEY):
            environ[TICKET_ENVIRON_KEY] = ticket
        return app(environ, start_response)

    return with_ticket


__all__ = ["with_api_ticket", "TICKET_ENVIRON_KEY", "DEFAULT_TICKET"]
