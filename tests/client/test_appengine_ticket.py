"""taskq.client.appengine.with_api_ticket: every request reaches the App Engine SDK with an API
ticket (tests/appengine/test_example_app.py runs it in front of the real SDK)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from taskq.client.appengine import DEFAULT_TICKET, TICKET_ENVIRON_KEY, with_api_ticket

KEY = "HTTP_X_APPENGINE_API_TICKET"


class InnerApp:
    """A WSGI app that remembers the environ it was called with."""

    def __init__(self) -> None:
        self.environ: dict | None = None
        self.body = [b"hello"]

    def __call__(self, environ, start_response):
        self.environ = dict(environ)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return self.body


def call(app, environ: dict) -> tuple[list, object]:
    started = []
    body = app({"REQUEST_METHOD": "GET", "PATH_INFO": "/", **environ}, lambda status, headers: started.append((status, headers)))
    return started, body


def test_the_environ_key_is_the_one_the_sdk_reads():
    assert TICKET_ENVIRON_KEY == KEY  # default_api_stub.TICKET_HEADER, and gae_headers' API_TICKET
    assert DEFAULT_TICKET == "taskq"


def test_a_request_without_a_ticket_gets_the_default_one():
    inner = InnerApp()
    started, body = call(with_api_ticket(inner), {})
    assert inner.environ[KEY] == "taskq"
    assert started == [("200 OK", [("Content-Type", "text/plain")])]
    assert body is inner.body  # the app's own iterable, so that its close() is still called


def test_the_ticket_can_be_chosen():
    inner = InnerApp()
    call(with_api_ticket(inner, ticket="our-app"), {})
    assert inner.environ[KEY] == "our-app"


def test_a_ticket_the_request_carries_is_kept():
    inner = InnerApp()
    call(with_api_ticket(inner), {KEY: "taskq-email-task42"})
    assert inner.environ[KEY] == "taskq-email-task42"


def test_an_empty_ticket_header_counts_as_none():
    inner = InnerApp()
    call(with_api_ticket(inner, ticket="t"), {KEY: ""})
    assert inner.environ[KEY] == "t"


def test_each_request_is_given_the_ticket_on_its_own():
    inner = InnerApp()
    app = with_api_ticket(inner)
    call(app, {KEY: "from-a-push-request"})
    assert inner.environ[KEY] == "from-a-push-request"
    call(app, {})
    assert inner.environ[KEY] == "taskq"


@pytest.mark.parametrize("ticket", ["", None, b"bytes"])
def test_an_empty_or_non_string_ticket_is_refused(ticket):
    with pytest.raises(ValueError, match="non-empty string"):
        with_api_ticket(InnerApp(), ticket=ticket)


def test_the_module_does_not_import_the_app_engine_sdk():
    code = ("import sys, taskq.client.appengine; "
            "sys.exit(1 if any(name.startswith('google.appengine') for name in sys.modules) else 0)")
    assert subprocess.run([sys.executable, "-c", code], timeout=60).returncode == 0
