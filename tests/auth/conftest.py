"""Fixtures for authentication and roles: a tokens file the test writes, and a real server on a
FakeClock (so the file is looked at again only when the test moves time) that reads it."""

from __future__ import annotations

import pytest
from support.auth_files import TokensFile

from harness import FakeClock, ServerHarness


@pytest.fixture
def tokens_file(tmp_path) -> TokensFile:
    return TokensFile(tmp_path / "tokens.yaml")


@pytest.fixture
def auth_server(tmp_path, tokens_file):
    """A server on a FakeClock that checks callers against `tokens_file` (RocksDB: what is
    checked here happens before any storage engine is involved)."""
    harness = ServerHarness(str(tmp_path / "data"), clock=FakeClock(), auth_tokens_file=str(tokens_file.path))
    yield harness
    harness.close()
