"""The seam between core/ and an engine: how core reads and how it changes things.

Core never holds a store. It asks a `Database` to run a function: `read(fn)` gives `fn` a
Reader of committed state; `write(mutation)` gives the mutation a `Change` (a transaction to
read and write, plus what to do after the commit) and returns the mutation's result once
its writes are committed and durable. How that is achieved is the engine's business:

- RocksDB (store/commit.py): one writer applies mutations in turn, groups them, fsyncs each
  group once. Mutations never race, because they never run at the same time.
- PostgreSQL (store/postgres/): each mutation runs in its own transaction with row locks on
  a pooled connection, concurrently with others (in this server or another), and is run again
  from the start when the database reports a serialization failure or a deadlock.

So a mutation must be a plain function of the Change: it may run more than once, and only
its Change's hooks (`on_commit`, `wake`, `lease_ended`, `record`) may act on the world, after the
commit.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from taskq.store.base import Reader, Txn
from taskq.store.disk import DiskSpace

T = TypeVar("T")


class Durability(enum.Enum):
    """What an answered write survives.

    fsync   (default) the write is durable before it is answered: it survives kill -9 and
            power loss.
    nosync  the write reached the operating system before it is answered (RocksDB: the WAL is
            written but not fsynced): it survives kill -9 but may be lost if the machine loses
            power. Faster; never the default.
    """

    FSYNC = "fsync"
    NOSYNC = "nosync"


class Change:
    """A mutation's handle: the transaction, and what to do once it is committed."""

    __slots__ = ("txn", "after_commit", "woken", "ended", "promoted", "due_us", "report", "events")

    def __init__(self, txn: Txn, report: Callable[[list[Any]], None] | None = None) -> None:
        self.txn = txn
        #: Hears the events this change records, once it is committed (the listener's
        #: `report_events`); None when nobody listens, and then nothing is recorded.
        self.report = report
        #: What the change did (core/events.py Events), in order; None until one is recorded.
        self.events: list[Any] | None = None
        #: Storage ids of queues whose counters this change has promoted (once per change:
        #: see Txn.promote).
        self.promoted: set[int] = set()
        #: The earliest moment something this change wrote falls due for housekeeping (a
        #: tombstone or FAILED task expiring, a scheduled task to count as ready, an hour of
        #: request ids to forget), or None.
        self.due_us: int | None = None
        self.after_commit: list[Callable[[], None]] = []
        self.woken: set[str] = set()
        #: queue id -> (task id, lease token) of the leases this change ended (acknowledged,
        #: failed, released, expired, deleted).
        self.ended: dict[str, list[tuple[str, str]]] = {}

    def on_commit(self, hook: Callable[[], None]) -> None:
        """Runs `hook` after the commit (not if the change is abandoned)."""
        self.after_commit.append(hook)

    def wake(self, queue_id: str) -> None:
        """After the commit, signal the queue's waiters (long polls, dispatchers)."""
        self.woken.add(queue_id)

    def housekeeping_due(self, at_us: int) -> None:
        """After the commit, tell the housekeeping that something falls due at `at_us`."""
        if self.due_us is None or at_us < self.due_us:
            self.due_us = at_us

    def lease_ended(self, queue_id: str, task_id: str, lease_token: str) -> None:
        """After the commit, tell whoever tracks the lease (a push stream) that it ended."""
        self.ended.setdefault(queue_id, []).append((task_id, lease_token))

    def record(self, event: Any) -> None:
        """After the commit, report `event` (a core/events.py Event) with the change's others,
        by one after-commit hook. Callers skip building the event when `report` is None."""
        events = self.events
        if events is None:
            report = self.report
            if report is None:
                return
            events = self.events = []
            self.after_commit.append(lambda: report(events))
        events.append(event)


Mutation = Callable[[Change], T]


class Listener(Protocol):
    """What the engine's owner wants to hear from the database."""

    def woken(self, queue_ids: set[str]) -> None:
        """Committed changes concern these queues."""
        ...

    def leases_ended(self, ended: dict[str, list[tuple[str, str]]]) -> None:
        """Committed changes ended these leases (queue id -> (task id, lease token))."""
        ...

    def housekeeping_due(self, at_us: int) -> None:
        """Committed changes wrote something that falls due for housekeeping at `at_us`."""
        ...

    def storage_failed(self, reason: str) -> None:
        """The storage failed: nothing more can be written until `Database.reopen` succeeds."""
        ...

    @property
    def report_events(self) -> Callable[[list[Any]], None] | None:
        """Hears the events of each committed change (given to each Change; see
        Change.record), or None when nobody wants them."""
        ...


class Observer(Protocol):
    """Who measures the database's work (taskq/metrics). Called on the event loop; each engine
    calls the methods of its own kind."""

    def group_committed(self, mutations: int) -> None:
        """Single writer: a group of `mutations` mutations was applied (and synced if needed)."""
        ...

    def synced(self, seconds: float) -> None:
        """Single writer: an fsync of the write-ahead log took `seconds`."""
        ...

    def transaction_committed(self, seconds: float, attempts: int) -> None:
        """Concurrent engine: a mutation's transaction committed after `seconds` (from its
        first start), in `attempts` runs (more than 1 after conflicts)."""
        ...


class Database(Protocol):
    #: Whether this server is the only one on the database (it may release every push lease at
    #: start-up, and runs the housekeeping without leadership).
    exclusive: bool
    #: Waiters look again at least this often (seconds) even without a signal: where signals
    #: from other servers can be missed. None: only signals and due times wake them.
    poll_interval_s: float | None
    #: Who hears of commits and failures (the engine sets itself).
    listener: Listener | None
    #: Who measures commits (metrics), if anyone.
    observer: Observer | None
    #: The local disk's free space, where the engine should watch it (store/disk.py).
    space: DiskSpace | None

    async def open(self) -> None:
        """Opens the store and starts whatever runs the writes."""
        ...

    async def read(self, fn: Callable[[Reader], T]) -> T:
        """Runs `fn` on a Reader of committed state. Raises StorageUnavailable when the
        storage has failed."""
        ...

    async def write(self, mutation: Mutation[T], *, durable: bool = True, grows: bool = False) -> T:
        """Runs `mutation` atomically; returns its result once committed (and, when
        `durable`, durable per the durability mode). A TaskqError raised by the mutation
        abandons its writes and reaches the caller; a storage failure raises
        StorageUnavailable. A mutation that `grows` the data (creates) is refused with
        DiskFull while the disk is below its reserve (store/disk.py)."""
        ...

    async def maintain(self) -> None:
        """Housekeeping that may take a while (compactions), off the event loop."""
        ...

    async def backup(self, destination: str) -> None:
        """Writes a consistent copy of everything committed so far into the new directory
        `destination`, while writes go on. Raises BackupNotSupported where the engine has no
        such copy, BackupFailed when the destination cannot be written."""
        ...

    async def size_bytes(self) -> int | None:
        """The bytes the data takes (Store.size_bytes), off the event loop; None where the
        engine has nothing to measure. Raises StorageUnavailable when the storage has failed."""
        ...

    async def reopen(self) -> None:
        """After a storage failure: closes and opens the store again (recovering from its
        log). Raises StoreError if it cannot yet."""
        ...

    async def close(self) -> None:
        """Commits what is pending, then closes the store."""
        ...

    async def hold_leadership(self, name: str) -> bool:
        """Takes or renews the leadership `name` for a while; whether this server holds it."""
        ...

    async def resign(self, name: str) -> None:
        """Gives up the leadership `name`, if held."""
        ...

    @property
    def failed(self) -> str | None:
        """Why the storage failed, while it is failed; else None."""
        ...
