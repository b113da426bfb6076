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
from taskq.store.rocksdb import RocksStore  # noqa: E402

#: Every engine the suite runs against; a new engine (PostgreSQL) adds itself here. Each
#: factory gets pytest's tmp_path and returns an open, empty store with a `faults` attribute
#: (store/faults.py).
ENGINES = {
    "memory": lambda tmp_path: MemoryStore(),
    "rocksdb": lambda tmp_path: RocksStore(str(tmp_path / "data")),
}


@pytest.fixture(params=sorted(ENGINES))
def store(request, tmp_path):
    opened = ENGINES[request.param](tmp_path)
    yield opened
    opened.close()


@pytest.fixture
def rocks_path(tmp_path) -> str:
    return str(tmp_path / "data")
