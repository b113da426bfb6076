"""The shape every background loop shares: run_once, then sleep until the next due moment.

Subclasses implement `run_once` (one pass, no sleeping; what tests call; it sets `more` when
a batch limit cut it short) and `next_wakeup_us` (when the next pass can have work; None for
"only when poked").

A loop never runs more often than its MIN_INTERVAL_US (unless its last pass was cut short by
a batch limit): things falling due a few milliseconds apart are handled together, in one
pass and one commit, not one pass each.
"""

from __future__ import annotations

import asyncio
import logging

from taskq.core.alarm import Alarm
from taskq.core.clock import Clock
from taskq.core.errors import TaskqError
from taskq.core.model import US_PER_SECOND

log = logging.getLogger(__name__)

#: After an unexpected failure, a loop waits this long before trying again.
RETRY_AFTER_FAILURE_US = US_PER_SECOND


class BackgroundLoop:
    #: The shortest time between the starts of two passes, µs.
    MIN_INTERVAL_US = 0

    def __init__(self, name: str, clock: Clock, alarm: Alarm) -> None:
        self.name = name
        self._clock = clock
        self.alarm = alarm
        self._stopping = False
        self._task: asyncio.Task[None] | None = None
        #: Set by run_once when it stopped at a batch limit with more already due.
        self.more = False
        #: Passes made by the loop running on its own.
        self.passes = 0

    async def run_once(self) -> int:
        raise NotImplementedError

    async def next_wakeup_us(self) -> int | None:
        raise NotImplementedError

    def start(self) -> None:
        self._stopping = False
        self._task = asyncio.get_running_loop().create_task(self._run(), name=f"taskq-{self.name}")

    async def stop(self) -> None:
        self._stopping = True
        self.alarm.poke()
        if self._task is not None:
            await self._task
            self._task = None

    async def _run(self) -> None:
        while not self._stopping:
            started_us = self._clock.now_us()
            self.passes += 1
            wake_us: int | None
            try:
                await self.run_once()
                if self.more:
                    wake_us = self._clock.now_us()
                else:
                    wake_us = await self.next_wakeup_us()
                    if wake_us is not None:
                        wake_us = max(wake_us, started_us + self.MIN_INTERVAL_US)
            except TaskqError as error:
                log.warning("%s: %s", self.name, error)
                wake_us = self._clock.now_us() + RETRY_AFTER_FAILURE_US
            except Exception:
                log.exception("%s failed; retrying", self.name)
                wake_us = self._clock.now_us() + RETRY_AFTER_FAILURE_US
            if self._stopping:
                break
            if wake_us is not None and wake_us <= self._clock.now_us():
                await asyncio.sleep(0)  # let requests run between back-to-back batches
                continue
            await self.alarm.sleep_until(wake_us)
