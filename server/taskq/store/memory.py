"""An in-memory Store: the reference twin of the RocksDB engine.

Written from the contract in store/base.py with plain dicts and sorting, not from the RocksDB
key layout, so the conformance suite compares two independent readings of the contract.
Nothing survives the process; `sync` does nothing. Scans sort on every call: fine for tests,
not for production.

A transaction keeps what it writes in its own dicts (so its point reads see them) and merges
them into the store when applied; until then the store shows nothing of it.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator

from taskq.core.errors import BackupNotSupported
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
from taskq.store.base import Txn
from taskq.store.faults import Faults
from taskq.store.scans import StoreScans

#: Request ids and acknowledgements are remembered by the hour they were made in
#: (independently of the RocksDB engine's constant, which the conformance suite checks against).
REQUEST_HOUR_US = 3_600_000_000

_DELETED = None


def _copy_task(task: Task) -> Task:
    copy = dataclasses.replace(task, attributes=dict(task.attributes))
    if task.last_attempt is not None:
        copy.last_attempt = dataclasses.replace(task.last_attempt)
    if task.retry is not None:
        copy.retry = dataclasses.replace(task.retry)
    return copy


def _copy_queue(queue: Queue) -> Queue:
    return dataclasses.replace(queue, retry=dataclasses.replace(queue.retry))


def _recent(hour: int, now_us: int) -> bool:
    return hour >= now_us // REQUEST_HOUR_US - 1


class MemoryStore:
    """A Store in dictionaries. See store/base.py for the contract."""

    def __init__(self) -> None:
        self.queues_by_id: dict[str, Queue] = {}
        self.tasks_by_key: dict[tuple[int, str], Task] = {}
        self.tombstones: dict[tuple[int, str], int] = {}
        #: (storage id, request id) -> (record, the hour it was made in).
        self.requests: dict[tuple[int, str], tuple[RequestRecord, int]] = {}
        #: (storage id, task id) -> (lease token, the hour of the acknowledgement).
        self.acks: dict[tuple[int, str], tuple[str, int]] = {}
        self.counters_by_id: dict[int, Counters] = {}
        self.buckets: dict[int, TokenState] = {}
        #: Tombstone expiry entries, and those of FAILED tasks whose queue was deleted, as
        #: (expire_us, kind, storage id, key). FAILED tasks of live queues are derived.
        self.expiry_entries: set[tuple[int, int, int, str]] = set()
        #: Promotion-index entries as (due_us, storage id).
        self.promotion_entries: set[tuple[int, int]] = set()
        self.next_storage_id = 1
        self.secret = os.urandom(32)
        self.faults = Faults()

    # Reads --------------------------------------------------------------------------------

    def queue(self, queue_id: str) -> Queue | None:
        queue = self.queues_by_id.get(queue_id)
        return _copy_queue(queue) if queue else None

    def queue_by_storage_id(self, storage_id: int) -> Queue | None:
        for queue in self.queues_by_id.values():
            if queue.storage_id == storage_id:
                return _copy_queue(queue)
        return None

    def queues(self, after: str, limit: int) -> list[Queue]:
        return [_copy_queue(self.queues_by_id[q]) for q in sorted(self.queues_by_id) if q > after][:limit]

    def purging_queues(self) -> list[Queue]:
        return [_copy_queue(queue) for queue in self.queues_by_id.values() if queue.purging]

    def dead_letter_referrers(self, queue_id: str) -> list[str]:
        return sorted(q.queue_id for q in self.queues_by_id.values() if q.dead_letter_queue == queue_id)

    def task(self, queue: Queue, task_id: str) -> Task | None:
        task = self.tasks_by_key.get((queue.storage_id, task_id))
        return _copy_task(task) if task else None

    def tasks(self, queue: Queue, after: str, *, payloads: bool = True) -> Iterator[Task]:
        ids = sorted(t for (s, t) in self.tasks_by_key if s == queue.storage_id and t > after)
        for task_id in ids:
            task = self.tasks_by_key.get((queue.storage_id, task_id))
            if task is not None:
                copy = _copy_task(task)
                if not payloads:
                    copy.payload = b""
                yield copy
        self.faults.on_scan_end()

    def _waiting_sorted(self, storage_id: int) -> list[Task]:
        found = [
            task for (s, _), task in self.tasks_by_key.items() if s == storage_id and task.stage is Stage.WAITING
        ]
        return sorted(found, key=lambda task: (task.schedule_time_us, task.task_id))

    def waiting(self, queue: Queue, until_us: int, tag: str | None = None, limit: int = 1000) -> Iterator[Task]:
        returned = 0
        for task in self._waiting_sorted(queue.storage_id):
            if returned >= limit:
                return
            if task.schedule_time_us > until_us:
                break  # the end of the scanned range
            if tag is None or task.tag == tag:
                yield _copy_task(task)
                returned += 1
        self.faults.on_scan_end()

    def oldest_waiting(self, queue: Queue) -> tuple[int, str] | None:
        found = self._waiting_sorted(queue.storage_id)
        return (found[0].schedule_time_us, found[0].tag) if found else self._scanned(None)

    def counters(self, queue: Queue) -> Counters:
        counters = self.counters_by_id.get(queue.storage_id)
        return dataclasses.replace(counters) if counters else Counters()

    def bucket(self, queue: Queue) -> TokenState | None:
        state = self.buckets.get(queue.storage_id)
        return dataclasses.replace(state) if state else None

    def tombstone(self, queue: Queue, task_id: str) -> int | None:
        return self.tombstones.get((queue.storage_id, task_id))

    def request(self, queue: Queue, request_id: str, now_us: int) -> RequestRecord | None:
        found = self.requests.get((queue.storage_id, request_id))
        return found[0] if found is not None and _recent(found[1], now_us) else None

    def acked(self, queue: Queue, task_id: str, now_us: int) -> str | None:
        found = self.acks.get((queue.storage_id, task_id))
        return found[0] if found is not None and _recent(found[1], now_us) else None

    def _scanned(self, found, limit: int = 1):
        """Returns `found`, after a scan that reached its end (found fewer than `limit`, or
        nothing) fails as the RocksDB engine's does when faults.failing_scans is set."""
        if found is None or len(found) < limit:
            self.faults.on_scan_end()
        return found

    def _lease_entries(self) -> list[tuple[int, int, str]]:
        return sorted(
            (task.lease_expire_us, s, t) for (s, t), task in self.tasks_by_key.items() if task.stage is Stage.LEASED
        )

    def expired_leases(self, until_us: int, limit: int) -> list[LeaseEntry]:
        due = [LeaseEntry(*entry) for entry in self._lease_entries() if entry[0] <= until_us][: max(limit, 0)]
        return self._scanned(due, limit)

    def leases(self, after: LeaseEntry | None, limit: int) -> list[LeaseEntry]:
        start = (after.expire_us, after.storage_id, after.task_id) if after is not None else None
        entries = [entry for entry in self._lease_entries() if start is None or entry > start]
        return self._scanned([LeaseEntry(*entry) for entry in entries[: max(limit, 0)]], limit)

    def next_lease_expiry(self) -> int | None:
        entries = self._lease_entries()
        return entries[0][0] if entries else self._scanned(None)

    def _expiry_list(self) -> list[tuple[int, int, int, str]]:
        failed = [
            (task.retain_until_us, ExpiryKind.FAILED_TASK.value, s, t)
            for (s, t), task in self.tasks_by_key.items()
            if task.stage is Stage.FAILED
        ]
        return sorted(list(self.expiry_entries) + failed)

    def expiries(self, until_us: int, limit: int) -> list[Expiry]:
        due = [Expiry(e, ExpiryKind(kind), s, key) for (e, kind, s, key) in self._expiry_list() if e <= until_us]
        return self._scanned(due[: max(limit, 0)], limit)

    def next_expiry(self) -> int | None:
        entries = self._expiry_list()
        return entries[0][0] if entries else self._scanned(None)

    def promotions(self, until_us: int, limit: int) -> list[Promotion]:
        due = sorted(entry for entry in self.promotion_entries if entry[0] <= until_us)
        return self._scanned([Promotion(*entry) for entry in due[: max(limit, 0)]], limit)

    def next_promotion(self) -> int | None:
        return min(self.promotion_entries)[0] if self.promotion_entries else self._scanned(None)

    def _hours(self) -> list[tuple[int, int]]:
        pairs = {(hour, s) for (s, _), (_, hour) in self.requests.items()}
        pairs |= {(hour, s) for (s, _), (_, hour) in self.acks.items()}
        return sorted(pairs)

    def request_hours(self, before_hour: int, limit: int) -> list[tuple[int, int]]:
        return self._scanned([pair for pair in self._hours() if pair[0] < before_hour][: max(limit, 0)], limit)

    def first_request_hour(self) -> int | None:
        hours = self._hours()
        return hours[0][0] if hours else self._scanned(None)

    def page_token_key(self) -> bytes:
        return self.secret

    # Writes -------------------------------------------------------------------------------

    def begin(self) -> MemoryTxn:
        return MemoryTxn(self)

    def apply(self, txn: Txn) -> None:
        assert isinstance(txn, MemoryTxn)  # a transaction of this store (begin)
        if not txn.written():
            return
        self.faults.on_write()
        txn.merge()

    def discard(self, txn: Txn) -> None:
        pass

    def sync(self) -> None:
        self.faults.on_sync()

    def maintain(self) -> None:
        pass

    def size_bytes(self) -> int | None:
        return None  # nothing on disk

    def checkpoint(self, destination: str) -> None:
        raise BackupNotSupported("the in-memory store keeps nothing on disk to back up")

    def close(self) -> None:
        pass


class MemoryTxn(StoreScans):
    """Writes kept aside (point reads see them) and merged into the store by `merge`."""

    _store: MemoryStore

    def __init__(self, store: MemoryStore) -> None:
        self._store = store
        self._written = False
        self._queues: dict[str, Queue | None] = {}
        self._tasks: dict[tuple[int, str], Task | None] = {}
        self._tombstones: dict[tuple[int, str], int] = {}
        self._requests: dict[tuple[int, str], tuple[RequestRecord, int]] = {}
        self._acks: dict[tuple[int, str], tuple[str, int]] = {}
        self._counters: dict[int, Counters] = {}
        self._buckets: dict[int, TokenState] = {}
        self._expiry_added: set[tuple[int, int, int, str]] = set()
        self._expiry_removed: set[tuple[int, int, int, str]] = set()
        self._promotions_added: set[tuple[int, int]] = set()
        self._promotions_removed: set[tuple[int, int]] = set()
        self._forgotten_hours: set[tuple[int, int]] = set()
        self._deleted: set[int] = set()
        self._next_storage_id = store.next_storage_id

    def written(self) -> bool:
        return self._written

    # Reads --------------------------------------------------------------------------------

    def queue(self, queue_id: str) -> Queue | None:
        if queue_id in self._queues:
            queue = self._queues[queue_id]
            return _copy_queue(queue) if queue is not None else None
        return self._store.queue(queue_id)

    def queue_by_storage_id(self, storage_id: int) -> Queue | None:
        if storage_id in self._deleted:
            return None
        for queue in self._queues.values():
            if queue is not None and queue.storage_id == storage_id:
                return _copy_queue(queue)
        return self._store.queue_by_storage_id(storage_id)

    def queues(self, after: str, limit: int) -> list[Queue]:
        merged = {queue.queue_id: queue for queue in self._store.queues(after, 2**31)}
        for queue_id, queue in self._queues.items():
            merged.pop(queue_id, None)
            if queue is not None and queue_id > after:
                merged[queue_id] = _copy_queue(queue)
        return [merged[queue_id] for queue_id in sorted(merged)[:limit]]

    def purging_queues(self) -> list[Queue]:
        return [queue for queue in self.queues("", 2**31) if queue.purging]

    def dead_letter_referrers(self, queue_id: str) -> list[str]:
        return sorted(queue.queue_id for queue in self.queues("", 2**31) if queue.dead_letter_queue == queue_id)

    def task(self, queue: Queue, task_id: str) -> Task | None:
        if queue.storage_id in self._deleted:
            return None
        key = (queue.storage_id, task_id)
        if key in self._tasks:
            task = self._tasks[key]
            return _copy_task(task) if task is not None else None
        return self._store.task(queue, task_id)

    def counters(self, queue: Queue) -> Counters:
        if queue.storage_id in self._deleted:
            return Counters()
        counters = self._counters.get(queue.storage_id)
        return dataclasses.replace(counters) if counters is not None else self._store.counters(queue)

    def bucket(self, queue: Queue) -> TokenState | None:
        if queue.storage_id in self._deleted:
            return None
        state = self._buckets.get(queue.storage_id)
        return dataclasses.replace(state) if state is not None else self._store.bucket(queue)

    def tombstone(self, queue: Queue, task_id: str) -> int | None:
        if queue.storage_id in self._deleted:
            return None
        key = (queue.storage_id, task_id)
        if key in self._tombstones:
            return self._tombstones[key] or None  # 0: deleted in this transaction
        return self._store.tombstone(queue, task_id)

    def request(self, queue: Queue, request_id: str, now_us: int) -> RequestRecord | None:
        if queue.storage_id in self._deleted:
            return None
        found = self._requests.get((queue.storage_id, request_id))
        return found[0] if found is not None else self._store.request(queue, request_id, now_us)

    def acked(self, queue: Queue, task_id: str, now_us: int) -> str | None:
        if queue.storage_id in self._deleted:
            return None
        found = self._acks.get((queue.storage_id, task_id))
        return found[0] if found is not None else self._store.acked(queue, task_id, now_us)











    # Writes -------------------------------------------------------------------------------

    def _counters_of(self, storage_id: int) -> Counters:
        counters = self._counters.get(storage_id)
        if counters is None:
            stored = self._store.counters_by_id.get(storage_id)
            counters = dataclasses.replace(stored) if stored is not None else Counters()
            self._counters[storage_id] = counters
        return counters

    def put_queue(self, queue: Queue) -> None:
        self._written = True
        if queue.storage_id == 0:
            queue.storage_id = self._next_storage_id
            self._next_storage_id += 1
            self._counters[queue.storage_id] = Counters(promoted_through_us=queue.create_time_us)
        self._queues[queue.queue_id] = _copy_queue(queue)

    def delete_queue(self, queue: Queue) -> None:
        self._written = True
        counters = self._counters_of(queue.storage_id)
        if counters.next_promotion_us:
            self._promotion(False, counters.next_promotion_us, queue.storage_id)
        self._queues[queue.queue_id] = None
        self._deleted.add(queue.storage_id)
        for table in (self._tasks, self._tombstones, self._requests, self._acks):
            for key in [key for key in table if key[0] == queue.storage_id]:
                del table[key]
        self._counters.pop(queue.storage_id, None)
        self._buckets.pop(queue.storage_id, None)

    def _promotion(self, add: bool, due_us: int, storage_id: int) -> None:
        entry = (due_us, storage_id)
        (self._promotions_added if add else self._promotions_removed).add(entry)
        (self._promotions_removed if add else self._promotions_added).discard(entry)

    def _set_promotion(self, storage_id: int, counters: Counters, due_us: int) -> None:
        if counters.next_promotion_us == due_us:
            return
        if counters.next_promotion_us:
            self._promotion(False, counters.next_promotion_us, storage_id)
        if due_us:
            self._promotion(True, due_us, storage_id)
        counters.next_promotion_us = due_us

    def _count(self, queue: Queue, task: Task, step: int) -> None:
        counters = self._counters_of(queue.storage_id)
        if task.stage is Stage.WAITING:
            if counters.counts_as_ready(task.schedule_time_us, task.task_id):
                counters.ready += step
            else:
                counters.scheduled += step
                if step > 0 and (not counters.next_promotion_us or task.schedule_time_us < counters.next_promotion_us):
                    self._set_promotion(queue.storage_id, counters, task.schedule_time_us)
        elif task.stage is Stage.LEASED:
            counters.leased += step
        else:
            counters.failed += step

    def put_task(self, queue: Queue, task: Task, previous: Task | None) -> None:
        self._written = True
        if previous is not None:
            self._count(queue, previous, -1)
        self._count(queue, task, +1)
        self._tasks[(queue.storage_id, task.task_id)] = _copy_task(task)

    def delete_task(self, queue: Queue, task: Task) -> None:
        self._written = True
        self._count(queue, task, -1)
        self._tasks[(queue.storage_id, task.task_id)] = _DELETED

    def put_tombstone(self, queue: Queue, task_id: str, expire_us: int) -> None:
        self._written = True
        key = (queue.storage_id, task_id)
        old = self.tombstone(queue, task_id)
        if old is not None:
            self._expiry(False, (old, ExpiryKind.TOMBSTONE.value, *key))
        self._tombstones[key] = expire_us
        self._expiry(True, (expire_us, ExpiryKind.TOMBSTONE.value, *key))

    def _expiry(self, add: bool, entry: tuple[int, int, int, str]) -> None:
        (self._expiry_added if add else self._expiry_removed).add(entry)
        (self._expiry_removed if add else self._expiry_added).discard(entry)

    def put_request(self, queue: Queue, request_id: str, record: RequestRecord) -> None:
        self._written = True
        self._requests[(queue.storage_id, request_id)] = (record, record.create_time_us // REQUEST_HOUR_US)

    def put_ack(self, queue: Queue, task_id: str, lease_token: str, now_us: int) -> None:
        self._written = True
        self._acks[(queue.storage_id, task_id)] = (lease_token, now_us // REQUEST_HOUR_US)

    def forget_hour(self, hour: int, storage_id: int) -> None:
        self._written = True
        self._forgotten_hours.add((hour, storage_id))

    def delete_expiry(self, entry: Expiry) -> None:
        self._written = True
        key = (entry.storage_id, entry.key)
        self._expiry(False, (entry.expire_us, entry.kind.value, *key))
        if entry.kind is ExpiryKind.TOMBSTONE:
            current = self._tombstones.get(key, self._store.tombstones.get(key))
            if current == entry.expire_us:
                self._tombstones[key] = 0  # 0: deleted (merged as a removal)

    def forget_lease(self, entry: LeaseEntry) -> None:
        # Lease entries here are derived from LEASED tasks, so a stray one cannot exist.
        self._written = True

    def promote(self, queue: Queue, until_us: int, limit: int) -> bool:
        counters = self._counters_of(queue.storage_id)
        boundary = (counters.promoted_through_us, counters.promoted_through_id or "~~")
        if (until_us, "~~") <= boundary:
            if counters.next_promotion_us and counters.next_promotion_us <= until_us:
                later = [
                    t.schedule_time_us for t in self._store._waiting_sorted(queue.storage_id)
                    if (t.schedule_time_us, t.task_id) > boundary
                ]
                self._set_promotion(queue.storage_id, counters, later[0] if later else 0)
                self._written = True
            return True
        due = [
            task for task in self._store._waiting_sorted(queue.storage_id)
            if boundary < (task.schedule_time_us, task.task_id) and task.schedule_time_us <= until_us
        ]
        moved = due[:limit]
        counters.scheduled -= len(moved)
        counters.ready += len(moved)
        self._written = True
        if len(due) <= limit:
            counters.promoted_through_us, counters.promoted_through_id = until_us, ""
            later = [t.schedule_time_us for t in self._store._waiting_sorted(queue.storage_id) if t.schedule_time_us > until_us]
            self._set_promotion(queue.storage_id, counters, later[0] if later else 0)
            return True
        if moved:  # (a limit of 0 leaves the boundary where it is)
            counters.promoted_through_us, counters.promoted_through_id = moved[-1].schedule_time_us, moved[-1].task_id
        self._set_promotion(queue.storage_id, counters, until_us)
        return False

    def forget_promotion(self, entry: Promotion) -> None:
        self._written = True
        counters = self._counters.get(entry.storage_id) or self._store.counters_by_id.get(entry.storage_id)
        if counters is not None and counters.next_promotion_us == entry.due_us:
            self._counters_of(entry.storage_id).next_promotion_us = 0
        self._promotion(False, entry.due_us, entry.storage_id)

    def put_bucket(self, queue: Queue, state: TokenState) -> None:
        self._written = True
        self._buckets[queue.storage_id] = dataclasses.replace(state)

    # Apply --------------------------------------------------------------------------------

    def merge(self) -> None:
        store = self._store
        for storage_id in self._deleted:
            for key in [key for key in store.tasks_by_key if key[0] == storage_id]:
                task = store.tasks_by_key.pop(key)
                if task.stage is Stage.FAILED:
                    # Its expiry entry outlives it, as in the RocksDB engine: delete_expiry
                    # removes it.
                    store.expiry_entries.add((task.retain_until_us, ExpiryKind.FAILED_TASK.value, *key))
            for table in (store.tombstones, store.requests, store.acks):
                for key in [key for key in table if key[0] == storage_id]:
                    del table[key]
            store.counters_by_id.pop(storage_id, None)
            store.buckets.pop(storage_id, None)
        for queue_id, queue in self._queues.items():
            if queue is None:
                store.queues_by_id.pop(queue_id, None)
            else:
                store.queues_by_id[queue_id] = queue
        for key, written in self._tasks.items():
            if written is None:
                store.tasks_by_key.pop(key, None)
            else:
                store.tasks_by_key[key] = written
        for key, expire_us in self._tombstones.items():
            if expire_us:
                store.tombstones[key] = expire_us
            else:
                store.tombstones.pop(key, None)
        store.requests.update(self._requests)
        store.acks.update(self._acks)
        for hour, storage_id in self._forgotten_hours:
            for table in (store.requests, store.acks):
                for key in [key for key, (_, h) in table.items() if key[0] == storage_id and h == hour]:
                    del table[key]
        for storage_id, counters in self._counters.items():
            store.counters_by_id[storage_id] = counters
        store.buckets.update(self._buckets)
        store.expiry_entries -= self._expiry_removed
        store.expiry_entries |= self._expiry_added
        store.promotion_entries -= self._promotions_removed
        store.promotion_entries |= self._promotions_added
        store.next_storage_id = self._next_storage_id

