"""The reaper: leases whose time ran out end as failed attempts.

It walks the lease-expiry index from its head up to now, in batches, and hands each expired
task to core.attempts (pull: ready again or failed; push: retried after backoff, failed or
dead-lettered). Between runs it sleeps until the next expiry, or until a new, shorter lease
pokes its alarm. Tests call `run_once` after moving a FakeClock.
"""

from __future__ import annotations

import logging

from taskq.core import attempts
from taskq.core.alarm import Alarm
from taskq.core.clock import Clock
from taskq.core.errors import Code
from taskq.core.loop import BackgroundLoop
from taskq.core.model import Stage
from taskq.core.states import Event
from taskq.store.base import Store
from taskq.store.commit import CommitLoop, Committed

log = logging.getLogger(__name__)


class Reaper(BackgroundLoop):
    #: Expired leases handled per durable commit.
    BATCH = 1000

    def __init__(self, store: Store, commits: CommitLoop, clock: Clock, alarm: Alarm) -> None:
        super().__init__("reaper", clock, alarm)
        self._store = store
        self._commits = commits

    async def run_once(self) -> int:
        """Ends every lease expired by now (up to BATCH); returns how many entries it handled."""
        return await self._commits.run(self._reap)

    def _reap(self, committed: Committed) -> int:
        store = self._store
        now_us = self._clock.now_us()
        entries = store.expired_leases(now_us, self.BATCH)
        for entry in entries:
            queue = store.queue_by_storage_id(entry.storage_id)
            task = store.task(queue, entry.task_id) if queue is not None else None
            if task is None or task.stage is not Stage.LEASED or task.lease_expire_us != entry.expire_us:
                if queue is not None:
                    log.error("lease index entry %s names no such lease; removing it", entry)
                committed.txn.forget_lease(entry)
                continue
            attempts.fail(
                committed, queue, task, now_us, event=Event.EXPIRE, code=Code.DEADLINE_EXCEEDED,
                message="lease expired",
            )
        return len(entries)

    def next_wakeup_us(self, handled: int) -> int | None:
        if handled >= self.BATCH:
            return self._clock.now_us()
        return self._store.next_lease_expiry()
