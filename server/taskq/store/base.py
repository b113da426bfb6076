"""The storage interface: what taskq needs from a storage engine, and nothing more.

An engine persists queues, tasks, their indexes, name tombstones, request ids, recent
acknowledgements and per-queue counters. It makes no queue decisions: core/ decides what a
task becomes (core/transitions.py), the engine records it and keeps the indexes and counters
consistent with it in the same atomic write.

Three protocols:

- `Reader`: every read. A `Store` is one (reads of committed state), and so is a `Txn`.
- `Txn`: one atomic change. Its point reads (`queue`, `task`, `tombstone`, `request`,
  `acked`, `counters`, `bucket`) see its own writes; its scans (`tasks`, `waiting`, the
  due-time indexes) may or may not, so core never scans what it wrote in the same
  transaction. `Store.apply` makes all of it visible at once, or none of it.
- `Store`: the engine. `begin`/`apply` run transactions, `sync` makes what was applied
  durable. How transactions are serialised is the engine's business: the RocksDB engine has
  one writer (store/commit.py) that applies them in turn; PostgreSQL runs them concurrently,
  locking the rows a transaction's decisions rest on, and may fail one at `apply` with a
  ConflictError, after which it is run again.

Counting ready and scheduled tasks is the engine's business too: RocksDB and the in-memory
twin keep a boundary position in the counters (Counters.promoted_through_*, engine-specific);
PostgreSQL a flag per task. What all promise: the four counts always equal a recount of the
tasks; a waiting task due by a transaction's promote of its queue, and every waiting task
written after it in that transaction if due by then, counts as ready; `next_promotion_us` is
no later than the next time a task needs promoting. A transaction reads queue configurations
as they are when it reads them (they are not locked); it locks what a decision on a task
rests on.

tests/store/test_store_*.py state this contract as tests (the conformance suite); every engine
passes it.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from typing import Protocol

from taskq.core.model import (
    Counters,
    Expiry,
    LeaseEntry,
    Promotion,
    Queue,
    RequestRecord,
    Task,
    TokenState,
)


class StoreError(Exception):
    """The engine failed (I/O error, full disk, corruption, closed database). Not the
    caller's fault; the database may have to be reopened (see store/commit.py)."""


class StoreLocked(StoreError):
    """Another process holds the data directory."""


class ConflictError(StoreError):
    """The transaction lost a race with another one (a serialization failure, a deadlock, a
    name created twice, a row changed or deleted since it was read, a queue deleted meanwhile);
    nothing of it was applied. Running its mutation again from the start sees the winner. Only
    engines with concurrent writers raise it (store/postgres/)."""


class Reader(Protocol):
    """Reads. Each returns copies: changing a returned object changes nothing stored."""

    # Queues -------------------------------------------------------------------------------

    def queue(self, queue_id: str) -> Queue | None:
        """The queue, or None."""
        ...

    def queue_by_storage_id(self, storage_id: int) -> Queue | None:
        """The live queue with that storage id, or None (a deleted queue)."""
        ...

    def queues(self, after: str, limit: int) -> list[Queue]:
        """Up to `limit` queues whose id sorts after `after`, in id order."""
        ...

    def purging_queues(self) -> list[Queue]:
        """The queues whose purge is recorded but not finished (Queue.purging)."""
        ...

    def dead_letter_referrers(self, queue_id: str) -> list[str]:
        """Ids of the queues that name `queue_id` as their dead-letter queue, in id order."""
        ...

    # Tasks --------------------------------------------------------------------------------

    def task(self, queue: Queue, task_id: str) -> Task | None:
        """The stored task, or None."""
        ...

    def tasks(self, queue: Queue, after: str, *, payloads: bool = True) -> Iterator[Task]:
        """The queue's tasks whose id sorts after `after`, in id order, read as the iterator
        advances (a caller that stops early reads no more). Without `payloads` the tasks come
        with empty payloads, which may save the engine reading or decoding them."""
        ...

    def waiting(self, queue: Queue, until_us: int, tag: str | None = None, limit: int = 1000) -> Iterator[Task]:
        """Up to `limit` WAITING tasks with schedule_time_us <= until_us, oldest schedule time
        first (ties in task id order), read as the iterator advances. With `tag`, only tasks
        with that tag ("" selects untagged tasks); only pull queues keep a tag index, so on a
        push queue the result with a tag is unspecified. Inside a transaction the engine may
        lock what it returns against other transactions (skipping what they hold)."""
        ...

    def oldest_waiting(self, queue: Queue) -> tuple[int, str] | None:
        """(schedule_time_us, tag) of the WAITING task with the earliest schedule time."""
        ...

    def counters(self, queue: Queue) -> Counters:
        """The queue's counters."""
        ...

    def bucket(self, queue: Queue) -> TokenState | None:
        """The push queue's stored token bucket, or None before its first dispatch. In a
        transaction, concurrent engines lock it (creating the row to lock if need be): the
        dispatches of one queue take turns, which is what makes its limits hold across servers."""
        ...

    def tombstone(self, queue: Queue, task_id: str) -> int | None:
        """Until when the name is reserved, or None (expired reservations may still show)."""
        ...

    def request(self, queue: Queue, request_id: str, now_us: int) -> RequestRecord | None:
        """What a create with this request id made, if it was made at most an hour before
        `now_us` (older ones may be returned until their hour is forgotten, up to two hours
        after)."""
        ...

    def acked(self, queue: Queue, task_id: str, now_us: int) -> str | None:
        """The lease token with which the task was acknowledged, if that happened at most an
        hour before `now_us` (older ones as for `request`)."""
        ...

    # Due-time indexes, across all queues ----------------------------------------------------

    def expired_leases(self, until_us: int, limit: int) -> list[LeaseEntry]:
        """Up to `limit` lease-index entries expiring at or before `until_us`, earliest first.
        Entries may name tasks that are no longer so leased (or queues since deleted)."""
        ...

    def leases(self, after: LeaseEntry | None, limit: int) -> list[LeaseEntry]:
        """Up to `limit` lease-index entries after `after` (None: from the first; it need not
        exist any more), in (expiry, storage id, task id) order: a walk over every lease."""
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

    def promotions(self, until_us: int, limit: int) -> list[Promotion]:
        """Up to `limit` promotion-index entries due at or before `until_us`, earliest first:
        queues whose waiting tasks may need counting as ready (see Txn.promote)."""
        ...

    def next_promotion(self) -> int | None:
        """The earliest entry of the promotion index, or None."""
        ...

    def request_hours(self, before_hour: int, limit: int) -> list[tuple[int, int]]:
        """Up to `limit` (hour, storage id) pairs with request ids or acknowledgements kept
        from hours before `before_hour` (>= 0), oldest first. May list pairs that hold nothing
        any more (a deleted queue's); forgetting them is harmless."""
        ...

    def first_request_hour(self) -> int | None:
        """The oldest hour holding request ids or acknowledgements, or None."""
        ...

    # Meta ---------------------------------------------------------------------------------

    def page_token_key(self) -> bytes:
        """A secret made when the database was created: the key that signs page tokens (the
        same for every server on the database, and across restarts)."""
        ...


class Txn(Reader, Protocol):
    """Changes to apply together (see the module docstring for what its reads see)."""

    def put_queue(self, queue: Queue) -> None:
        """Creates or replaces a queue's configuration. A queue whose `storage_id` is 0 is new:
        the store assigns it a fresh storage id (visible on the object at once)."""
        ...

    def delete_queue(self, queue: Queue) -> None:
        """Deletes the queue with all its tasks, tombstones, request ids, acknowledgements and
        counters; afterwards this transaction's point reads treat it as unknown (None,
        `Counters()`). Entries of the global due-time indexes naming it may stay until their
        readers drop them."""
        ...

    def put_task(self, queue: Queue, task: Task, previous: Task | None) -> None:
        """Stores `task` (new when `previous` is None, else replacing `previous`, which must be
        the task as currently stored). Moves it between indexes by its stage and updates the
        queue's counters: WAITING tasks are indexed by schedule time (and, in pull queues, by
        tag and schedule time), LEASED ones by lease expiry, FAILED ones by retain_until_us.
        A WAITING task counted as scheduled brings the queue's promotion entry forward to its
        schedule time if it is later."""
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

    def put_ack(self, queue: Queue, task_id: str, lease_token: str, now_us: int) -> None:
        """Remembers that the task was acknowledged with `lease_token` at `now_us`."""
        ...

    def forget_hour(self, hour: int, storage_id: int) -> None:
        """Forgets the request ids and acknowledgements of one queue made in one hour. Not in a
        transaction that also puts request ids or acknowledgements of that queue and hour."""
        ...

    def delete_expiry(self, entry: Expiry) -> None:
        """Removes an expiry-index entry and, when it still names the stored tombstone with the
        same expiry, that tombstone. (FAILED tasks are removed with delete_task.)"""
        ...

    def forget_lease(self, entry: LeaseEntry) -> None:
        """Deletes a lease-index entry that names no leased task."""
        ...

    def promote(self, queue: Queue, until_us: int, limit: int) -> bool:
        """Counts waiting tasks due by `until_us` (the caller's now) as ready from now on, at most
        `limit` (>= 0) of them: the counters' boundary becomes the position of the last task
        counted, or `until_us` itself when no more are due (boundary engines).
        Keeps the queue's promotion-index entry at the next time it has work: the schedule
        time of its first task still counted as scheduled, or `until_us` when `limit` stopped
        it early. Returns True when no waiting task due by `until_us` is left counted as
        scheduled (a concurrent engine skips tasks other transactions hold, and then says
        False). It counts what the store holds, not this transaction's own writes: call it
        before any other write to the queue's waiting tasks in the same transaction."""
        ...

    def forget_promotion(self, entry: Promotion) -> None:
        """Deletes a promotion-index entry (of a deleted queue, or a stale one)."""
        ...

    def put_bucket(self, queue: Queue, state: TokenState) -> None:
        """Stores the push queue's token bucket."""
        ...

    def written(self) -> bool:
        """Whether the transaction holds any change (an empty one needs no write or fsync)."""
        ...

    def prefetch(
        self, queue: Queue, task_ids: Collection[str] = (), *, tombstones: bool = False,
        request_ids: Collection[str] = (),
    ) -> None:
        """A hint: the transaction is about to read these tasks (and their tombstones) and
        request ids one by one. An engine with a round trip per read fetches (and locks) them
        in one; it changes no answer. Single-writer engines ignore it."""
        ...


class Store(Reader, Protocol):
    """A storage engine. Reads see every applied transaction."""

    def begin(self) -> Txn:
        """A new, empty transaction."""
        ...

    def apply(self, txn: Txn) -> None:
        """Applies the transaction atomically; later reads see it. Raises StoreError on
        failure, in which case nothing of it is visible."""
        ...

    def discard(self, txn: Txn) -> None:
        """Abandons a transaction that will not be applied (its mutation failed)."""
        ...

    def sync(self) -> None:
        """Blocks until everything applied so far is durable. Safe to call from another thread
        while the owning thread reads."""
        ...

    def maintain(self) -> None:
        """Housekeeping that may take a while (e.g. compacting consumed index ranges). Safe to
        call from another thread."""
        ...

    def size_bytes(self) -> int | None:
        """The bytes the data takes where it is kept (RocksDB: its SST files and write-ahead
        log; PostgreSQL: the database), or None for an engine with nothing to measure. Safe
        to call from another thread; may take a while (call it now and then, not per request)."""
        ...

    def checkpoint(self, destination: str) -> None:
        """Writes a consistent copy of everything applied so far into the new directory
        `destination`, while transactions go on. Safe to call from another thread. Raises
        BackupNotSupported (core.errors) where the engine has no such copy, BackupFailed
        when the destination cannot be written."""
        ...

    def close(self) -> None:
        """Releases the engine. Nothing may be called afterwards."""
        ...
