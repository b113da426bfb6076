"""Fixtures of the storage conformance suite: every engine the suite runs against.

The suite states the contract of store/base.py as tests (test_store_*.py, by topic); the
builders they share are in store_helpers.py, next to this file.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from taskq.store.memory import MemoryStore  # noqa: E402
from taskq.store.postgres.store import PgStore  # noqa: E402
from taskq.store.rocksdb import RocksStore  # noqa: E402

#: Every engine the suite runs against. Each factory gets the pytest request and tmp_path and
#: returns an open, empty store with a `faults` attribute (store/faults.py).
ENGINES = {
    "memory": lambda request, tmp_path: MemoryStore(),
    "rocksdb": lambda request, tmp_path: RocksStore(str(tmp_path / "data")),
    "postgres": lambda request, tmp_path: PgStore(request.getfixturevalue("postgres_cluster").new_database()),
}


#: The engines that count waiting tasks by a promotion boundary (Counters.counts_as_ready)
#: with a promotion index of its own; PostgreSQL counts by a flag per task instead.
BOUNDARY_ENGINES = ["memory", "rocksdb"]
#: The engines whose transactions run concurrently (the others have one writer at a time).
CONCURRENT_ENGINES = ["postgres"]


@pytest.fixture(params=sorted(ENGINES))
def store(request, tmp_path):
    opened = ENGINES[request.param](request, tmp_path)
    yield opened
    opened.close()


@pytest.fixture(params=BOUNDARY_ENGINES)
def boundary_store(request, tmp_path):
    """A store of an engine that counts by a boundary: for what only a boundary does."""
    opened = ENGINES[request.param](request, tmp_path)
    yield opened
    opened.close()


@pytest.fixture(params=CONCURRENT_ENGINES)
def concurrent_store(request, tmp_path):
    """A store of an engine whose transactions run concurrently."""
    opened = ENGINES[request.param](request, tmp_path)
    yield opened
    opened.close()


@pytest.fixture
def rocks_path(tmp_path) -> str:
    return str(tmp_path / "data")
