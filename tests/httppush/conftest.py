"""Fixtures for HTTP push: a real worker service on loopback, and servers allowed to reach it
(loopback is refused by default: the SSRF guard) with a signing secret."""

from __future__ import annotations

import pytest
from support.engines import engine_settings
from support.http_worker import HttpWorker

from harness import ServerHarness

SECRET = "s3cret-for-tests"
#: Loopback is where the test workers listen.
HTTP_SETTINGS = {"http_allow_networks": "127.0.0.0/8,::1", "http_signing_secrets": SECRET}


@pytest.fixture
def worker():
    worker = HttpWorker()
    yield worker
    worker.close()


@pytest.fixture
def http_server(request, tmp_path, engine):
    """A server on the system clock that may deliver to loopback."""
    harness = ServerHarness(str(tmp_path / "data"), **HTTP_SETTINGS, **engine_settings(request, engine))
    yield harness
    harness.close()


@pytest.fixture
def fake_http_server(request, tmp_path, clock, engine):
    """The same on a FakeClock (retries wait until the test advances it)."""
    harness = ServerHarness(str(tmp_path / "data"), clock=clock, **HTTP_SETTINGS, **engine_settings(request, engine))
    yield harness
    harness.close()
