"""Client-test fixtures: workers run in background threads, stopped at the end of the test."""

from __future__ import annotations

import threading

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
