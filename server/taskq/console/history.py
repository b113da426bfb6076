"""The last hour of each queue for the console's charts: once a minute, every queue's depth (its
tasks waiting or leased) and throughput (tasks finished in the last minute), read from the
counters GetQueueStats reads, kept in memory in a bounded ring per queue (never in the
database: a restart starts the hour again). Each server keeps its own: with several servers on
PostgreSQL the depth is the queue's, the throughput what this server saw finish.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import logging

from taskq.api.engine_ref import EngineRef
from taskq.core.errors import TaskqError
from taskq.core.model import US_PER_SECOND

log = logging.getLogger(__name__)

#: Seconds between samples.
INTERVAL_SECONDS = 60
#: Samples kept per queue: an hour.
SAMPLES = 60
#: Queues sampled at most (the first ones in id order): bounds memory and each round's reads.
MAX_QUEUES = 10_000


@dataclasses.dataclass(frozen=True, slots=True)
class Sample:
    #: Unix time of the sample, seconds.
    time_s: int
    #: Tasks scheduled, ready or leased.
    depth: int
    #: Tasks finished (acknowledged or deleted after their work) in the minute before.
    executed: int


class History:
    def __init__(self, engine: EngineRef) -> None:
        self._engine = engine
        self._rings: dict[str, collections.deque[Sample]] = {}
        self._task: asyncio.Task | None = None

    def of(self, queue_id: str) -> list[Sample]:
        """The queue's samples, oldest first."""
        return list(self._rings.get(queue_id, ()))

    async def run_once(self) -> int:
        """Takes one sample of every queue (up to MAX_QUEUES); returns how many."""
        engine = self._engine.get()
        now_s = engine.clock.now_us() // US_PER_SECOND
        seen: set[str] = set()
        after = ""
        while len(seen) < MAX_QUEUES:
            queues, after = await engine.queues.page(after, 1000)
            for queue in queues[: MAX_QUEUES - len(seen)]:
                try:
                    stats = await engine.queues.stats(queue.queue_id)
                except TaskqError:
                    continue
                ring = self._rings.setdefault(queue.queue_id, collections.deque(maxlen=SAMPLES))
                ring.append(Sample(now_s, stats.scheduled_count + stats.ready_count + stats.leased_count,
                                   stats.executed_last_minute))
                seen.add(queue.queue_id)
            if not after:
                break
        for gone in self._rings.keys() - seen:
            del self._rings[gone]
        return len(seen)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="taskq-console-history")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            try:
                await self.run_once()
            except TaskqError as error:  # the database is away for a moment: the next round
                log.debug("console history: no sample: %s", error.message)
            await asyncio.sleep(INTERVAL_SECONDS)


def sparkline(values: list[int], width: int = 240, height: int = 48) -> str:
    """An SVG polyline's points for `values` scaled into width x height (0 at the bottom)."""
    if not values:
        return ""
    top = max(max(values), 1)
    step = width / max(len(values) - 1, 1)
    return " ".join(f"{index * step:.1f},{height - value / top * (height - 2) - 1:.1f}" for index, value in enumerate(values))


__all__ = ["History", "Sample", "sparkline", "INTERVAL_SECONDS", "SAMPLES"]
