"""The core, assembled: the database, the operations, the dispatchers and the background loops.

app.py builds an Engine on a store factory and hands it to the API servicers; tests do the
same with a FakeClock and call the loops' run_once themselves.

The engine also listens to its database (store/database.py): committed changes wake the
queues' waiters, give streams their credit back and report what they did to `events`'
subscribers (core/events.py: metrics, an event log); a storage failure (a failed fsync, a full
disk) takes the engine out of service, ends every stream, reopens the database until that
works (RocksDB recovers from its write-ahead log) and puts it back in service.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence

from taskq.core.activity import Activity
from taskq.core.alarm import Alarm
from taskq.core.clock import Clock, SystemClock
from taskq.core.dispatch import Dispatchers
from taskq.core.errors import StorageUnavailable, TaskqError
from taskq.core.events import Event, Events
from taskq.core.janitor import Janitor
from taskq.core.limits import ServerLimits
from taskq.core.purger import Purger
from taskq.core.push import PushTasks
from taskq.core.queues import Queues
from taskq.core.reaper import Reaper
from taskq.core.tasks import Tasks
from taskq.core.wakeups import Wakeups
from taskq.store.base import Store, StoreError
from taskq.store.commit import CommitLoop
from taskq.store.database import Database, Durability
from taskq.store.disk import DiskSpace

log = logging.getLogger(__name__)

#: How often the disk's free space is compared with its reserve, seconds.
DISK_WATCH_S = 1.0
#: The leadership that runs the housekeeping on a shared database, and how often it is renewed.
HOUSEKEEPING = "housekeeping"
LEADER_RENEW_S = 1.5
#: After a storage failure, reopening is tried again after this long, doubling up to the max.
REOPEN_FIRST_DELAY_S = 0.2
REOPEN_MAX_DELAY_S = 30.0


class Engine:
    def __init__(
        self,
        open_store: Callable[[], Store] | None = None,
        *,
        database: Database | None = None,
        clock: Clock | None = None,
        limits: ServerLimits | None = None,
        durability: Durability = Durability.FSYNC,
        background: bool = True,
        on_serving: Callable[[bool], None] | None = None,
        space: DiskSpace | None = None,
    ) -> None:
        self.clock = clock or SystemClock()
        self.limits = limits or ServerLimits()
        self.wakeups = Wakeups(self.clock)
        self.activity = Activity(self.clock)
        #: Who hears what committed changes did: subscribe before start() to hear everything.
        self.events = Events()
        if database is None:
            assert open_store is not None, "an Engine needs a store factory or a database"
            database = CommitLoop(open_store, durability, space=space)
        database.listener = self
        #: The database; `exclusive` when this server is the only one on it (RocksDB), else
        #: housekeeping runs where leadership is held and push leases are left to expire.
        self.db = database
        self.reaper = Reaper(self.db, self.clock, Alarm(self.clock))
        self.janitor = Janitor(self.db, self.clock, Alarm(self.clock))
        self.purger = Purger(self.db, self.clock, Alarm(self.clock))
        self.tasks = Tasks(
            self.db, self.clock, self.limits, self.wakeups, self.activity, self.reaper.alarm,
        )
        self.queues = Queues(self.db, self.clock, self.wakeups, self.activity, self.purger)
        self.push = PushTasks(self.db, self.clock, self.limits, self.activity, self.reaper.alarm)
        self.dispatchers = Dispatchers(self.db, self.push, self.clock, self.wakeups)
        #: Whether the reaper, janitor and purger run on their own (tests may drive them).
        self._background = background
        self._on_serving = on_serving
        #: Why the engine is out of service ("storage" failed, "disk" below its reserve).
        self._unready: set[str] = set()
        self._disk_watch: asyncio.Task[None] | None = None
        self._recovery: asyncio.Task[None] | None = None
        self._leadership: asyncio.Task[None] | None = None
        #: Whether this server runs the housekeeping on a shared database.
        self.leading = False
        self._stopping = False
        self.page_token_key = b""

    async def start(self) -> None:
        """Opens the database, releases push leases left by the previous run (no stream
        survives a restart), and, unless disabled, starts the background loops."""
        await self.db.open()
        #: Signs page tokens (core/pagination.py); the same for every server on the database.
        self.page_token_key = await self.db.read(lambda reader: reader.page_token_key())
        if self.db.exclusive:
            await self._release_orphans()
        if self._background:
            if self.db.exclusive:
                self._start_housekeeping()
            else:
                self._leadership = asyncio.get_running_loop().create_task(self._lead(), name="taskq-leadership")
        if self.db.space is not None:
            self._disk_watch = asyncio.get_running_loop().create_task(self._watch_disk(), name="taskq-disk")

    def _start_housekeeping(self) -> None:
        self.reaper.start()
        self.janitor.start()
        self.purger.start()

    async def _stop_housekeeping(self) -> None:
        await self.reaper.stop()
        await self.janitor.stop()
        await self.purger.stop()

    async def _lead(self) -> None:
        """On a shared database: the reaper, janitor and purger run on one server at a time, the
        holder of the housekeeping leadership (renewed every LEADER_RENEW_S; another server
        takes over within the database's leadership TTL when the holder dies)."""
        while not self._stopping:
            try:
                held = await self.db.hold_leadership(HOUSEKEEPING)
            except TaskqError:
                held = False
            if held and not self.leading:
                log.info("this server leads the housekeeping (reaper, janitor, purger)")
                self.leading = True
                self._start_housekeeping()
            elif not held and self.leading:
                log.warning("this server no longer leads the housekeeping")
                self.leading = False
                await self._stop_housekeeping()
            await asyncio.sleep(LEADER_RENEW_S)

    async def _release_orphans(self) -> None:
        released = await self.push.recover()
        if released:
            log.info("released %d push tasks leased to streams of the previous run", released)

    async def close_streams(self) -> None:
        """Ends every push stream; their handlers release the tasks they held."""
        await self.dispatchers.close()

    async def stop(self) -> None:
        """Wakes every waiter, stops the loops, commits what is pending, closes the store."""
        self._stopping = True
        self.wakeups.close()
        await self.dispatchers.close()
        for task in (self._recovery, self._disk_watch, self._leadership):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        if self._background and (self.db.exclusive or self.leading):
            await self._stop_housekeeping()
        if self.leading:
            await self.db.resign(HOUSEKEEPING)
        await self.db.close()

    # What the database tells ---------------------------------------------------------------

    def woken(self, queue_ids: set[str]) -> None:
        for queue_id in queue_ids:
            self.wakeups.notify(queue_id)

    def leases_ended(self, ended: dict[str, list[tuple[str, str]]]) -> None:
        self.dispatchers.leases_ended(ended)

    def housekeeping_due(self, at_us: int) -> None:
        self.janitor.alarm.poke(at_us)

    @property
    def report_events(self) -> Callable[[Sequence[Event]], None] | None:
        return self.events.publish if self.events.wanted else None

    def storage_failed(self, reason: str) -> None:
        if self._recovery is None or self._recovery.done():
            self._recovery = asyncio.get_running_loop().create_task(self._recover(reason), name="taskq-recovery")

    def _ready(self, reason: str, ready: bool) -> None:
        """Marks one reason for being out of service as gone (or present); tells the owner when
        that changes whether the engine serves."""
        serving = not self._unready
        if ready:
            self._unready.discard(reason)
        else:
            self._unready.add(reason)
        if serving != (not self._unready) and self._on_serving is not None:
            self._on_serving(not self._unready)

    async def _watch_disk(self) -> None:
        """Out of service while the disk is below its reserve (creates are refused then)."""
        space = self.db.space
        assert space is not None
        while not self._stopping:
            low = space.low()
            if low != ("disk" in self._unready):
                if low:
                    log.error("the disk is below its reserve (%d MiB free, %d MiB kept): refusing new tasks",
                              space.free_bytes() // 2**20, space.reserve_bytes // 2**20)
                else:
                    log.warning("the disk has room again (%d MiB free): accepting new tasks",
                                space.free_bytes() // 2**20)
                self._ready("disk", not low)
            await asyncio.sleep(DISK_WATCH_S)

    async def _recover(self, reason: str) -> None:
        """Out of service until the database is open again; then releases the push leases of the
        streams it ended, and is back."""
        self._ready("storage", False)
        await self.dispatchers.close(StorageUnavailable(f"the storage failed: {reason}", retry_delay_seconds=1.0))
        delay = REOPEN_FIRST_DELAY_S
        while not self._stopping:
            try:
                await self.db.reopen()
                break
            except StoreError as error:
                log.error("reopening the database failed (trying again in %.1f s): %s", delay, error)
                await asyncio.sleep(delay)
                delay = min(delay * 2, REOPEN_MAX_DELAY_S)
        if self._stopping:
            return
        if self.db.exclusive:
            try:
                await self._release_orphans()
            except Exception:
                log.exception("releasing push leases after recovery failed; the reaper will retry them")
        self.purger.alarm.poke()
        self.reaper.alarm.poke()
        self.janitor.alarm.poke()
        self._ready("storage", True)
        log.warning("storage recovered; serving again")

    @property
    def serving(self) -> bool:
        return self.db.failed is None

    @property
    def in_service(self) -> bool:
        """Whether the server should be SERVING: the storage works and the disk is above its
        reserve (what health reports)."""
        return not self._unready
