"""The janitor: removes what has outlived its time, and keeps the ready/scheduled counts true.

- Name tombstones past their TTL are deleted, and FAILED tasks past their queue's task_ttl.
- Request ids and acknowledgements of past hours are forgotten, a whole hour of a queue at once.
- Waiting tasks whose schedule time has passed are counted as ready (Txn.promote), so
  GetQueueStats reads exact counters without scanning.
- Consumed index ranges are compacted (Store.maintain), off the event loop.

Each of these has a global index by due time (store/keys.py: Y, J, P), so a pass reads only
what is due, a bounded batch per durable commit, whatever the number of queues; a pass with
nothing due writes nothing. It sleeps until the earliest due time, and runs at most once a
second unless a batch was full.
"""

from __future__ import annotations

import logging

from taskq.core import transitions
from taskq.core.alarm import Alarm
from taskq.core.clock import Clock
from taskq.core.loop import BackgroundLoop
from taskq.core.model import ExpiryKind
from taskq.core.transitions import prefetch_by_queue
from taskq.store import keys
from taskq.store.base import Reader
from taskq.store.database import Change, Database

log = logging.getLogger(__name__)

#: Request ids and acknowledgements are kept by the hour (store/keys.py).
HOUR_US = keys.REQUEST_BUCKET_US


def _before(hour: int | None, limit: int) -> bool:
    return hour is not None and hour < limit


class Janitor(BackgroundLoop):
    #: Expiry-index and promotion-index entries handled per durable commit: a few ms of the
    #: writer's time (bench/housekeeping.py).
    BATCH = 250
    #: (queue, hour) buckets of request ids forgotten per durable commit: each is two range
    #: deletions, about 100 µs.
    HOURS_BATCH = 100
    #: Waiting tasks counted as ready per durable commit.
    PROMOTE_BATCH = 10_000
    #: At most one pass per second: expiries falling due milliseconds apart share one pass.
    MIN_INTERVAL_US = 1_000_000

    def __init__(self, db: Database, clock: Clock, alarm: Alarm) -> None:
        super().__init__("janitor", clock, alarm)
        self._db = db

    async def run_once(self) -> int:
        """Handles a batch of each kind of work due now; returns how many entries it handled."""
        now_us = self._clock.now_us()
        keep_from_hour = now_us // HOUR_US - 1
        due = await self._db.read(
            lambda reader: (
                (reader.next_expiry() or now_us + 1) <= now_us,
                (reader.next_promotion() or now_us + 1) <= now_us,
                _before(reader.first_request_hour(), keep_from_hour),
            )
        )
        handled = 0
        full = False
        for is_due, step, batch in zip(due, (self._expire, self._promote, self._forget_hours),
                                       (self.BATCH, self.BATCH, self.HOURS_BATCH)):
            if is_due:
                count = await self._db.write(step)
                handled += count
                full = full or count >= batch
        self.more = full
        if handled:
            await self._db.maintain()
        return handled

    def _expire(self, change: Change) -> int:
        txn = change.txn
        now_us = self._clock.now_us()
        entries = txn.expiries(now_us, self.BATCH)
        prefetch_by_queue(change, [(e.storage_id, e.key) for e in entries if e.kind is ExpiryKind.FAILED_TASK])
        for entry in entries:
            if entry.kind is ExpiryKind.FAILED_TASK:
                queue = txn.queue_by_storage_id(entry.storage_id)
                if queue is not None and transitions.discard(change, queue, entry.key, entry.expire_us, now_us):
                    continue  # deleting the task deleted its entry
            txn.delete_expiry(entry)
        return len(entries)

    def _promote(self, change: Change) -> int:
        txn = change.txn
        now_us = self._clock.now_us()
        entries = txn.promotions(now_us, self.BATCH)
        budget = self.PROMOTE_BATCH
        handled = 0
        for entry in entries:
            queue = txn.queue_by_storage_id(entry.storage_id)
            if queue is None or txn.counters(queue).next_promotion_us != entry.due_us:
                txn.forget_promotion(entry)  # a deleted queue's, or one replaced since
            elif budget > 0 and queue.storage_id not in change.promoted:
                before = txn.counters(queue).ready
                change.promoted.add(queue.storage_id)
                txn.promote(queue, now_us, budget)
                budget -= txn.counters(queue).ready - before
            else:
                break
            handled += 1
        return handled if budget > 0 else self.BATCH

    def _forget_hours(self, change: Change) -> int:
        now_us = self._clock.now_us()
        hours = change.txn.request_hours(now_us // HOUR_US - 1, self.HOURS_BATCH)
        for hour, storage_id in hours:
            change.txn.forget_hour(hour, storage_id)
        return len(hours)

    async def next_wakeup_us(self) -> int | None:
        def due(reader: Reader) -> int | None:
            candidates = [reader.next_expiry(), reader.next_promotion()]
            first_hour = reader.first_request_hour()
            if first_hour is not None:
                candidates.append(transitions.forget_after_us(first_hour * HOUR_US))
            known = [c for c in candidates if c is not None]
            return min(known) if known else None

        return await self._db.read(due)

