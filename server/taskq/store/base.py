"""The storage interface: what taskq needs from a storage engine, and nothing more.

An engine persists queues, tasks, their indexes, name tombstones, request ids and per-queue
counters. It makes no queue decisions: core/ decides what a task becomes, the store records
it and keeps the indexes and counters consistent with it in the same atomic write.

Writes are gathered in a `Txn` and made visible by `Store.apply` (atomically: all of a
transaction or none of it). `Store.sync` makes everything applied so far durable. Only one
writer (store/commit.py) calls `begin`/`apply`/`sync`; reads may happen at any time from the
same thread and see every applied transaction.

tests/store/test_store_conformance.py states this contract as tests; every engine must pass it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

from taskq.core.model import Counters, Expiry, LeaseEntry, Queue, RequestRecord, Task


class StoreError(Exception):
    """The engine failed (I/O error, corruption, closed database). Not the caller's fault."""


class StoreLocked(StoreError):
    """Another process holds the data directory."""


class Txn(Protocol):
    """Changes to apply together. Reads made while building it do not see its own writes."""

    def put_queue(self, queue: Queue) -> None:
        """Creates or replaces a queue's configuration. A queue whose `storage_id` is 0 is new:
        the store assigns it a fresh storage id (visible on the object at once)."""
        ...

    def delete_queue(self, queue: Queue) -> None:
        """Deletes the queue with all its tasks, leases, tombstones, request ids and counters.
        Entries of the global expiry index stay until delete_expiry removes them."""
        ...

    def put_task(self, queue: Queue, task: Task, previous: Task | None) -> None:
        """Stores `task` (new when `previous` is None, else replacing `previous`, which must be
        the task as currently stored). Moves it between indexes by its stage and updates the
        queue's counters: WAITING tasks are indexed by schedule time (and, in pull queues, by
        tag and schedule time), LEASED ones by lease expiry, FAILED ones by retain_until_us."""
        ...

    def delete_task(self, queue: Queue, task: Task) -> None:
        """Deletes the stored `task` and its index entries; updates the counters."""
        ...

    def put_tombstone(self, queue: Queue, task_id: str, expire_us: int) -> None:
        """Reserves a finished task's name until `expire_us` (replacing an older reservation)."""
        ...

    def put_request(self, queue: Queue, request_id: str, record: RequestRecord) -> None:
        """Remembers what a create with `request_id` made (at record.create_time_us)."""
        ...

    def forget_requests(self, queue: Queue, now_us: int) -> None:
        """Forgets request ids that `request` no longer returns at `now_us` (cheap to repeat)."""
        ...

    def delete_expiry(self, entry: Expiry) -> None:
        """Removes an expiry-index entry and, when it still names the stored tombstone with the
        same expiry, that tombstone. (FAILED tasks are removed with delete_task.)"""
        ...

    def forget_lease(self, entry: LeaseEntry) -> None:
        """Deletes a lease-index entry that names no leased task (an inconsistency the reaper
        cleans up rather than trips over forever)."""
        ...

    def promote(self, queue: Queue, until_us: int) -> int:
        """Counts waiting tasks with schedule times up to `until_us` as ready from now on;
        returns how many moved from scheduled to ready. It counts what the store holds, not
        this transaction's own writes: call it before any other write to the queue's waiting
        tasks in the same transaction."""
        ...


class Store(Protocol):
    """A storage engine. See the module docstring for the threading and durability contract."""

    # Queues -------------------------------------------------------------------------------

    def queue(self, queue_id: str) -> Queue | None:
        """The queue, or None. Returns a copy: changing it changes nothing stored."""
        ...

    def queue_by_storage_id(self, storage_id: int) -> Queue | None:
        """The live queue with that storage id, or None (deleted queue)."""
        ...

    def queues(self, after: str, limit: int) -> list[Queue]:
        """Up to `limit` queues whose id sorts after `after`, in id order."""
        ...

    # Tasks --------------------------------------------------------------------------------

    def task(self, queue: Queue, task_id: str) -> Task | None:
        """The stored task, or None."""
        ...

    def tasks(self, queue: Queue, after: str, limit: int) -> list[Task]:
        """Up to `limit` tasks whose id sorts after `after`, in id order."""
        ...

    def waiting(self, queue: Queue, until_us: int, tag: str | None = None) -> Iterator[Task]:
        """WAITING tasks with schedule_time_us <= until_us, oldest schedule time first (ties in
        task id order). With `tag`, only tasks with that tag ("" selects untagged tasks); only
        pull queues keep a tag index, so on a push queue the result with a tag is unspecified.
        Consume it before the next write."""
        ...

    def oldest_waiting(self, queue: Queue) -> tuple[int, str] | None:
        """(schedule_time_us, tag) of the WAITING task with the earliest schedule time."""
        ...

    def first_scheduled(self, queue: Queue) -> int | None:
        """The earliest schedule time of the waiting tasks still counted as scheduled (those
        after the counters' promoted_through_us), or None."""
        ...

    def expired_leases(self, until_us: int, limit: int) -> list[LeaseEntry]:
        """Up to `limit` lease-index entries expiring at or before `until_us`, earliest first,
        across all live queues."""
        ...

    def leases(self, queue: Queue, limit: int) -> list[LeaseEntry]:
        """Up to `limit` of the queue's LEASED tasks, earliest lease expiry first."""
        ...

    def next_lease_expiry(self) -> int | None:
        """The earliest lease expiry in the index, or None."""
        ...

    def expiries(self, until_us: int, limit: int) -> list[Expiry]:
        """Up to `limit` expiry-index entries due at or before `until_us`, earliest first."""
        ...

    def next_expiry(self) -> int | None:
        """The earliest entry of the expiry index, or None."""
        ...

    def tombstone(self, queue: Queue, task_id: str) -> int | None:
        """Until when the name is reserved, or None (expired reservations may still show)."""
        ...

    def request(self, queue: Queue, request_id: str, now_us: int) -> RequestRecord | None:
        """What a create with this request id made, if it was made at most an hour before
        `now_us` (older ones may be returned until forget_requests removes them, up to two
        hours after)."""
        ...

    def counters(self, queue: Queue) -> Counters:
        """The queue's counters (a copy), as of the last applied transaction."""
        ...

    # Writes -------------------------------------------------------------------------------

    def begin(self) -> Txn:
        """A new, empty transaction."""
        ...

    def apply(self, txn: Txn) -> None:
        """Applies the transaction atomically; later reads see it. Raises StoreError on
        failure, in which case nothing of it is visible."""
        ...

    def sync(self) -> None:
        """Blocks until everything applied so far is durable. Safe to call from another thread
        while the owning thread reads."""
        ...

    def maintain(self) -> None:
        """Housekeeping that may take a while (e.g. compacting consumed index ranges). Safe to
        call from another thread."""
        ...

    def close(self) -> None:
        """Releases the engine. Nothing may be called afterwards."""
        ...
