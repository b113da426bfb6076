"""The janitor: removes what has outlived its time, and keeps the ready/scheduled counts true.

- Name tombstones past their TTL are deleted; request ids older than their hour window too.
- FAILED tasks past their queue's task_ttl are deleted.
- Waiting tasks whose schedule time has passed are counted as ready (Txn.promote), so
  GetQueueStats reads exact counters without scanning.
- Consumed index ranges are compacted (Store.maintain), off the event loop.

It sleeps until the next expiry or schedule time; creates of scheduled tasks poke its alarm.
"""

from __future__ import annotations

import asyncio
import logging

from taskq.core.alarm import Alarm
from taskq.core.clock import Clock
from taskq.core.loop import BackgroundLoop
from taskq.core.model import ExpiryKind, Stage
from taskq.core.states import Event, transition
from taskq.store.base import Store
from taskq.store.commit import CommitLoop, Committed

log = logging.getLogger(__name__)

#: The janitor runs at least this often, to forget request ids of past hours.
REQUEST_SWEEP_US = 3_600_000_000


class Janitor(BackgroundLoop):
    #: Expiry entries handled per durable commit.
    BATCH = 1000

    def __init__(self, store: Store, commits: CommitLoop, clock: Clock, alarm: Alarm) -> None:
        super().__init__("janitor", clock, alarm)
        self._store = store
        self._commits = commits

    async def run_once(self) -> int:
        """Handles what is due now; returns how many expiry entries it handled."""
        now_us = self._clock.now_us()
        handled = 0
        if (self._store.next_expiry() or now_us + 1) <= now_us:
            handled = await self._commits.run(self._expire)
        queues = self._store.queues("", 2**31)
        due = [q.queue_id for q in queues if (self._store.first_scheduled(q) or now_us + 1) <= now_us]
        await self._commits.run(lambda committed: self._promote_and_forget(committed, due))
        await asyncio.to_thread(self._store.maintain)
        return handled

    def _expire(self, committed: Committed) -> int:
        store = self._store
        now_us = self._clock.now_us()
        entries = store.expiries(now_us, self.BATCH)
        for entry in entries:
            if entry.kind is ExpiryKind.FAILED_TASK:
                queue = store.queue_by_storage_id(entry.storage_id)
                task = store.task(queue, entry.key) if queue is not None else None
                if (
                    queue is not None
                    and task is not None
                    and task.stage is Stage.FAILED
                    and task.retain_until_us == entry.expire_us
                ):
                    transition(task.state(now_us), Event.DELETE, None)
                    committed.txn.delete_task(queue, task)
                    continue
            committed.txn.delete_expiry(entry)
        return len(entries)

    def _promote_and_forget(self, committed: Committed, due: list[str]) -> None:
        now_us = self._clock.now_us()
        for queue in self._store.queues("", 2**31):
            if queue.queue_id in due:
                committed.txn.promote(queue, now_us)
            committed.txn.forget_requests(queue, now_us)

    def next_wakeup_us(self, handled: int) -> int | None:
        if handled >= self.BATCH:
            return self._clock.now_us()
        candidates = [self._store.next_expiry()]
        candidates += [self._store.first_scheduled(q) for q in self._store.queues("", 2**31)]
        # At least hourly, so that request ids older than their window are deleted.
        known = [c for c in candidates if c is not None] + [self._clock.now_us() + REQUEST_SWEEP_US]
        return min(known)
