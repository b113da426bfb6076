"""`queue purge` and `queue delete` ask first on a terminal, refuse without one unless given
--yes, and do nothing when the answer is no. The terminal is a real pseudo-terminal."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import time

import pytest

from taskq.client import Client

pytestmark = pytest.mark.engines("rocksdb")


@pytest.fixture
def queue_with_tasks(server) -> Client:
    """Queue "doomed" holding 2 tasks; yields a client to look at it."""
    with Client(server.address) as client:
        client.create_queue("doomed", type="pull")
        client.create_tasks("doomed", [{"payload": b"a"}, {"payload": b"b"}])
        yield client


def read_some(controller: int) -> bytes:
    """What the terminal shows within 0.1 s; b"" once the process and its terminal are gone."""
    if not select.select([controller], [], [], 0.1)[0]:
        return b""
    try:
        return os.read(controller, 4096)
    except OSError:  # EIO: nothing holds the terminal open any more
        return b""


def run_on_a_terminal(taskq_bin: str, server, arguments: list[str], answer: str) -> tuple[int, str, str]:
    """Runs taskq with a pseudo-terminal as stdin and stderr; types `answer` once it asks.
    Returns the exit status, stdout and what the terminal showed."""
    controller, terminal = pty.openpty()
    process = subprocess.Popen([taskq_bin, *arguments, "--server", server.address],
                               stdin=terminal, stdout=subprocess.PIPE, stderr=terminal, text=True)
    os.close(terminal)
    shown = b""
    deadline = time.monotonic() + 30
    while b"[y/N]" not in shown and process.poll() is None and time.monotonic() < deadline:
        shown += read_some(controller)
    if process.poll() is None:
        os.write(controller, answer.encode() + b"\n")
    out, _ = process.communicate(timeout=30)
    while chunk := read_some(controller):
        shown += chunk
    os.close(controller)
    return process.returncode, out, shown.decode().replace("\r\n", "\n")


def test_purge_on_a_terminal_asks_and_goes_ahead_on_yes(server, queue_with_tasks, taskq_bin):
    status, out, shown = run_on_a_terminal(taskq_bin, server, ["queue", "purge", "doomed"], "y")
    assert "Delete all 2 tasks of queues/doomed? [y/N] " in shown
    assert (status, out) == (0, "purged 2 tasks from queues/doomed\n")
    assert queue_with_tasks.get_queue_stats("doomed").tasks_count == 0


def test_delete_on_a_terminal_does_nothing_when_the_answer_is_no(server, queue_with_tasks, taskq_bin):
    status, out, shown = run_on_a_terminal(taskq_bin, server, ["queue", "delete", "doomed"], "n")
    assert "Delete queues/doomed and its 2 tasks? [y/N] " in shown
    assert (status, out) == (1, "")
    assert "taskq: CANCELLED NOT_CONFIRMED: queue delete: not confirmed; nothing was done" in shown
    assert queue_with_tasks.get_queue_stats("doomed").tasks_count == 2


@pytest.mark.parametrize("action", ["purge", "delete"])
def test_without_a_terminal_purge_and_delete_refuse_unless_given_yes(queue_with_tasks, taskq_process, action):
    refused = taskq_process("queue", action, "doomed", input="y\n")  # stdin is a pipe, not a terminal
    assert (refused.status, refused.out) == (2, "")
    assert refused.err == f"taskq: queue {action}: give --yes to confirm (stdin is not a terminal to ask on)\n"
    assert queue_with_tasks.get_queue_stats("doomed").tasks_count == 2
    assert taskq_process("queue", action, "doomed", "--yes").status == 0


def test_the_refusal_under_json_is_a_usage_error_document(queue_with_tasks, taskq_process):
    refused = taskq_process("--json", "queue", "purge", "doomed")
    assert refused.status == 2
    assert json.loads(refused.err) == {
        "code": "INVALID_ARGUMENT", "reason": "USAGE", "details": [],
        "message": "queue purge: give --yes to confirm (stdin is not a terminal to ask on)",
    }


def test_purging_a_missing_queue_fails_before_asking(server, taskq_bin):
    status, out, shown = run_on_a_terminal(taskq_bin, server, ["queue", "purge", "nope"], "y")
    assert "[y/N]" not in shown
    assert status == 1 and "QUEUE_NOT_FOUND" in shown
