"""Fixtures: a real server per test (port 0), with the system clock or a FakeClock that only
moves when the test says so, on each storage engine: RocksDB in tmp_path, and PostgreSQL (a
fresh database in a throwaway cluster, see postgres_cluster.py).

`server` and `fake_server` run every test that uses them once per engine. A test of what only
one engine does says so with `@pytest.mark.engines("rocksdb")`.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from support.engines import engine_settings  # noqa: E402

from harness import FakeClock, ServerHarness, Stream  # noqa: E402

ENGINES = ("rocksdb", "postgres")


def pytest_configure(config):
    config.addinivalue_line("markers", "engines(*names): run the test only on these storage engines")


def pytest_collection_modifyitems(config, items):
    """Drops the engine variants a test's `engines` marker excludes."""
    kept, dropped = [], []
    for item in items:
        marker = item.get_closest_marker("engines")
        engine = getattr(item, "callspec", None) and item.callspec.params.get("engine")
        if marker is not None and engine is not None and engine not in marker.args:
            dropped.append(item)
        else:
            kept.append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


@pytest.fixture(params=ENGINES)
def engine(request) -> str:
    """The storage engine of the test's server."""
    return request.param


@pytest.fixture
def server(request, tmp_path, engine):
    """A server on the system clock, with its reaper and janitor running."""
    harness = ServerHarness(str(tmp_path / "data"), **engine_settings(request, engine))
    yield harness
    harness.close()


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def fake_server(request, tmp_path, clock, engine):
    """A server on a FakeClock; background loops are off: call reap()/janitor() yourself."""
    harness = ServerHarness(str(tmp_path / "data"), clock=clock, **engine_settings(request, engine))
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
