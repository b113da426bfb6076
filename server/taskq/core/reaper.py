"""The reaper: leases whose time ran out end as failed attempts.

It walks the global lease-expiry index from its head up to now, a batch per durable commit,
and hands each expired lease to core/transitions.py (pull: ready again or failed; push:
retried after backoff, failed or dead-lettered). A pass reads only what is due, however many
queues there are. Between passes it sleeps until the next expiry, or until a new, shorter
lease pokes its alarm. Tests call `run_once` after moving a FakeClock.
"""

from __future__ import annotations

import logging

from taskq.core import transitions
from taskq.core.alarm import Alarm
from taskq.core.clock import Clock
from taskq.core.loop import BackgroundLoop
from taskq.core.transitions import prefetch_by_queue
from taskq.store.database import Change, Database

log = logging.getLogger(__name__)


class Reaper(BackgroundLoop):
    #: Expired leases handled per durable commit: about 9 ms of the writer's time (35 µs each,
    #: bench/housekeeping.py), so requests never wait long behind a pass.
    BATCH = 250
    #: Leases expiring within this window of each other are reaped in one pass (µs).
    MIN_INTERVAL_US = 50_000

    def __init__(self, db: Database, clock: Clock, alarm: Alarm) -> None:
        super().__init__("reaper", clock, alarm)
        self._db = db

    async def run_once(self) -> int:
        """Ends the leases expired by now (up to BATCH); returns how many entries it handled."""
        now_us = self._clock.now_us()
        next_expiry = await self._db.read(lambda reader: reader.next_lease_expiry())
        if next_expiry is None or next_expiry > now_us:
            self.more = False
            return 0
        handled = await self._db.write(self._reap)
        self.more = handled >= self.BATCH
        return handled

    def _reap(self, change: Change) -> int:
        now_us = self._clock.now_us()
        entries = change.txn.expired_leases(now_us, self.BATCH)
        prefetch_by_queue(change, [(entry.storage_id, entry.task_id) for entry in entries])
        for entry in entries:
            if not transitions.expire(change, entry, now_us):
                log.debug("lease index entry %s names no such lease; removed it", entry)
        return len(entries)

    async def next_wakeup_us(self) -> int | None:
        return await self._db.read(lambda reader: reader.next_lease_expiry())
