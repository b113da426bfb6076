"""Client-test fixtures: workers run in background threads, stopped at the end of the test;
a proxy that loses answers on purpose."""

from __future__ import annotations

import queue
import subprocess
import sys
import threading
from pathlib import Path

import pytest


@pytest.fixture
def run_in_thread():
    """Starts a worker's run() in a thread; at the end of the test stops and joins it. Returns
    the thread; `thread.error` holds what run() raised."""
    started: list[tuple[object, threading.Thread]] = []

    def start(worker) -> threading.Thread:
        def target() -> None:
            try:
                worker.run(handle_signals=False)
            except BaseException as error:  # reported to the test
                thread.error = error

        thread = threading.Thread(target=target, daemon=True)
        thread.error = None
        thread.start()
        started.append((worker, thread))
        return thread

    yield start
    for worker, thread in started:
        worker.stop(grace_period=0)
        thread.join(10)


#: The lossy proxy the client tests of every language share (see its docstring).
FLAKY_PROXY = Path(__file__).resolve().parents[1] / "support" / "flaky_proxy.py"


class FlakyProxy:
    """A running tests/support/flaky_proxy.py: `address` to connect to; `lines` what it printed
    after its first line (one "dropped response on stream N" per lost answer)."""

    def __init__(self, target: str, drop_responses: int) -> None:
        self.process = subprocess.Popen(
            [sys.executable, str(FLAKY_PROXY), "--target", target, "--drop-responses", str(drop_responses)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        first = self.lines.get(timeout=30)
        assert first.startswith("flaky_proxy listening on "), first
        self.address = first.rsplit(" ", 1)[1]

    def _read(self) -> None:
        for line in self.process.stdout:
            self.lines.put(line.strip())

    def close(self) -> None:
        self.process.stdin.close()  # the end of its input stops it
        self.process.wait(10)


@pytest.fixture
def flaky_proxy():
    """Starts flaky proxies in front of a server: `flaky_proxy(server.address, drop_responses=1)`;
    stopped at the end of the test."""
    started: list[FlakyProxy] = []

    def start(target: str, drop_responses: int = 0) -> FlakyProxy:
        proxy = FlakyProxy(target, drop_responses)
        started.append(proxy)
        return proxy

    yield start
    for proxy in started:
        proxy.close()
