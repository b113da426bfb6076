"""The single writer: every change to the store goes through one CommitLoop.

A caller hands the loop a *mutation*, a function that reads what it needs from the store and
records its changes in a transaction, and awaits the result. The loop runs the mutations
waiting at that moment one after another (each sees the writes of the ones before it, so
two leases of one task, or an ack crossing an expiry, cannot race), applies each as one
atomic write, then makes the whole group durable with one fsync of the write-ahead log in a
worker thread (the event loop keeps serving meanwhile), and only then answers every caller
and runs their after-commit hooks. An error raised by a mutation fails only that mutation.

Durability modes:
  fsync   (default) an answered write is in the fsynced WAL: it survives kill -9 and power loss.
  nosync  the WAL is written but not fsynced: an answered write survives kill -9 (the OS has
          it) but may be lost if the machine loses power. Faster; never the default.

Where the fsync runs: handing it to a thread costs about 60 µs of CPU in thread switches
per group, more than a fast disk takes to sync. So while recent fsyncs have been fast
(`INLINE_FSYNC_BELOW_S`) the loop syncs inline; on a slow disk it syncs in a dedicated
thread and keeps serving meanwhile. Requests arriving during an inline fsync wait in gRPC's
queues and form the next group, so grouping works either way.

A mutation run with `durable=False` is answered as soon as it is applied, before its
group's fsync. Push dispatch uses it: a delivery is not an answer to a request, and a lease
lost in a crash only means the task is delivered again (at least once, as always).
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from taskq.core.errors import StorageUnavailable, TaskqError
from taskq.store.base import Store, StoreError, Txn

log = logging.getLogger(__name__)

T = TypeVar("T")


class Durability(enum.Enum):
    FSYNC = "fsync"
    NOSYNC = "nosync"


class Committed:
    """A mutation's handle: the store to read, the transaction to write, and what to do once
    the writes are durable (hooks, and queues whose waiters should look again)."""

    def __init__(self, store: Store, txn: Txn) -> None:
        self.store = store
        self.txn = txn
        self.after_commit: list[Callable[[], None]] = []
        self.woken: set[str] = set()

    def on_commit(self, hook: Callable[[], None]) -> None:
        self.after_commit.append(hook)

    def wake(self, queue_id: str) -> None:
        """After the commit, signal the queue's waiters (long polls, dispatchers)."""
        self.woken.add(queue_id)


Mutation = Callable[[Committed], T]


class CommitLoop:
    """Serialises mutations and commits them in durable groups."""

    #: The most mutations gathered into one durable group.
    MAX_GROUP = 4096
    #: Sync inline while the recent average fsync is shorter than this (seconds).
    INLINE_FSYNC_BELOW_S = 0.0005

    def __init__(
        self,
        store: Store,
        durability: Durability = Durability.FSYNC,
        wake: Callable[[str], None] | None = None,
    ) -> None:
        self._store = store
        self._durability = durability
        self._wake = wake
        self._pending: list[tuple[Mutation[Any], asyncio.Future[Any], bool]] = []
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        #: Set when an fsync failed: what the WAL holds is unknown, so no write is accepted again.
        self._broken: str | None = None
        self.groups_committed = 0
        #: Moving average of fsync durations, seconds; starts on the threaded side.
        self._fsync_seconds = 0.001
        self._sync_thread: ThreadPoolExecutor | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="taskq-commit-loop")

    async def stop(self) -> None:
        """Commits what is pending, then stops."""
        self._stopping = True
        self._wakeup.set()
        if self._task is not None:
            await self._task
        if self._sync_thread is not None:
            self._sync_thread.shutdown(wait=True)

    async def run(self, mutation: Mutation[T], *, durable: bool = True) -> T:
        """Runs `mutation` in the writer; returns its result once its writes are durable (or,
        with durable=False, once they are applied: see the module docstring)."""
        if self._broken is not None:
            raise StorageUnavailable(f"storage failed and accepts no writes: {self._broken}")
        if self._stopping:
            raise StorageUnavailable("the server is shutting down", retry_delay_seconds=1.0)
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._pending.append((mutation, future, durable))
        self._wakeup.set()
        return await future

    async def _run(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._pending:
                group, self._pending = self._pending[: self.MAX_GROUP], self._pending[self.MAX_GROUP :]
                await self._commit(group)
            if self._stopping and not self._pending:
                return

    async def _commit(self, group: list[tuple[Mutation[Any], asyncio.Future[Any], bool]]) -> None:
        outcomes: list[tuple[asyncio.Future[Any], Any, BaseException | None, list[Callable[[], None]]]] = []
        woken: set[str] = set()
        wrote = False  # a durable mutation wrote: the group needs its fsync
        for mutation, future, durable in group:
            if future.cancelled():
                # The caller went away before its turn: nothing was promised, nothing is done.
                continue
            committed = Committed(self._store, self._store.begin())
            try:
                result = mutation(committed)
                self._store.apply(committed.txn)
            except TaskqError as error:
                outcomes.append((future, None, error, []))
                continue
            except StoreError as error:
                log.error("a write failed: %s", error)
                outcomes.append((future, None, StorageUnavailable(f"the write failed: {error}"), []))
                continue
            except Exception as error:  # a bug: fail this caller, keep serving the others
                log.exception("a mutation raised")
                outcomes.append((future, None, error, []))
                continue
            woken |= committed.woken
            if durable:
                wrote = True
                outcomes.append((future, result, None, committed.after_commit))
            else:
                # Answered now; made durable by the next group that fsyncs (a group of only
                # such writes skips the fsync: nothing in it was promised).
                self._settle(future, result, None, committed.after_commit)
        if wrote and self._durability is Durability.FSYNC:
            try:
                await self._sync()
            except StoreError as error:
                # After a failed fsync the kernel may have dropped the dirty pages: nothing in
                # this group can be promised durable, and later writes could not be either.
                self._broken = str(error)
                log.critical("fsync failed; refusing all further writes: %s", error)
                failure = StorageUnavailable(f"the write could not be made durable: {error}")
                for future, _, _, _ in outcomes:
                    if not future.done():
                        future.set_exception(failure)
                return
        self.groups_committed += 1
        if self._wake is not None:
            for queue_id in woken:
                self._wake(queue_id)
        for future, result, error, hooks in outcomes:
            self._settle(future, result, error, hooks)

    @staticmethod
    def _settle(
        future: asyncio.Future[Any], result: Any, error: BaseException | None, hooks: list[Callable[[], None]]
    ) -> None:
        for hook in hooks:
            try:
                hook()
            except Exception:
                log.exception("an after-commit hook raised")
        if future.done():
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)

    async def _sync(self) -> None:
        """fsyncs the WAL, inline or in the sync thread (see the module docstring)."""
        if self._fsync_seconds < self.INLINE_FSYNC_BELOW_S:
            seconds = self._timed_sync()
        else:
            if self._sync_thread is None:
                self._sync_thread = ThreadPoolExecutor(1, thread_name_prefix="taskq-fsync")
            seconds = await asyncio.get_running_loop().run_in_executor(self._sync_thread, self._timed_sync)
        self._fsync_seconds = 0.8 * self._fsync_seconds + 0.2 * seconds

    def _timed_sync(self) -> float:
        started = time.perf_counter()
        self._store.sync()
        return time.perf_counter() - started
