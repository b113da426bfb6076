"""Fixtures for /metrics: a real server with its HTTP port, on each storage engine, and a
scrape parsed into samples."""

from __future__ import annotations

import pytest
from support.engines import engine_settings
from support.scrape import Scrape

from harness import ServerHarness


@pytest.fixture
def metered(request, tmp_path, clock, engine):
    """A server on a FakeClock (loops off: call reap() yourself) with its HTTP port."""
    harness = ServerHarness(str(tmp_path / "data"), clock=clock, http_listen="127.0.0.1:0",
                            **engine_settings(request, engine))
    yield harness
    harness.close()


@pytest.fixture
def scrape():
    return Scrape
