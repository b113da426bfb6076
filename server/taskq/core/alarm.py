"""A wake-up time a background loop sleeps towards, which others can bring forward.

Loops (reaper, janitor, dispatchers) sleep until the next moment something can be due, and
no longer: an idle server does not poll. When a write creates something due earlier (a short
lease, a near ETA), the writer pokes the alarm and the loop wakes to re-plan.
"""

from __future__ import annotations

import asyncio

from taskq.core.clock import Clock


class Alarm:
    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._event = asyncio.Event()
        #: When the sleeper intends to wake; None while it sleeps without a deadline.
        self.target_us: int | None = None

    def poke(self, at_us: int | None = None) -> None:
        """Wakes the sleeper now (at_us None), or if `at_us` is before its planned wake-up."""
        if at_us is None or self.target_us is None or at_us < self.target_us:
            self._event.set()

    async def sleep_until(self, target_us: int | None) -> None:
        """Sleeps until `target_us` (None: until poked), or until poked for an earlier time."""
        self.target_us = target_us
        try:
            await self._clock.wait(self._event, target_us)
        finally:
            self._event.clear()
            self.target_us = None
