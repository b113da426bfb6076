"""Time, injected: the system clock for servers, a fake one that tests move by hand.

Everything that reads the time or waits for it goes through a Clock, so a test can advance a
FakeClock by an hour and see leases expire and retries fall due without sleeping.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import threading
import time
from typing import Any, Protocol

from taskq.core.model import US_PER_SECOND


class Clock(Protocol):
    def now_us(self) -> int:
        """The current time in microseconds since the Unix epoch."""
        ...

    async def wait(self, event: asyncio.Event, deadline_us: int | None) -> bool:
        """Waits until `event` is set or the clock reaches `deadline_us` (None: no deadline).

        Returns True if the event was set. Does not clear the event.
        """
        ...


class SystemClock:
    """Wall-clock time; waits are asyncio timeouts."""

    def now_us(self) -> int:
        return time.time_ns() // 1000

    async def wait(self, event: asyncio.Event, deadline_us: int | None) -> bool:
        if event.is_set():
            return True
        if deadline_us is None:
            await event.wait()
            return True
        timeout = (deadline_us - self.now_us()) / US_PER_SECOND
        if timeout <= 0:
            return False
        try:
            await asyncio.wait_for(event.wait(), timeout)
            return True
        except TimeoutError:
            return False


class FakeClock:
    """A clock that moves only when `advance` is called; safe to advance from another thread.

    Waiters whose deadline is reached by an advance are woken on their event loop.
    """

    def __init__(self, start_us: int = 1_800_000_000 * US_PER_SECOND) -> None:
        self._now_us = start_us
        self._lock = threading.Lock()
        self._timers: list[tuple[int, int, asyncio.AbstractEventLoop, asyncio.Future[None]]] = []
        self._sequence = itertools.count()

    def now_us(self) -> int:
        return self._now_us

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._now_us += round(seconds * US_PER_SECOND)
            due = []
            while self._timers and self._timers[0][0] <= self._now_us:
                due.append(heapq.heappop(self._timers))
        for _, _, loop, future in due:
            loop.call_soon_threadsafe(_resolve, future)

    async def wait(self, event: asyncio.Event, deadline_us: int | None) -> bool:
        if event.is_set():
            return True
        if deadline_us is not None and deadline_us <= self._now_us:
            return False
        loop = asyncio.get_running_loop()
        timer: asyncio.Future[None] = loop.create_future()
        if deadline_us is not None:
            with self._lock:
                # Checked again under the lock: an advance from another thread since the check
                # above would otherwise leave this timer behind, never to fire.
                if deadline_us <= self._now_us:
                    return event.is_set()
                heapq.heappush(self._timers, (deadline_us, next(self._sequence), loop, timer))
        event_wait: asyncio.Future[bool] = asyncio.ensure_future(event.wait())
        waiters: set[asyncio.Future[Any]] = {event_wait, timer}
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            event_wait.cancel()
            timer.cancel()
        return event.is_set()


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
