"""The PostgreSQL engine's transaction: reads that lock what they may change, writes buffered
and sent together when the transaction is applied (a few statements per commit, however many
tasks changed), and an overlay so that its point reads see its own writes.

Counting: a waiting task carries `counted_ready`; the counters are kept as deltas per queue and
added, at apply, to one of the queue's counter stripes chosen at random (schema.STRIPES), so
concurrent transactions rarely wait for the same counter row. `promote` flips the flags of due
tasks right away (they are locked by it) and the deltas follow; a waiting task written after
this transaction's promote of its queue counts as ready if it is due by then, else as
scheduled, and the janitor's promote counts it later. A task replaced or deleted is uncounted
by its stored flag: read (and locked) when the transaction did not read the task itself.

Races the locks do not settle are found at apply and raised as ConflictError (the caller runs
its mutation again): a task row that is gone when it is updated or deleted, a queue replaced or
deleted since this transaction read it, a queue or task name created twice (unique keys).

Index entries are the rows themselves, so an entry outlives its queue only when a task was
written concurrently with the queue's deletion: `forget_lease`, `forget_promotion` and
`delete_expiry` drop such leftover rows of a queue that no longer exists.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Collection, Iterator
from typing import TYPE_CHECKING, Any

import psycopg

from taskq.core.model import (
    Counters,
    Expiry,
    ExpiryKind,
    LeaseEntry,
    Promotion,
    Queue,
    RequestRecord,
    Stage,
    Task,
    TokenState,
)
from taskq.store.postgres.reader import HOUR_US, PgReader, recent_hour
from taskq.store.postgres.schema import STRIPES
from taskq.store.records import decode_request, encode_queue, encode_request
from taskq.store.task_record import encode_task

if TYPE_CHECKING:
    from taskq.store.postgres.store import PgStore

_STAGE_FIELDS = ("scheduled", "ready", "leased", "failed")


def _payloadless(task: Task) -> bytes:
    """The stored record of a task without its payload (kept in its own column)."""
    payload, task.payload = task.payload, b""
    try:
        return encode_task(task)
    finally:
        task.payload = payload


class PgTxn(PgReader):
    """One transaction on one pooled connection (see the module docstring)."""

    def __init__(self, store: PgStore, conn: psycopg.Connection) -> None:
        super().__init__(conn, store.page_token_key(), locking=True)
        self._store = store
        self._written = False
        #: Queues written (by id; None: deleted), storage ids deleted, storage ids this
        #: transaction assigned (inserted at apply; the others are updated).
        self._queues: dict[str, Queue | None] = {}
        self._deleted: set[int] = set()
        self._new_queues: set[int] = set()
        #: storage id -> the queue's record as this transaction first read it.
        self._queue_records: dict[int, bytes] = {}
        #: (storage id, task id) -> the task as this transaction leaves it (None: deleted);
        #: whether its row existed when the transaction first wrote it; rows whose payload
        #: changed (an update rewrites it only then).
        self._tasks: dict[tuple[int, str], Task | None] = {}
        self._stored: dict[tuple[int, str], bool] = {}
        self._payloads: set[tuple[int, str]] = set()
        #: (storage id, task id) -> counted_ready: as read, or as this transaction's writes
        #: leave it.
        self.flags: dict[tuple[int, str], bool] = {}
        self._tombstones: dict[tuple[int, str], int | None] = {}
        self._requests: dict[tuple[int, str], tuple[RequestRecord, int]] = {}
        self._acks: dict[tuple[int, str], tuple[str, int]] = {}
        self._forgotten_hours: list[tuple[int, int]] = []
        self._buckets: dict[int, TokenState] = {}
        #: storage id -> [scheduled, ready, leased, failed] deltas.
        self._deltas: dict[int, list[int]] = {}
        #: What `prefetch` read: tasks (None: none there), tombstones, request ids with their hour.
        self._fetched: dict[tuple[int, str], Task | None] = {}
        self._fetched_tombstones: dict[tuple[int, str], int | None] = {}
        self._fetched_requests: dict[tuple[int, str], tuple[RequestRecord, int] | None] = {}
        #: storage id -> the `until_us` of this transaction's promote of the queue.
        self._promoted_until: dict[int, int] = {}
        #: Storage ids of deleted queues whose leftover rows are to be dropped.
        self._orphans: set[int] = set()

    def written(self) -> bool:
        return self._written

    def _saw(self, storage_id: int, task_id: str, counted_ready: bool) -> None:
        # A task this transaction wrote counts as its write says, whatever a scan returns.
        if (storage_id, task_id) not in self._tasks:
            self.flags[(storage_id, task_id)] = counted_ready

    def _saw_queue(self, storage_id: int, record: bytes) -> None:
        self._queue_records.setdefault(storage_id, record)

    def _touched(self, storage_id: int) -> list[str]:
        """Ids of the queue's tasks this transaction wrote."""
        return [task_id for (sid, task_id) in self._tasks if sid == storage_id]

    # Point reads: this transaction's writes first ------------------------------------------

    def queue(self, queue_id: str) -> Queue | None:
        if queue_id in self._queues:
            return _copy_queue(self._queues[queue_id])
        return super().queue(queue_id)

    def queue_by_storage_id(self, storage_id: int) -> Queue | None:
        if storage_id in self._deleted:
            return None
        for queue in self._queues.values():
            if queue is not None and queue.storage_id == storage_id:
                return _copy_queue(queue)
        return super().queue_by_storage_id(storage_id)

    def queues(self, after: str, limit: int) -> list[Queue]:
        merged = {queue.queue_id: queue for queue in super().queues(after, limit + len(self._queues))}
        for queue_id, queue in self._queues.items():
            merged.pop(queue_id, None)
            if queue is not None and queue_id > after:
                merged[queue_id] = queue
        return [_copy_queue(merged[queue_id]) for queue_id in sorted(merged)[:limit]]  # type: ignore[misc]

    def purging_queues(self) -> list[Queue]:
        merged = {queue.queue_id: queue for queue in super().purging_queues()}
        for queue_id, queue in self._queues.items():
            merged.pop(queue_id, None)
            if queue is not None and queue.purging:
                merged[queue_id] = _copy_queue(queue)  # type: ignore[assignment]
        return list(merged.values())

    def dead_letter_referrers(self, queue_id: str) -> list[str]:
        referrers = set(super().dead_letter_referrers(queue_id))
        for changed_id, queue in self._queues.items():
            referrers.discard(changed_id)
            if queue is not None and queue.dead_letter_queue == queue_id:
                referrers.add(changed_id)
        return sorted(referrers)

    def task(self, queue: Queue, task_id: str) -> Task | None:
        if queue.storage_id in self._deleted:
            return None
        key = (queue.storage_id, task_id)
        if key in self._tasks:
            task = self._tasks[key]
            return task.copy() if task is not None else None
        if key in self._fetched:
            fetched = self._fetched[key]
            return fetched.copy() if fetched is not None else None
        return super().task(queue, task_id)

    def tasks(self, queue: Queue, after: str, *, payloads: bool = True) -> Iterator[Task]:
        return super().tasks(queue, after, payloads=payloads)

    def counters(self, queue: Queue) -> Counters:
        storage_id = queue.storage_id
        if storage_id in self._deleted:
            return Counters()
        # The promotion entry: the stored tasks this transaction left alone, and its own.
        counters = self._counters(queue, self._touched(storage_id))
        for name, delta in zip(_STAGE_FIELDS, self._deltas.get(storage_id, [0, 0, 0, 0])):
            setattr(counters, name, getattr(counters, name) + delta)
        pending = [
            task.schedule_time_us
            for (sid, task_id), task in self._tasks.items()
            if sid == storage_id and task is not None and task.stage is Stage.WAITING
            and not self.flags.get((sid, task_id), False)
        ]
        if pending:
            if counters.next_promotion_us:
                pending.append(counters.next_promotion_us)
            counters.next_promotion_us = min(pending)
        return counters

    def bucket(self, queue: Queue) -> TokenState | None:
        if queue.storage_id in self._deleted:
            return None
        if queue.storage_id in self._buckets:
            state = self._buckets[queue.storage_id]
            return TokenState(state.tokens, state.updated_us)
        # The row must exist to be locked: concurrent dispatches of the queue take turns on it.
        self.conn.execute(
            "INSERT INTO taskq_buckets (storage_id, tokens, updated_us) VALUES (%s, 0, 0) "
            "ON CONFLICT (storage_id) DO NOTHING",
            (queue.storage_id,),
        )
        return super().bucket(queue)

    def tombstone(self, queue: Queue, task_id: str) -> int | None:
        if queue.storage_id in self._deleted:
            return None
        key = (queue.storage_id, task_id)
        if key in self._tombstones:
            return self._tombstones[key]
        if key in self._fetched_tombstones:
            return self._fetched_tombstones[key]
        return super().tombstone(queue, task_id)

    def request(self, queue: Queue, request_id: str, now_us: int) -> RequestRecord | None:
        if queue.storage_id in self._deleted:
            return None
        found = self._requests.get((queue.storage_id, request_id))
        if found is not None:
            return found[0]
        key = (queue.storage_id, request_id)
        if key in self._fetched_requests:
            fetched = self._fetched_requests[key]
            return fetched[0] if fetched is not None and fetched[1] >= recent_hour(now_us) else None
        return super().request(queue, request_id, now_us)

    def prefetch(
        self, queue: Queue, task_ids: Collection[str] = (), *, tombstones: bool = False,
        request_ids: Collection[str] = (),
    ) -> None:
        """Reads (and locks) many tasks, their tombstones and request ids in one statement each,
        where the transaction would otherwise make a round trip per task."""
        storage_id = queue.storage_id
        if storage_id in self._deleted:
            return
        wanted = [t for t in set(task_ids) if (storage_id, t) not in self._tasks and (storage_id, t) not in self._fetched]
        if wanted:
            rows = self._all(
                "SELECT task_id, record, payload, counted_ready FROM taskq_tasks "
                "WHERE storage_id = %s AND task_id = ANY(%s) FOR UPDATE",
                (storage_id, wanted),
            )
            for task_id in wanted:
                self._fetched[(storage_id, task_id)] = None
            for row in rows:
                self._fetched[(storage_id, row[0])] = self._task(storage_id, row)
        if tombstones and task_ids:
            names = [t for t in set(task_ids) if (storage_id, t) not in self._tombstones
                     and (storage_id, t) not in self._fetched_tombstones]
            if names:
                for task_id in names:
                    self._fetched_tombstones[(storage_id, task_id)] = None
                for task_id, expire_us in self._all(
                    "SELECT task_id, expire_us FROM taskq_tombstones WHERE storage_id = %s AND task_id = ANY(%s)",
                    (storage_id, names),
                ):
                    self._fetched_tombstones[(storage_id, task_id)] = expire_us
        keys = [r for r in set(request_ids) if (storage_id, r) not in self._requests
                and (storage_id, r) not in self._fetched_requests]
        if keys:
            for request_id in keys:
                self._fetched_requests[(storage_id, request_id)] = None
            for request_id, record, hour in self._all(
                "SELECT request_id, record, hour FROM taskq_requests WHERE storage_id = %s AND request_id = ANY(%s)",
                (storage_id, keys),
            ):
                self._fetched_requests[(storage_id, request_id)] = (decode_request(record), hour)

    def acked(self, queue: Queue, task_id: str, now_us: int) -> str | None:
        if queue.storage_id in self._deleted:
            return None
        found = self._acks.get((queue.storage_id, task_id))
        return found[0] if found is not None else super().acked(queue, task_id, now_us)

    # Writes -------------------------------------------------------------------------------

    def put_queue(self, queue: Queue) -> None:
        self._written = True
        if queue.storage_id == 0:
            row = self._one("SELECT nextval('taskq_storage_ids')")
            queue.storage_id = int(row[0])
            self._new_queues.add(queue.storage_id)
        self._queues[queue.queue_id] = _copy_queue(queue)

    def delete_queue(self, queue: Queue) -> None:
        self._written = True
        storage_id = queue.storage_id
        self._queues[queue.queue_id] = None
        self._deleted.add(storage_id)
        self._new_queues.discard(storage_id)
        for table in (self._tasks, self._stored, self._tombstones, self._requests, self._acks):
            for key in [key for key in table if key[0] == storage_id]:
                del table[key]
        self._payloads = {key for key in self._payloads if key[0] != storage_id}
        self._deltas.pop(storage_id, None)
        self._buckets.pop(storage_id, None)

    def _count(self, storage_id: int, task: Task, counted_ready: bool, step: int) -> None:
        deltas = self._deltas.setdefault(storage_id, [0, 0, 0, 0])
        if task.stage is Stage.WAITING:
            deltas[1 if counted_ready else 0] += step
        elif task.stage is Stage.LEASED:
            deltas[2] += step
        else:
            deltas[3] += step

    def _flag(self, storage_id: int, task_id: str) -> bool:
        """How the stored task is counted (counted_ready). A task this transaction has not read
        is read now, and locked: the count of the write rests on it."""
        key = (storage_id, task_id)
        if key not in self.flags:
            row = self._one(
                "SELECT counted_ready FROM taskq_tasks WHERE storage_id = %s AND task_id = %s FOR UPDATE", key
            )
            # No row: the task is gone, and applying fails (see flush).
            self.flags[key] = bool(row[0]) if row else False
        return self.flags[key]

    def _ready_now(self, storage_id: int, task: Task) -> bool:
        """Whether a waiting task written by this transaction counts as ready."""
        return task.schedule_time_us <= self._promoted_until.get(storage_id, -1)

    def put_task(self, queue: Queue, task: Task, previous: Task | None) -> None:
        self._written = True
        key = (queue.storage_id, task.task_id)
        if previous is not None:
            was_ready = self._flag(*key)
            self._count(queue.storage_id, previous, was_ready, -1)
            same_wait = (
                previous.stage is Stage.WAITING and task.stage is Stage.WAITING
                and previous.schedule_time_us == task.schedule_time_us
            )
            ready = was_ready if same_wait else (task.stage is Stage.WAITING and self._ready_now(queue.storage_id, task))
            self._stored.setdefault(key, True)
            if task.payload != previous.payload:
                self._payloads.add(key)
        else:
            ready = task.stage is Stage.WAITING and self._ready_now(queue.storage_id, task)
            if self._stored.setdefault(key, False):
                self._payloads.add(key)  # deleted and created again: the row is rewritten
        self._count(queue.storage_id, task, ready, +1)
        self.flags[key] = ready
        self._tasks[key] = task.copy()

    def delete_task(self, queue: Queue, task: Task) -> None:
        self._written = True
        key = (queue.storage_id, task.task_id)
        self._count(queue.storage_id, task, self._flag(*key), -1)
        self._stored.setdefault(key, True)
        self._payloads.discard(key)
        self._tasks[key] = None

    def put_tombstone(self, queue: Queue, task_id: str, expire_us: int) -> None:
        self._written = True
        self._tombstones[(queue.storage_id, task_id)] = expire_us

    def put_request(self, queue: Queue, request_id: str, record: RequestRecord) -> None:
        self._written = True
        self._requests[(queue.storage_id, request_id)] = (record, record.create_time_us // HOUR_US)

    def put_ack(self, queue: Queue, task_id: str, lease_token: str, now_us: int) -> None:
        self._written = True
        self._acks[(queue.storage_id, task_id)] = (lease_token, now_us // HOUR_US)

    def forget_hour(self, hour: int, storage_id: int) -> None:
        self._written = True
        self._forgotten_hours.append((hour, storage_id))

    def _forget_leftovers(self, storage_id: int) -> None:
        """An index entry naming `storage_id` is to be dropped: if its queue no longer exists,
        its leftover rows are (see the module docstring); a live queue's entries are its rows."""
        if storage_id not in self._deleted and self.queue_by_storage_id(storage_id) is None:
            self._written = True
            self._orphans.add(storage_id)

    def delete_expiry(self, entry: Expiry) -> None:
        # A FAILED task's entry is the task's own row (deleted with it); a tombstone's is the
        # tombstone, deleted if it still has that expiry.
        if entry.kind is not ExpiryKind.TOMBSTONE:
            self._forget_leftovers(entry.storage_id)
            return
        if entry.storage_id in self._deleted:
            return
        key = (entry.storage_id, entry.key)
        if key in self._tombstones:
            current = self._tombstones[key]
        else:
            row = self._one(
                "SELECT expire_us FROM taskq_tombstones WHERE storage_id = %s AND task_id = %s FOR UPDATE", key
            )
            current = row[0] if row else None
        if current == entry.expire_us:
            self._written = True
            self._tombstones[key] = None

    def forget_lease(self, entry: LeaseEntry) -> None:
        """Lease entries are the leased rows themselves: only a deleted queue's can be stray."""
        self._forget_leftovers(entry.storage_id)

    def promote(self, queue: Queue, until_us: int, limit: int) -> bool:
        storage_id = queue.storage_id
        self._promoted_until[storage_id] = max(until_us, self._promoted_until.get(storage_id, -1))
        # Tasks this transaction wrote are counted by its writes (core promotes before writing).
        touched = self._touched(storage_id)
        skip = " AND task_id <> ALL(%s)" if touched else ""
        skipped: tuple[Any, ...] = (touched,) if touched else ()
        if limit > 0:
            rows = self._all(
                "WITH due AS (SELECT task_id FROM taskq_tasks WHERE storage_id = %s AND stage = 1 AND NOT counted_ready "
                "AND schedule_us <= %s" + skip + " ORDER BY schedule_us, task_id LIMIT %s FOR UPDATE SKIP LOCKED) "
                "UPDATE taskq_tasks t SET counted_ready = true FROM due "
                "WHERE t.storage_id = %s AND t.task_id = due.task_id RETURNING t.task_id",
                (storage_id, until_us, *skipped, limit, storage_id),
            )
            if rows:
                self._written = True
                deltas = self._deltas.setdefault(storage_id, [0, 0, 0, 0])
                deltas[0] -= len(rows)
                deltas[1] += len(rows)
                for (task_id,) in rows:
                    self.flags[(storage_id, task_id)] = True
        # Done when no due task is left counted as scheduled: none beyond the limit, and none
        # skipped because another transaction holds it (that one is counted later).
        left = self._one(
            "SELECT 1 FROM taskq_tasks WHERE storage_id = %s AND stage = 1 AND NOT counted_ready "
            "AND schedule_us <= %s" + skip + " LIMIT 1",
            (storage_id, until_us, *skipped),
        )
        return left is None

    def forget_promotion(self, entry: Promotion) -> None:
        """Promotion entries are the waiting rows themselves: only a deleted queue's can be stray."""
        self._forget_leftovers(entry.storage_id)

    def put_bucket(self, queue: Queue, state: TokenState) -> None:
        self._written = True
        self._buckets[queue.storage_id] = TokenState(state.tokens, max(state.updated_us, 1))

    # Apply --------------------------------------------------------------------------------

    def flush(self) -> None:
        """Sends every buffered write; the caller commits. Raises ConflictError when a row it
        replaces changed or went meanwhile (see the module docstring)."""
        from taskq.store.base import ConflictError

        if not self._written:
            return
        cursor = self.conn.cursor()
        for storage_id in sorted(self._deleted):
            for table in ("taskq_tasks", "taskq_tombstones", "taskq_requests", "taskq_acks", "taskq_counters",
                          "taskq_buckets", "taskq_queues"):
                cursor.execute(f"DELETE FROM {table} WHERE storage_id = %s", (storage_id,))
        for queue_id, queue in self._queues.items():
            if queue is None:
                continue  # deleted above, by storage id (a queue of that name may be new)
            fields = (queue_id, encode_queue(queue), queue.purging, queue.dead_letter_queue)
            if queue.storage_id in self._new_queues:
                # A plain insert: a queue of that name created meanwhile is a unique-key conflict.
                cursor.execute(
                    "INSERT INTO taskq_queues (queue_id, record, purging, dead_letter_queue, storage_id) "
                    "VALUES (%s, %s, %s, %s, %s)",
                    (*fields, queue.storage_id),
                )
            elif queue.storage_id in self._queue_records:
                # Replaces the queue as this transaction read it, or fails: no lost update.
                cursor.execute(
                    "UPDATE taskq_queues SET queue_id = %s, record = %s, purging = %s, dead_letter_queue = %s "
                    "WHERE storage_id = %s AND record = %s",
                    (*fields, queue.storage_id, self._queue_records[queue.storage_id]),
                )
                if cursor.rowcount != 1:
                    raise ConflictError(f"queue {queue_id} was changed or deleted by another transaction")
            else:
                cursor.execute(
                    "UPDATE taskq_queues SET queue_id = %s, record = %s, purging = %s, dead_letter_queue = %s "
                    "WHERE storage_id = %s",
                    (*fields, queue.storage_id),
                )
        for storage_id in sorted(self._orphans):
            for table in ("taskq_tasks", "taskq_tombstones", "taskq_requests", "taskq_acks", "taskq_counters",
                          "taskq_buckets"):
                cursor.execute(
                    f"DELETE FROM {table} WHERE storage_id = %s "
                    "AND NOT EXISTS (SELECT 1 FROM taskq_queues WHERE storage_id = %s)",
                    (storage_id, storage_id),
                )
        inserts: list[tuple[Any, ...]] = []
        updates: list[tuple[Any, ...]] = []
        rewrites: list[tuple[Any, ...]] = []
        deletes: list[tuple[int, str]] = []
        for key, task in self._tasks.items():
            storage_id, task_id = key
            if storage_id in self._deleted:
                continue
            if task is None:
                if self._stored[key]:
                    deletes.append(key)
                continue
            columns = (
                int(task.stage), task.schedule_time_us, task.tag, task.lease_expire_us, task.retain_until_us,
                self.flags.get(key, False), _payloadless(task),
            )
            if not self._stored[key]:
                inserts.append((storage_id, task_id, *columns, task.payload))
            elif key in self._payloads:
                rewrites.append((*columns, task.payload, storage_id, task_id))
            else:
                updates.append((*columns, storage_id, task_id))
        # One statement per kind of write, its rows passed as arrays (unnest): a statement per
        # row, even pipelined, costs the database a parse and a plan each.
        if inserts:
            cursor.execute(
                "INSERT INTO taskq_tasks (storage_id, task_id, stage, schedule_us, tag, lease_expire_us, retain_until_us, "
                "counted_ready, record, payload) SELECT * FROM unnest(%s::integer[], %s::text[], %s::smallint[], "
                "%s::bigint[], %s::text[], %s::bigint[], %s::bigint[], %s::boolean[], %s::bytea[], %s::bytea[])",
                _arrays(inserts, 10),
            )
        changed = 0
        if updates:
            cursor.execute(
                "UPDATE taskq_tasks t SET stage = v.stage, schedule_us = v.schedule_us, tag = v.tag, "
                "lease_expire_us = v.lease_expire_us, retain_until_us = v.retain_until_us, counted_ready = v.ready, "
                "record = v.record FROM unnest(%s::smallint[], %s::bigint[], %s::text[], %s::bigint[], %s::bigint[], "
                "%s::boolean[], %s::bytea[], %s::integer[], %s::text[]) AS v(stage, schedule_us, tag, lease_expire_us, "
                "retain_until_us, ready, record, storage_id, task_id) "
                "WHERE t.storage_id = v.storage_id AND t.task_id = v.task_id",
                _arrays(updates, 9),
            )
            changed += cursor.rowcount
        if rewrites:
            cursor.execute(
                "UPDATE taskq_tasks t SET stage = v.stage, schedule_us = v.schedule_us, tag = v.tag, "
                "lease_expire_us = v.lease_expire_us, retain_until_us = v.retain_until_us, counted_ready = v.ready, "
                "record = v.record, payload = v.payload FROM unnest(%s::smallint[], %s::bigint[], %s::text[], "
                "%s::bigint[], %s::bigint[], %s::boolean[], %s::bytea[], %s::bytea[], %s::integer[], %s::text[]) "
                "AS v(stage, schedule_us, tag, lease_expire_us, retain_until_us, ready, record, payload, storage_id, "
                "task_id) WHERE t.storage_id = v.storage_id AND t.task_id = v.task_id",
                _arrays(rewrites, 10),
            )
            changed += cursor.rowcount
        if deletes:
            cursor.execute(
                "DELETE FROM taskq_tasks WHERE (storage_id, task_id) IN "
                "(SELECT * FROM unnest(%s::integer[], %s::text[]))",
                _arrays(deletes, 2),
            )
            changed += cursor.rowcount
        if changed != len(updates) + len(rewrites) + len(deletes):
            # A task this transaction replaces or deletes is gone (its count would go wrong).
            raise ConflictError("a task was deleted by another transaction")
        tombstones = [(s, t, e) for (s, t), e in self._tombstones.items() if e is not None and s not in self._deleted]
        if tombstones:
            cursor.execute(
                "INSERT INTO taskq_tombstones (storage_id, task_id, expire_us) "
                "SELECT * FROM unnest(%s::integer[], %s::text[], %s::bigint[]) "
                "ON CONFLICT (storage_id, task_id) DO UPDATE SET expire_us = excluded.expire_us",
                _arrays(tombstones, 3),
            )
        removed = [(s, t) for (s, t), e in self._tombstones.items() if e is None and s not in self._deleted]
        if removed:
            cursor.executemany("DELETE FROM taskq_tombstones WHERE storage_id = %s AND task_id = %s", removed)
        requests = [(s, r, hour, encode_request(record)) for (s, r), (record, hour) in self._requests.items()
                    if s not in self._deleted]
        if requests:
            cursor.execute(
                "INSERT INTO taskq_requests (storage_id, request_id, hour, record) "
                "SELECT * FROM unnest(%s::integer[], %s::text[], %s::integer[], %s::bytea[]) "
                "ON CONFLICT (storage_id, request_id) DO UPDATE SET hour = excluded.hour, record = excluded.record",
                _arrays(requests, 4),
            )
        acks = [(s, t, hour, token) for (s, t), (token, hour) in self._acks.items() if s not in self._deleted]
        if acks:
            cursor.execute(
                "INSERT INTO taskq_acks (storage_id, task_id, hour, token) "
                "SELECT * FROM unnest(%s::integer[], %s::text[], %s::integer[], %s::text[]) "
                "ON CONFLICT (storage_id, task_id) DO UPDATE SET hour = excluded.hour, token = excluded.token",
                _arrays(acks, 4),
            )
        for hour, storage_id in self._forgotten_hours:
            cursor.execute("DELETE FROM taskq_requests WHERE storage_id = %s AND hour = %s", (storage_id, hour))
            cursor.execute("DELETE FROM taskq_acks WHERE storage_id = %s AND hour = %s", (storage_id, hour))
        buckets = [(s, state.tokens, state.updated_us) for s, state in self._buckets.items() if s not in self._deleted]
        if buckets:
            cursor.executemany(
                "INSERT INTO taskq_buckets (storage_id, tokens, updated_us) VALUES (%s, %s, %s) "
                "ON CONFLICT (storage_id) DO UPDATE SET tokens = excluded.tokens, updated_us = excluded.updated_us",
                buckets,
            )
        stripe = random.randrange(STRIPES)
        counters = [(s, stripe, *deltas) for s, deltas in sorted(self._deltas.items())
                    if s not in self._deleted and any(deltas)]
        if counters:
            cursor.executemany(
                "INSERT INTO taskq_counters (storage_id, stripe, scheduled, ready, leased, failed) "
                "VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (storage_id, stripe) DO UPDATE SET "
                "scheduled = taskq_counters.scheduled + excluded.scheduled, ready = taskq_counters.ready + excluded.ready, "
                "leased = taskq_counters.leased + excluded.leased, failed = taskq_counters.failed + excluded.failed",
                counters,
            )


def _arrays(rows: list[tuple[Any, ...]], width: int) -> tuple[list[Any], ...]:
    """Rows as one list per column, for a statement that unnests them."""
    columns: tuple[list[Any], ...] = tuple([] for _ in range(width))
    for row in rows:
        for column, value in zip(columns, row):
            column.append(value)
    return columns


def _copy_queue(queue: Queue | None) -> Queue | None:
    if queue is None:
        return None
    return dataclasses.replace(queue, retry=dataclasses.replace(queue.retry))
