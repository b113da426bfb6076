"""Fixtures: a real server per test (port 0, RocksDB in tmp_path), with the system clock or a
FakeClock that only moves when the test says so."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from harness import FakeClock, ServerHarness, Stream  # noqa: E402


@pytest.fixture
def server(tmp_path):
    """A server on the system clock, with its reaper and janitor running."""
    harness = ServerHarness(str(tmp_path / "data"))
    yield harness
    harness.close()


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def fake_server(tmp_path, clock):
    """A server on a FakeClock; background loops are off: call reap()/janitor() yourself."""
    harness = ServerHarness(str(tmp_path / "data"), clock=clock)
    yield harness
    harness.close()


@pytest.fixture
def streams():
    """Push streams a test opened (closed at its end)."""
    opened: list[Stream] = []
    yield opened
    for stream in opened:
        stream.close()


@pytest.fixture(scope="session")
def postgres_cluster():
    """One throwaway PostgreSQL cluster for the whole run (tests/postgres_cluster.py); each test
    takes a fresh database from it. Skipped where PostgreSQL is not installed, unless
    TASKQ_REQUIRE_POSTGRES is set (make test sets it: there, a missing PostgreSQL fails)."""
    import os

    from postgres_cluster import PostgresCluster, binaries

    if binaries() is None:
        if os.environ.get("TASKQ_REQUIRE_POSTGRES"):
            pytest.fail("PostgreSQL is not installed (make test installs Debian's postgresql package)")
        pytest.skip("PostgreSQL is not installed")
    cluster = PostgresCluster().start()
    yield cluster
    cluster.close()
