"""An in-memory Store: the reference twin of the RocksDB engine.

Written from the contract in store/base.py with plain dicts and sorting, not from the RocksDB
key layout, so the conformance suite compares two independent readings of the contract.
Nothing survives the process; `sync` does nothing. Scans sort on every call: fine for tests,
not for production.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

from taskq.core.model import (
    Counters,
    Expiry,
    ExpiryKind,
    LeaseEntry,
    Queue,
    RequestRecord,
    Stage,
    Task,
)


#: Request ids are remembered by the hour they were made in (independently of the RocksDB
#: engine's constant, which the conformance suite checks against).
REQUEST_HOUR_US = 3_600_000_000


def _copy_task(task: Task) -> Task:
    copy = dataclasses.replace(task, attributes=dict(task.attributes))
    if task.last_attempt is not None:
        copy.last_attempt = dataclasses.replace(task.last_attempt)
    if task.retry is not None:
        copy.retry = dataclasses.replace(task.retry)
    return copy


def _copy_queue(queue: Queue) -> Queue:
    return dataclasses.replace(queue, retry=dataclasses.replace(queue.retry))


class MemoryStore:
    """A Store in dictionaries. See store/base.py for the contract."""

    def __init__(self) -> None:
        self.queues_by_id: dict[str, Queue] = {}
        self.tasks_by_key: dict[tuple[int, str], Task] = {}
        self.tombstones: dict[tuple[int, str], int] = {}
        #: (storage id, request id) -> (record, the hour it was made in).
        self.requests: dict[tuple[int, str], tuple[RequestRecord, int]] = {}
        self.counters_by_id: dict[int, Counters] = {}
        #: Expiry entries as (expire_us, kind, storage_id, key).
        self.expiry_entries: set[tuple[int, int, int, str]] = set()
        self.next_storage_id = 1

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

    def task(self, queue: Queue, task_id: str) -> Task | None:
        task = self.tasks_by_key.get((queue.storage_id, task_id))
        return _copy_task(task) if task else None

    def tasks(self, queue: Queue, after: str, limit: int) -> list[Task]:
        ids = sorted(t for (s, t) in self.tasks_by_key if s == queue.storage_id and t > after)[:limit]
        return [_copy_task(self.tasks_by_key[(queue.storage_id, t)]) for t in ids]

    def _waiting_sorted(self, storage_id: int) -> list[Task]:
        found = [
            task for (s, _), task in self.tasks_by_key.items() if s == storage_id and task.stage is Stage.WAITING
        ]
        return sorted(found, key=lambda task: (task.schedule_time_us, task.task_id))

    def waiting(self, queue: Queue, until_us: int, tag: str | None = None) -> Iterator[Task]:
        for task in self._waiting_sorted(queue.storage_id):
            if task.schedule_time_us > until_us:
                return
            if tag is None or task.tag == tag:
                yield _copy_task(task)

    def oldest_waiting(self, queue: Queue) -> tuple[int, str] | None:
        found = self._waiting_sorted(queue.storage_id)
        return (found[0].schedule_time_us, found[0].tag) if found else None

    def first_scheduled(self, queue: Queue) -> int | None:
        through = self.counters(queue).promoted_through_us
        later = [t.schedule_time_us for t in self._waiting_sorted(queue.storage_id) if t.schedule_time_us > through]
        return later[0] if later else None

    def _lease_entries(self) -> list[tuple[int, int, str]]:
        live = [
            (task.lease_expire_us, s, t)
            for (s, t), task in self.tasks_by_key.items()
            if task.stage is Stage.LEASED
        ]
        return sorted(live)

    def expired_leases(self, until_us: int, limit: int) -> list[LeaseEntry]:
        return [LeaseEntry(*entry) for entry in self._lease_entries() if entry[0] <= until_us][:limit]

    def leases(self, queue: Queue, limit: int) -> list[LeaseEntry]:
        return [LeaseEntry(*entry) for entry in self._lease_entries() if entry[1] == queue.storage_id][:limit]

    def next_lease_expiry(self) -> int | None:
        entries = self._lease_entries()
        return entries[0][0] if entries else None

    def _expiry_list(self) -> list[tuple[int, int, int, str]]:
        failed = [
            (task.retain_until_us, ExpiryKind.FAILED_TASK.value, s, t)
            for (s, t), task in self.tasks_by_key.items()
            if task.stage is Stage.FAILED
        ]
        return sorted(list(self.expiry_entries) + failed)

    def expiries(self, until_us: int, limit: int) -> list[Expiry]:
        return [
            Expiry(e, ExpiryKind(kind), s, key) for (e, kind, s, key) in self._expiry_list() if e <= until_us
        ][:limit]

    def next_expiry(self) -> int | None:
        entries = self._expiry_list()
        return entries[0][0] if entries else None

    def tombstone(self, queue: Queue, task_id: str) -> int | None:
        return self.tombstones.get((queue.storage_id, task_id))

    def request(self, queue: Queue, request_id: str, now_us: int) -> RequestRecord | None:
        found = self.requests.get((queue.storage_id, request_id))
        if found is None or found[1] < now_us // REQUEST_HOUR_US - 1:
            return None
        return found[0]

    def counters(self, queue: Queue) -> Counters:
        counters = self.counters_by_id.get(queue.storage_id)
        return dataclasses.replace(counters) if counters else Counters()

    def begin(self) -> MemoryTxn:
        return MemoryTxn(self)

    def apply(self, txn: MemoryTxn) -> None:
        for operation in txn.operations:
            operation()

    def sync(self) -> None:
        pass

    def maintain(self) -> None:
        pass

    def close(self) -> None:
        pass


class MemoryTxn:
    """Operations recorded as closures and run in order by `MemoryStore.apply`."""

    def __init__(self, store: MemoryStore) -> None:
        self._store = store
        self.operations: list = []
        #: storage id -> the promotion boundary as this transaction leaves it.
        self._promoted_through: dict[int, int] = {}

    def put_queue(self, queue: Queue) -> None:
        store = self._store
        if queue.storage_id == 0:
            # Assigned now so the caller sees it; counted as used only when applied.
            queue.storage_id = store.next_storage_id + sum(1 for _ in self._pending_new())
            created = queue.create_time_us
            sid = queue.storage_id

            def create() -> None:
                store.next_storage_id = max(store.next_storage_id, sid + 1)
                store.counters_by_id[sid] = Counters(promoted_through_us=created)

            create.new_queue = True  # type: ignore[attr-defined]
            self.operations.append(create)
        snapshot = _copy_queue(queue)
        self.operations.append(lambda: store.queues_by_id.__setitem__(snapshot.queue_id, snapshot))

    def _pending_new(self):
        return (op for op in self.operations if getattr(op, "new_queue", False))

    def delete_queue(self, queue: Queue) -> None:
        store = self._store
        sid = queue.storage_id

        def delete() -> None:
            store.queues_by_id.pop(queue.queue_id, None)
            store.counters_by_id.pop(sid, None)
            for key in [k for k in store.tasks_by_key if k[0] == sid]:
                task = store.tasks_by_key.pop(key)
                if task.stage is Stage.FAILED:
                    # Its expiry entry outlives it, as in the RocksDB engine: delete_expiry
                    # removes it.
                    store.expiry_entries.add((task.retain_until_us, ExpiryKind.FAILED_TASK.value, sid, task.task_id))
            for table in (store.tombstones, store.requests):
                for key in [k for k in table if k[0] == sid]:
                    del table[key]

        self.operations.append(delete)

    def _adjust(self, queue: Queue, task: Task, step: int) -> None:
        counters = self._store.counters_by_id.setdefault(queue.storage_id, Counters())
        if task.stage is Stage.WAITING:
            if task.schedule_time_us <= counters.promoted_through_us:
                counters.ready += step
            else:
                counters.scheduled += step
        elif task.stage is Stage.LEASED:
            counters.leased += step
        else:
            counters.failed += step

    def put_task(self, queue: Queue, task: Task, previous: Task | None) -> None:
        store = self._store
        snapshot = _copy_task(task)

        def put() -> None:
            if previous is not None:
                self._adjust(queue, previous, -1)
            self._adjust(queue, snapshot, +1)
            store.tasks_by_key[(queue.storage_id, snapshot.task_id)] = snapshot

        self.operations.append(put)

    def delete_task(self, queue: Queue, task: Task) -> None:
        store = self._store

        def delete() -> None:
            self._adjust(queue, task, -1)
            store.tasks_by_key.pop((queue.storage_id, task.task_id), None)

        self.operations.append(delete)

    def put_tombstone(self, queue: Queue, task_id: str, expire_us: int) -> None:
        store = self._store
        key = (queue.storage_id, task_id)

        def put() -> None:
            old = store.tombstones.get(key)
            if old is not None:
                store.expiry_entries.discard((old, ExpiryKind.TOMBSTONE.value, *key))
            store.tombstones[key] = expire_us
            store.expiry_entries.add((expire_us, ExpiryKind.TOMBSTONE.value, *key))

        self.operations.append(put)

    def put_request(self, queue: Queue, request_id: str, record: RequestRecord) -> None:
        store = self._store
        hour = record.create_time_us // REQUEST_HOUR_US
        self.operations.append(lambda: store.requests.__setitem__((queue.storage_id, request_id), (record, hour)))

    def forget_requests(self, queue: Queue, now_us: int) -> None:
        store = self._store
        keep_from = now_us // REQUEST_HOUR_US - 1

        def forget() -> None:
            for key in [k for k, (_, hour) in store.requests.items() if k[0] == queue.storage_id and hour < keep_from]:
                del store.requests[key]

        self.operations.append(forget)

    def delete_expiry(self, entry: Expiry) -> None:
        store = self._store
        key = (entry.storage_id, entry.key)

        def delete() -> None:
            store.expiry_entries.discard((entry.expire_us, entry.kind.value, *key))
            if entry.kind is ExpiryKind.TOMBSTONE and store.tombstones.get(key) == entry.expire_us:
                del store.tombstones[key]

        self.operations.append(delete)

    def forget_lease(self, entry: LeaseEntry) -> None:
        # Every lease entry here is derived from a LEASED task, so there is never a stray one.
        pass

    def promote(self, queue: Queue, until_us: int) -> int:
        store = self._store
        current = store.counters_by_id.get(queue.storage_id, Counters())
        # A promotion recorded earlier in this transaction has moved the boundary already.
        through = self._promoted_through.get(queue.storage_id, current.promoted_through_us)
        if until_us <= through:
            return 0
        moved = sum(
            1
            for (s, _), task in store.tasks_by_key.items()
            if s == queue.storage_id and task.stage is Stage.WAITING and through < task.schedule_time_us <= until_us
        )
        self._promoted_through[queue.storage_id] = until_us

        def promote() -> None:
            counters = store.counters_by_id.setdefault(queue.storage_id, Counters())
            counters.scheduled -= moved
            counters.ready += moved
            counters.promoted_through_us = until_us

        self.operations.append(promote)
        return moved

