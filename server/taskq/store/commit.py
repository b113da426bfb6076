"""The single writer: the Database of engines that serialise writes in this process
(RocksDB, and the in-memory twin).

A caller hands the loop a *mutation* (a function that reads what it needs and records its
changes in a transaction, see store/database.py) and awaits the result. The loop runs the
mutations waiting at that moment one after another (each sees the writes of the ones before
it, so two leases of one task, or an ack crossing an expiry, cannot race), applies each as
one atomic write, then makes the whole group durable with one fsync of the write-ahead log,
and only then answers every caller and runs their after-commit hooks. An error raised by a
mutation fails only that mutation.

Which answers wait for an fsync. A durable write is answered once everything applied before
it is durable. A write run with `durable=False` (push deliveries: a delivery is not an answer
to a request, and a delivery lost in a crash is only delivered again) is answered as soon as it
is applied, unless a durable write applied earlier is still waiting for its fsync: a worker
must never receive a task whose creation could still be lost. A group of only non-durable
writes skips its fsync; the next durable group makes it durable, or, at the latest,
LAZY_SYNC_SECONDS later, a sync of its own. So a power loss (never a process crash: the WAL
is written before anything is answered) can roll back the deliveries of that window: the
tasks are delivered again and their attempt_count and first_attempt_time go back to what
they were, which can let a task be tried a few times more than max_attempts.

Where the fsync runs: handing it to a thread costs about 60 µs of CPU in thread switches
per group, more than a fast disk takes to sync. So while recent fsyncs have been fast
(`INLINE_FSYNC_BELOW_S`) the loop syncs inline; on a slow disk it syncs in a dedicated
thread and keeps serving meanwhile. Requests arriving during an inline fsync wait in gRPC's
queues and form the next group, so grouping works either way.

When the storage fails (a write or an fsync fails: a full disk, an I/O error) the loop stops
accepting writes: after a failed fsync the kernel may have dropped the unwritten pages
(fsyncgate), so nothing not yet durable may be answered OK. Every write waiting for that
fsync, and every write queued behind it, fails with UNAVAILABLE, and the listener hears of it;
the engine's owner then reopens the database (`reopen`), which recovers from what the log
holds on disk.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from taskq.core.errors import DiskFull, StorageUnavailable, TaskqError
from taskq.store.base import Reader, Store, StoreError
from taskq.store.database import Change, Durability, Listener, Mutation, Observer
from taskq.store.disk import DiskSpace

log = logging.getLogger(__name__)

T = TypeVar("T")

#: (future, result, error, hooks) of a mutation waiting for its group's fsync.
_Outcome = tuple["asyncio.Future[Any]", Any, "BaseException | None", list[Callable[[], None]]]


class CommitLoop:
    """Serialises mutations and commits them in durable groups."""

    #: This process is the only writer of its store (RocksDB holds a lock on the directory).
    exclusive = True
    #: Every change goes through this process, so signals are never missed: no polling.
    poll_interval_s: float | None = None

    #: The most mutations gathered into one durable group.
    MAX_GROUP = 4096
    #: Sync inline while the recent average fsync is shorter than this (seconds).
    INLINE_FSYNC_BELOW_S = 0.0005
    #: Non-durable writes are made durable at the latest this long after they were applied.
    LAZY_SYNC_SECONDS = 0.1

    def __init__(
        self,
        open_store: Callable[[], Store],
        durability: Durability = Durability.FSYNC,
        listener: Listener | None = None,
        space: DiskSpace | None = None,
    ) -> None:
        #: Opens the store (again, after a failure); replaceable by tests.
        self.open_store = open_store
        #: The data directory's disk, when the store has one.
        self.space = space
        self._durability = durability
        self.listener = listener
        self.observer: Observer | None = None
        self.store: Store | None = None
        self._pending: list[tuple[Mutation[Any], asyncio.Future[Any], bool]] = []
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._failed: str | None = None
        #: Writes applied and not yet fsynced: any, and any of a durable mutation.
        self._unsynced = False
        self.groups_committed = 0
        self.syncs = 0
        #: Moving average of fsync durations, seconds; starts on the threaded side.
        self._fsync_seconds = 0.001
        self._sync_thread: ThreadPoolExecutor | None = None

    @property
    def failed(self) -> str | None:
        return self._failed

    async def open(self) -> None:
        self.store = await asyncio.to_thread(self.open_store)
        self._task = asyncio.get_running_loop().create_task(self._run(), name="taskq-commit-loop")

    async def close(self) -> None:
        """Commits what is pending, then stops and closes the store."""
        self._stopping = True
        self._wakeup.set()
        if self._task is not None:
            await self._task
        if self._sync_thread is not None:
            self._sync_thread.shutdown(wait=True)
        if self.store is not None:
            self.store.close()

    async def reopen(self) -> None:
        """Closes the failed store and opens it again; raises StoreError if it cannot yet."""
        if self.store is not None:
            old, self.store = self.store, None
            await asyncio.to_thread(old.close)
            del old
        # A RocksDB handle stays open (its directory locked) while any iterator made on it lives;
        # a traceback of the failure that brought us here can hold one in a reference cycle.
        gc.collect()
        self.store = await asyncio.to_thread(self.open_store)
        self._unsynced = False
        self._failed = None
        log.warning("the database was reopened; writes are accepted again")

    async def hold_leadership(self, name: str) -> bool:
        return True  # the only server on its store leads everything

    async def resign(self, name: str) -> None:
        pass

    async def maintain(self) -> None:
        store = self.store
        if store is not None and self._failed is None:
            await asyncio.to_thread(store.maintain)

    async def backup(self, destination: str) -> None:
        # Off the event loop and off the writer: RocksDB's checkpoint runs beside writes.
        await asyncio.to_thread(self._usable().checkpoint, destination)

    async def size_bytes(self) -> int | None:
        try:
            return await asyncio.to_thread(self._usable().size_bytes)
        except StoreError as error:  # closed by a reopen meanwhile
            raise StorageUnavailable(f"the storage cannot be measured: {error}", retry_delay_seconds=1.0) from None

    # Reads and writes ---------------------------------------------------------------------

    async def read(self, fn: Callable[[Reader], T]) -> T:
        store = self._usable()
        try:
            return fn(store)
        except StoreError as error:
            reason = str(error)
        # Raised outside the except block: the new error must not keep the failed read's frames
        # (and the RocksDB iterators in them) alive as its context.
        self._fail(reason)
        raise StorageUnavailable(f"the storage failed: {reason}", retry_delay_seconds=1.0)

    async def write(self, mutation: Mutation[T], *, durable: bool = True, grows: bool = False) -> T:
        self._usable()
        if grows and self.space is not None and self.space.low():
            raise DiskFull(self.space.free_bytes(), self.space.reserve_bytes)
        if self._stopping:
            raise StorageUnavailable("the server is shutting down", retry_delay_seconds=1.0)
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._pending.append((mutation, future, durable))
        self._wakeup.set()
        return await future

    def _usable(self) -> Store:
        if self._failed is not None or self.store is None:
            raise StorageUnavailable(
                f"the storage failed and is being recovered: {self._failed or 'not open'}", retry_delay_seconds=1.0
            )
        return self.store

    # The loop -----------------------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            if self._unsynced and not self._pending and not self._stopping:
                try:
                    await asyncio.wait_for(self._wakeup.wait(), self.LAZY_SYNC_SECONDS)
                except TimeoutError:
                    await self._lazy_sync()
                    continue
            else:
                await self._wakeup.wait()
            self._wakeup.clear()
            while self._pending:
                group, self._pending = self._pending[: self.MAX_GROUP], self._pending[self.MAX_GROUP :]
                if self._failed is not None:
                    self._fail_all([future for _, future, _ in group], None)
                    continue
                await self._commit(group)
            if self._stopping and not self._pending:
                if self._unsynced and self._failed is None:
                    await self._lazy_sync()
                return

    async def _lazy_sync(self) -> None:
        """Makes non-durable writes durable when no durable group came along to do it."""
        if self._failed is not None or not self._unsynced:
            return
        if self._durability is Durability.FSYNC:
            try:
                await self._sync()
            except StoreError as error:
                self._fail(str(error))
                return
        self._unsynced = False

    async def _commit(self, group: list[tuple[Mutation[Any], asyncio.Future[Any], bool]]) -> None:
        store = self.store
        assert store is not None
        waiting: list[_Outcome] = []
        woken: set[str] = set()
        ended: dict[str, list[tuple[str, str]]] = {}
        due_us: int | None = None
        durable_pending = False  # a durable mutation's writes are applied, not yet synced
        report = self.listener.report_events if self.listener is not None else None
        ran = 0
        for index, (mutation, future, durable) in enumerate(group):
            if future.cancelled():
                # The caller went away before its turn: nothing was promised, nothing is done.
                continue
            ran += 1
            txn = store.begin()
            change = Change(txn, report)
            try:
                result = mutation(change)
                store.apply(txn)
            except TaskqError as error:
                store.discard(txn)
                waiting.append((future, None, error, []))
                continue
            except StoreError as error:
                store.discard(txn)
                later = [entry[1] for entry in group[index + 1 :]]
                self._fail(str(error), [future, *(outcome[0] for outcome in waiting), *later])
                return
            except Exception as error:  # a bug: fail this caller, keep serving the others
                store.discard(txn)
                log.exception("a mutation raised")
                waiting.append((future, None, error, []))
                continue
            woken |= change.woken
            if change.due_us is not None and (due_us is None or change.due_us < due_us):
                due_us = change.due_us
            for queue_id, leases in change.ended.items():
                ended.setdefault(queue_id, []).extend(leases)
            wrote = txn.written() and self._durability is Durability.FSYNC
            if wrote:
                self._unsynced = True
            if durable:
                durable_pending = durable_pending or wrote
                waiting.append((future, result, None, change.after_commit))
            elif durable_pending:
                # A delivery must not reach a worker before the writes it may depend on (the
                # task's creation, a retry) are durable: it waits for the fsync too.
                waiting.append((future, result, None, change.after_commit))
            else:
                self._settle(future, result, None, change.after_commit)
        needs_sync = self._unsynced and any(error is None for _, _, error, _ in waiting)
        if needs_sync and self._durability is Durability.FSYNC:
            try:
                await self._sync()
            except StoreError as error:
                self._fail(str(error), [outcome[0] for outcome in waiting])
                return
        if needs_sync:
            self._unsynced = False
        self.groups_committed += 1
        if self.observer is not None:
            self.observer.group_committed(ran)
        if self.listener is not None:
            if woken:
                self.listener.woken(woken)
            if ended:
                self.listener.leases_ended(ended)
            if due_us is not None:
                self.listener.housekeeping_due(due_us)
        for future, result, failure, hooks in waiting:
            self._settle(future, result, failure, hooks)

    def _fail(self, reason: str, futures: list[asyncio.Future[Any]] | None = None) -> None:
        """Storage failure: nothing more is written or answered OK until `reopen`."""
        first = self._failed is None
        if first:
            self._failed = reason
            log.critical("the storage failed; refusing writes until the database is reopened: %s", reason)
        pending = [future for _, future, _ in self._pending]
        self._pending = []
        self._fail_all([*(futures or []), *pending], reason)
        if first and self.listener is not None:
            self.listener.storage_failed(reason)

    def _fail_all(self, futures: list[asyncio.Future[Any]], reason: str | None) -> None:
        failure = StorageUnavailable(
            f"the write could not be made durable: {reason or self._failed}", retry_delay_seconds=1.0
        )
        for future in futures:
            if not future.done():
                future.set_exception(failure)

    @staticmethod
    def _settle(
        future: asyncio.Future[Any], result: Any, error: BaseException | None, hooks: list[Callable[[], None]]
    ) -> None:
        if error is None:
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
        self.syncs += 1
        if self._fsync_seconds < self.INLINE_FSYNC_BELOW_S:
            seconds = self._timed_sync()
        else:
            if self._sync_thread is None:
                self._sync_thread = ThreadPoolExecutor(1, thread_name_prefix="taskq-fsync")
            seconds = await asyncio.get_running_loop().run_in_executor(self._sync_thread, self._timed_sync)
        self._fsync_seconds = 0.8 * self._fsync_seconds + 0.2 * seconds
        if self.observer is not None:
            self.observer.synced(seconds)

    def _timed_sync(self) -> float:
        started = time.perf_counter()
        assert self.store is not None
        self.store.sync()
        return time.perf_counter() - started
