"""The core, assembled: one object that owns the commit loop and the background loops.

app.py builds an Engine on a Store and hands it to the API servicers; tests do the same with
a FakeClock and call the loops' run_once themselves.
"""

from __future__ import annotations

import logging

from taskq.core.activity import Activity
from taskq.core.alarm import Alarm
from taskq.core.clock import Clock, SystemClock
from taskq.core.dispatch import Dispatchers
from taskq.core.janitor import Janitor
from taskq.core.limits import ServerLimits
from taskq.core.push import PushTasks
from taskq.core.queues import Queues
from taskq.core.reaper import Reaper
from taskq.core.tasks import Tasks
from taskq.core.wakeups import Wakeups
from taskq.store.base import Store
from taskq.store.commit import CommitLoop, Durability

log = logging.getLogger(__name__)


class Engine:
    def __init__(
        self,
        store: Store,
        *,
        clock: Clock | None = None,
        limits: ServerLimits | None = None,
        durability: Durability = Durability.FSYNC,
        background: bool = True,
    ) -> None:
        self.store = store
        self.clock = clock or SystemClock()
        self.limits = limits or ServerLimits()
        self.wakeups = Wakeups(self.clock)
        self.activity = Activity(self.clock)
        self.commits = CommitLoop(store, durability, wake=self.wakeups.notify)
        self.reaper = Reaper(store, self.commits, self.clock, Alarm(self.clock))
        self.janitor = Janitor(store, self.commits, self.clock, Alarm(self.clock))
        self.tasks = Tasks(
            store, self.commits, self.clock, self.limits, self.wakeups, self.activity,
            self.reaper.alarm, self.janitor.alarm,
        )
        self.queues = Queues(store, self.commits, self.clock, self.wakeups, self.activity)
        self.push = PushTasks(store, self.commits, self.clock, self.limits, self.activity, self.reaper.alarm)
        self.dispatchers = Dispatchers(store, self.push, self.clock, self.wakeups)
        #: Whether the reaper and janitor run on their own (tests may drive them by hand).
        self._background = background

    async def start(self) -> None:
        """Starts the commit loop, releases push leases left by the previous run (no stream
        survives a restart), and, unless disabled, starts the background loops."""
        self.commits.start()
        released = await self.push.recover()
        if released:
            log.info("released %d push tasks leased to streams of the previous run", released)
        if self._background:
            self.reaper.start()
            self.janitor.start()

    async def close_streams(self) -> None:
        """Ends every push stream; their handlers release the tasks they held."""
        await self.dispatchers.close()

    async def stop(self) -> None:
        """Wakes every waiter, stops the loops, commits what is pending, closes the store."""
        self.wakeups.close()
        await self.dispatchers.close()
        if self._background:
            await self.reaper.stop()
            await self.janitor.stop()
        await self.commits.stop()
        self.store.close()
