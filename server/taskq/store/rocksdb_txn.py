"""The RocksDB engine's transaction: one WriteBatch, plus what the store's caches learn when
it lands (counters, new and deleted queues, the scan heads of the index buckets it touches)."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

import rocksdict

from taskq.core.model import Counters, Expiry, ExpiryKind, LeaseEntry, Queue, QueueType, RequestRecord, Stage, Task
from taskq.store import keys
from taskq.store.records import encode_queue, encode_request
from taskq.store.rocksdb_scan import keys_between
from taskq.store.task_record import encode_task

if TYPE_CHECKING:
    from taskq.store.rocksdb import RocksStore


class RocksTxn:
    """One atomic change: a WriteBatch plus what the store's caches learn when it lands."""

    def __init__(self, store: RocksStore) -> None:
        self._store = store
        self.batch = rocksdict.WriteBatch(raw_mode=True)
        #: storage id -> the queue's counters as this transaction leaves them.
        self.counters: dict[int, Counters] = {}
        self.put_queues: list[Queue] = []
        self.deleted_queues: list[Queue] = []
        self.deleted_storage_ids: set[int] = set()
        self.next_storage_id = store._next_storage_id
        #: (added, bucket, key) of index keys put and deleted, in order, to keep the scan
        #: heads right.
        #: storage id -> first request-id hour kept after this transaction's forget_requests.
        self.requests_kept_from: dict[int, int] = {}
        self.index_writes: list[tuple[bool, bytes, bytes]] = []

    def _counters_of(self, storage_id: int) -> Counters:
        counters = self.counters.get(storage_id)
        if counters is None:
            stored = self._store._counters.get(storage_id)
            counters = copy_counters(stored) if stored is not None else Counters()
            self.counters[storage_id] = counters
        return counters

    def put_queue(self, queue: Queue) -> None:
        if queue.storage_id == 0:
            queue.storage_id = self.next_storage_id
            self.next_storage_id += 1
            self.counters[queue.storage_id] = Counters(promoted_through_us=queue.create_time_us)
        self.batch.put(keys.queue_key(queue.queue_id), encode_queue(queue))
        self.put_queues.append(copy_queue(queue))

    def delete_queue(self, queue: Queue) -> None:
        self.batch.delete(keys.queue_key(queue.queue_id))
        for family in keys.PER_QUEUE_FAMILIES:
            start, end = keys.family_range(family, queue.storage_id)
            self.batch.delete_range(start, end)
        self.deleted_queues.append(queue)
        self.deleted_storage_ids.add(queue.storage_id)

    def put_task(self, queue: Queue, task: Task, previous: Task | None) -> None:
        self.batch.put(keys.record_key(queue.storage_id, task.task_id), encode_task(task))
        if previous is not None:
            if _same_index_position(previous, task):
                return
            self._index(queue, previous, add=False)
        self._index(queue, task, add=True)

    def delete_task(self, queue: Queue, task: Task) -> None:
        self.batch.delete(keys.record_key(queue.storage_id, task.task_id))
        self._index(queue, task, add=False)

    def _index(self, queue: Queue, task: Task, *, add: bool) -> None:
        storage_id = queue.storage_id
        counters = self._counters_of(storage_id)
        step = 1 if add else -1
        if task.stage is Stage.WAITING:
            eta_key = keys.eta_key(storage_id, task.schedule_time_us, task.task_id)
            self._write(eta_key[:5], eta_key, task.tag.encode(), add)
            if queue.type is QueueType.PULL:
                bucket = keys.tag_prefix(storage_id, task.tag)
                self._write(bucket, bucket + eta_key[5:], b"", add)
            if task.schedule_time_us <= counters.promoted_through_us:
                counters.ready += step
            else:
                counters.scheduled += step
        elif task.stage is Stage.LEASED:
            key = keys.lease_key(task.lease_expire_us, storage_id, task.task_id)
            self._write(key[:5], key, b"", add)
            counters.leased += step
        else:
            key = keys.expiry_key(task.retain_until_us, ExpiryKind.FAILED_TASK, storage_id, task.task_id)
            self._write(keys.EXPIRY, key, b"", add)
            counters.failed += step

    def _write(self, bucket: bytes, key: bytes, value: bytes, add: bool) -> None:
        if add:
            self.batch.put(key, value)
        else:
            self.batch.delete(key)
        self.index_writes.append((add, bucket, key))

    def put_tombstone(self, queue: Queue, task_id: str, expire_us: int) -> None:
        key = keys.tombstone_key(queue.storage_id, task_id)
        previous = self._store._get(key)
        if previous is not None:
            old = keys.expiry_key(keys.read_u64(previous), ExpiryKind.TOMBSTONE, queue.storage_id, task_id)
            self._write(keys.EXPIRY, old, b"", False)
        self.batch.put(key, keys.u64(expire_us))
        self._write(keys.EXPIRY, keys.expiry_key(expire_us, ExpiryKind.TOMBSTONE, queue.storage_id, task_id), b"", True)

    def put_request(self, queue: Queue, request_id: str, record: RequestRecord) -> None:
        bucket = keys.request_bucket(record.create_time_us)
        self.batch.put(keys.request_key(queue.storage_id, bucket, request_id), encode_request(record))

    def forget_requests(self, queue: Queue, now_us: int) -> None:
        keep_from = keys.request_bucket(now_us) - 1
        if keep_from <= 0 or self._store.requests_kept_from.get(queue.storage_id) == keep_from:
            return  # already done this hour: no second range tombstone
        self.batch.delete_range(
            keys.request_bucket_prefix(queue.storage_id, 0), keys.request_bucket_prefix(queue.storage_id, keep_from)
        )
        self.requests_kept_from[queue.storage_id] = keep_from

    def delete_expiry(self, entry: Expiry) -> None:
        self._write(
            keys.EXPIRY, keys.expiry_key(entry.expire_us, entry.kind, entry.storage_id, entry.key), b"", False
        )
        if entry.kind is ExpiryKind.TOMBSTONE:
            key = keys.tombstone_key(entry.storage_id, entry.key)
            stored = self._store._get(key)
            if stored is not None and keys.read_u64(stored) == entry.expire_us:
                self.batch.delete(key)

    def forget_lease(self, entry: LeaseEntry) -> None:
        """Deletes a lease-index entry that names no leased task."""
        key = keys.lease_key(entry.expire_us, entry.storage_id, entry.task_id)
        self._write(key[:5], key, b"", False)

    def promote(self, queue: Queue, until_us: int) -> int:
        counters = self._counters_of(queue.storage_id)
        if until_us <= counters.promoted_through_us:
            return 0
        bucket = keys.eta_prefix(queue.storage_id)
        lower = max(bucket + keys.u64(counters.promoted_through_us + 1), self._store._heads.get(bucket, bucket))
        upper = bucket + keys.u64(until_us + 1)
        moved = 0
        if lower < upper:
            for _ in keys_between(self._store._db, lower, upper):
                moved += 1
        counters.scheduled -= moved
        counters.ready += moved
        counters.promoted_through_us = until_us
        return moved


def _same_index_position(previous: Task, task: Task) -> bool:
    if previous.stage is not task.stage:
        return False
    if task.stage is Stage.WAITING:
        return previous.schedule_time_us == task.schedule_time_us and previous.tag == task.tag
    if task.stage is Stage.LEASED:
        return previous.lease_expire_us == task.lease_expire_us
    return previous.retain_until_us == task.retain_until_us


def copy_queue(queue: Queue) -> Queue:
    return dataclasses.replace(queue, retry=dataclasses.replace(queue.retry))


def copy_counters(counters: Counters) -> Counters:
    return dataclasses.replace(counters)
