"""Fixtures of the CLI tests: the `taskq` command run in this process (`taskq`) or as a
process of its own (`taskq_process`, for what only a real process shows: pipes, terminals,
exit statuses), each against the test's real server."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from taskq.cli.main import main

#: The installed `taskq` script (the Makefile names it in TASKQ_BIN), else the one beside this Python.
TASKQ_BIN = os.environ.get("TASKQ_BIN") or str(Path(sys.executable).with_name("taskq"))


@dataclasses.dataclass
class Result:
    status: int
    out: str
    err: str

    def json(self):
        return json.loads(self.out)


@pytest.fixture
def taskq(server, capsys):
    """Runs `taskq ARGS... --server ADDRESS` and returns its exit status and output."""

    def run(*arguments: str) -> Result:
        try:
            status = main([*arguments, "--server", server.address])
        except SystemExit as exit:  # --help and --version
            status = exit.code
        captured = capsys.readouterr()
        return Result(status, captured.out, captured.err)

    return run


@pytest.fixture
def taskq_bin() -> str:
    """The path of the `taskq` script, for tests that run it from a shell."""
    return TASKQ_BIN


@pytest.fixture
def taskq_process(server):
    """Runs `taskq ARGS...` as a process with TASKQ_SERVER naming the test's server."""

    def run(*arguments: str, input: str | None = None) -> Result:
        completed = subprocess.run([TASKQ_BIN, *arguments], input=input, capture_output=True, text=True, timeout=60,
                                   env={**os.environ, "TASKQ_SERVER": server.address})
        return Result(completed.returncode, completed.stdout, completed.stderr)

    return run


@pytest.fixture
def pull(taskq):
    assert taskq("queue", "create", "work", "--type", "pull").status == 0
