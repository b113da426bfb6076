"""The purger: deletes the tasks of purged queues, in the background, to the end.

PurgeQueue only records the purge (the queue's purge_time, and `purging`); from that moment
core/transitions.py treats every task created before it as gone. The purger then walks the
queue's tasks in id order and deletes those, a bounded chunk per durable commit, reading no
payloads, until none is left, and clears `purging`. It works whatever happens to the call
that asked for the purge, and after a restart it starts again on every queue still purging.
"""

from __future__ import annotations

import asyncio
import logging

from taskq.core import transitions
from taskq.core.alarm import Alarm
from taskq.core.clock import Clock
from taskq.core.events import QueueEvent, record_queue_event
from taskq.core.loop import BackgroundLoop
from taskq.core.model import Queue
from taskq.store.database import Change, Database

log = logging.getLogger(__name__)


class Purger(BackgroundLoop):
    #: Tasks examined per durable commit (deleted or kept).
    CHUNK = 1000

    def __init__(self, db: Database, clock: Clock, alarm: Alarm) -> None:
        super().__init__("purger", clock, alarm)
        self._db = db
        #: (storage id, purge time) -> the task id the purge has reached.
        self._cursors: dict[tuple[int, int], str] = {}
        #: (storage id, purge time) -> callers waiting for that purge to finish.
        self._waiters: dict[tuple[int, int], list[asyncio.Future[None]]] = {}

    async def finished(self, queue: Queue) -> None:
        """Waits until the purge recorded on `queue` (its purge_time) is finished."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault((queue.storage_id, queue.purge_time_us), []).append(future)
        self.alarm.poke()
        try:
            if self._task is None:
                # Not running on its own (tests drive the loops): the caller drives it.
                while not future.done():
                    await self.run_once()
            await future
        finally:
            waiting = self._waiters.get((queue.storage_id, queue.purge_time_us), [])
            if future in waiting:
                waiting.remove(future)

    async def run_once(self) -> int:
        """One chunk of every unfinished purge; returns how many tasks it examined."""
        queues = await self._db.read(lambda reader: reader.purging_queues())
        examined = 0
        live = set()
        for queue in queues:
            key = (queue.storage_id, queue.purge_time_us)
            live.add(key)
            after = self._cursors.get(key, "")
            def chunk(change: Change, queue: Queue = queue, after: str = after) -> tuple[int, str, bool]:
                return self._chunk(change, queue, after)

            count, last, done = await self._db.write(chunk)
            examined += count
            if done:
                self._cursors.pop(key, None)
                live.discard(key)
            else:
                self._cursors[key] = last
        # Waiters of purges that are finished (or were superseded, or whose queue went away).
        for key in [key for key in self._waiters if key not in live]:
            for future in self._waiters.pop(key):
                if not future.done():
                    future.set_result(None)
        for key in [key for key in self._cursors if key not in live]:
            del self._cursors[key]
        self.more = bool(live)
        return examined

    def _chunk(self, change: Change, queue: Queue, after: str) -> tuple[int, str, bool]:
        """Deletes the purged tasks among the next CHUNK after `after`; clears `purging` when
        it reaches the end. Returns (examined, last id, finished)."""
        txn = change.txn
        current = txn.queue(queue.queue_id)
        if current is None or current.storage_id != queue.storage_id or current.purge_time_us != queue.purge_time_us:
            return 0, "", True  # deleted, or purged again (that purge has its own walk)
        now_us = self._clock.now_us()
        examined = 0
        last = after
        for task in txn.tasks(current, after, payloads=False):
            if transitions.purged(current, task):
                transitions.purge(change, current, task, now_us)
            examined += 1
            last = task.task_id
            if examined >= self.CHUNK:
                return examined, last, False
        if current.purging:  # (two passes can reach the end of one purge)
            record_queue_event(change, QueueEvent.PURGE_FINISHED, current.queue_id, now_us)
        current.purging = False
        txn.put_queue(current)
        change.wake(current.queue_id)
        return examined, last, True

    async def next_wakeup_us(self) -> int | None:
        return None  # woken by PurgeQueue (and at start); `more` keeps it going until done
