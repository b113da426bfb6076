"""Fixtures for the App Engine API bridge: a real taskq server with its HTTP port, and Google's
App Engine SDK (appengine-python-standard, from PyPI) in this process pointed at it, as an
app's request thread would be (API_HOST/API_PORT, an API ticket)."""

from __future__ import annotations

import os

import pytest
from support.engines import engine_settings
from support.http_worker import HttpWorker

from harness import ServerHarness


@pytest.fixture
def worker():
    """The application: a real HTTP server the push tasks reach."""
    worker = HttpWorker()
    yield worker
    worker.close()


@pytest.fixture
def bridge_server(request, tmp_path, engine, worker):
    """A server with the bridge on a free port, whose App Engine app is `worker`."""
    harness = ServerHarness(
        str(tmp_path / "data"), http_listen="127.0.0.1:0", appengine_url=worker.url,
        http_allow_networks="127.0.0.0/8", **engine_settings(request, engine),
    )
    yield harness
    harness.close()


@pytest.fixture
def sdk(bridge_server, monkeypatch):
    """google.appengine.api.taskqueue, talking to `bridge_server` from this thread."""
    from google.appengine.api import taskqueue
    from google.appengine.runtime import default_api_stub

    assert bridge_server.server is not None and bridge_server.server.http_port is not None
    monkeypatch.setenv("API_HOST", "127.0.0.1")
    monkeypatch.setenv("API_PORT", str(bridge_server.server.http_port.port))
    monkeypatch.setenv("HTTP_X_APPENGINE_API_TICKET", "ticket-of-a-test")
    monkeypatch.setenv("HTTP_HOST", "app.example.com")
    monkeypatch.setenv("GAE_APPLICATION", "s~test-app")
    default_api_stub.Register(default_api_stub.DefaultApiStub())
    default_api_stub.DefaultApiStub.SetUseRequestSecurityTicketForThread(True)
    yield taskqueue
    default_api_stub.DefaultApiStub.SetUseRequestSecurityTicketForThread(False)
    os.environ.pop("HTTP_X_APPENGINE_API_TICKET", None)
