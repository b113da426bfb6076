"""Graceful stop of a worker process on SIGTERM and SIGINT.

Kubernetes (and `docker stop`) send SIGTERM, wait for the grace period, then SIGKILL; Ctrl-C
sends SIGINT. The first signal asks the worker to stop gracefully (finish running handlers,
send their answers); a second one asks it to stop now, without waiting for handlers.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


@contextlib.contextmanager
def stop_on_signals(stop: Callable[[float | None], None]) -> Iterator[None]:
    """While inside, SIGTERM/SIGINT call `stop(None)` (graceful) the first time and `stop(0)`
    (no grace) after that. Only the main thread can receive signals, so elsewhere this does
    nothing. The previous handlers are restored on exit."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received = 0

    def on_signal(signum: int, frame: object) -> None:
        nonlocal received
        received += 1
        stop(None if received == 1 else 0.0)

    previous = {signum: signal.signal(signum, on_signal) for signum in STOP_SIGNALS}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


__all__ = ["stop_on_signals", "STOP_SIGNALS"]
