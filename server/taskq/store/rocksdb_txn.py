"""The RocksDB engine's transaction: one WriteBatch, an overlay that lets its point reads see
its own writes, and what the store's caches learn when it lands (counters, token buckets, new
and deleted queues, the scan heads of the index buckets it touches)."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

import rocksdict

from taskq.core.model import (
    Counters,
    Expiry,
    ExpiryKind,
    LeaseEntry,
    Promotion,
    Queue,
    QueueType,
    RequestRecord,
    Stage,
    Task,
    TokenState,
)
from taskq.store import keys
from taskq.store.records import encode_queue, encode_request
from taskq.store.rocksdb_scan import keys_between
from taskq.store.scans import StoreScans
from taskq.store.task_record import encode_task

if TYPE_CHECKING:
    from taskq.store.rocksdb import RocksStore


class RocksTxn(StoreScans):
    """One atomic change: a WriteBatch plus an overlay of what it wrote."""

    _store: RocksStore

    def __init__(self, store: RocksStore) -> None:
        self._store = store
        self.batch = rocksdict.WriteBatch(raw_mode=True)
        self._written = False
        #: storage id -> the queue's counters as this transaction leaves them.
        self.counter_changes: dict[int, Counters] = {}
        #: storage id -> the token bucket as this transaction leaves it.
        self.bucket_changes: dict[int, TokenState] = {}
        #: queue id -> the queue as written, or None when deleted.
        self.queue_changes: dict[str, Queue | None] = {}
        self.deleted_storage_ids: set[int] = set()
        self.next_storage_id = store._next_storage_id
        #: (storage id, task id) -> the task as written, or None when deleted.
        self._tasks: dict[tuple[int, str], Task | None] = {}
        self._tombstones: dict[tuple[int, str], int] = {}
        self._requests: dict[tuple[int, str], RequestRecord] = {}
        self._acks: dict[tuple[int, str], str] = {}
        #: (hour, storage id) pairs whose J key this transaction writes or deletes.
        self.new_hours: set[tuple[int, int]] = set()
        self.forgotten_hours: set[tuple[int, int]] = set()
        #: (added, bucket, key) of index keys put and deleted, in order, to keep the scan heads
        #: right.
        self.index_writes: list[tuple[bool, bytes, bytes]] = []

    def written(self) -> bool:
        return self._written

    # Reads: point reads see this transaction's writes; scans read the store ----------------

    def queue(self, queue_id: str) -> Queue | None:
        if queue_id in self.queue_changes:
            queue = self.queue_changes[queue_id]
            return copy_queue(queue) if queue is not None else None
        return self._store.queue(queue_id)

    def queue_by_storage_id(self, storage_id: int) -> Queue | None:
        if storage_id in self.deleted_storage_ids:
            return None
        for queue in self.queue_changes.values():
            if queue is not None and queue.storage_id == storage_id:
                return copy_queue(queue)
        return self._store.queue_by_storage_id(storage_id)

    def queues(self, after: str, limit: int) -> list[Queue]:
        merged = {queue.queue_id: queue for queue in self._store.queues(after, limit + len(self.queue_changes))}
        for queue_id, queue in self.queue_changes.items():
            if queue_id > after:
                if queue is None:
                    merged.pop(queue_id, None)
                else:
                    merged[queue_id] = copy_queue(queue)
        return [merged[queue_id] for queue_id in sorted(merged)[:limit]]

    def purging_queues(self) -> list[Queue]:
        merged = {queue.queue_id: queue for queue in self._store.purging_queues()}
        for queue_id, queue in self.queue_changes.items():
            merged.pop(queue_id, None)
            if queue is not None and queue.purging:
                merged[queue_id] = copy_queue(queue)
        return list(merged.values())

    def dead_letter_referrers(self, queue_id: str) -> list[str]:
        return sorted(queue.queue_id for queue in self.queues("", 2**31) if queue.dead_letter_queue == queue_id)

    def task(self, queue: Queue, task_id: str) -> Task | None:
        if queue.storage_id in self.deleted_storage_ids:
            return None
        key = (queue.storage_id, task_id)
        if key in self._tasks:
            task = self._tasks[key]
            return task.copy() if task is not None else None
        return self._store.task(queue, task_id)

    def counters(self, queue: Queue) -> Counters:
        if queue.storage_id in self.deleted_storage_ids:
            return Counters()
        counters = self.counter_changes.get(queue.storage_id)
        return copy_counters(counters) if counters is not None else self._store.counters(queue)

    def bucket(self, queue: Queue) -> TokenState | None:
        if queue.storage_id in self.deleted_storage_ids:
            return None
        state = self.bucket_changes.get(queue.storage_id)
        return TokenState(state.tokens, state.updated_us) if state is not None else self._store.bucket(queue)

    def tombstone(self, queue: Queue, task_id: str) -> int | None:
        if queue.storage_id in self.deleted_storage_ids:
            return None
        key = (queue.storage_id, task_id)
        if key in self._tombstones:
            return self._tombstones[key] or None  # 0: deleted in this transaction
        return self._store.tombstone(queue, task_id)

    def request(self, queue: Queue, request_id: str, now_us: int) -> RequestRecord | None:
        if queue.storage_id in self.deleted_storage_ids:
            return None
        record = self._requests.get((queue.storage_id, request_id))
        return record if record is not None else self._store.request(queue, request_id, now_us)

    def acked(self, queue: Queue, task_id: str, now_us: int) -> str | None:
        if queue.storage_id in self.deleted_storage_ids:
            return None
        token = self._acks.get((queue.storage_id, task_id))
        return token if token is not None else self._store.acked(queue, task_id, now_us)











    # Writes -------------------------------------------------------------------------------

    def _counters_of(self, storage_id: int) -> Counters:
        counters = self.counter_changes.get(storage_id)
        if counters is None:
            stored = self._store._counters.get(storage_id)
            counters = copy_counters(stored) if stored is not None else Counters()
            self.counter_changes[storage_id] = counters
        return counters

    def put_queue(self, queue: Queue) -> None:
        self._written = True
        if queue.storage_id == 0:
            queue.storage_id = self.next_storage_id
            self.next_storage_id += 1
            self.counter_changes[queue.storage_id] = Counters(promoted_through_us=queue.create_time_us)
        self.batch.put(keys.queue_key(queue.queue_id), encode_queue(queue))
        self.queue_changes[queue.queue_id] = copy_queue(queue)

    def delete_queue(self, queue: Queue) -> None:
        self._written = True
        counters = self._counters_of(queue.storage_id)
        if counters.next_promotion_us:
            self._write(keys.PROMOTION, keys.promotion_key(counters.next_promotion_us, queue.storage_id), b"", False)
        self.batch.delete(keys.queue_key(queue.queue_id))
        for family in keys.PER_QUEUE_FAMILIES:
            start, end = keys.family_range(family, queue.storage_id)
            self.batch.delete_range(start, end)
        self.queue_changes[queue.queue_id] = None
        self.deleted_storage_ids.add(queue.storage_id)
        self.counter_changes.pop(queue.storage_id, None)
        self.bucket_changes.pop(queue.storage_id, None)

    def put_task(self, queue: Queue, task: Task, previous: Task | None) -> None:
        self._written = True
        self.batch.put(keys.record_key(queue.storage_id, task.task_id), encode_task(task))
        self._tasks[(queue.storage_id, task.task_id)] = task.copy()
        if previous is not None:
            if _same_index_position(previous, task):
                return
            self._index(queue, previous, add=False)
        self._index(queue, task, add=True)

    def delete_task(self, queue: Queue, task: Task) -> None:
        self._written = True
        self.batch.delete(keys.record_key(queue.storage_id, task.task_id))
        self._tasks[(queue.storage_id, task.task_id)] = None
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
            if counters.counts_as_ready(task.schedule_time_us, task.task_id):
                counters.ready += step
            else:
                counters.scheduled += step
                if add and (not counters.next_promotion_us or task.schedule_time_us < counters.next_promotion_us):
                    self._set_promotion(storage_id, counters, task.schedule_time_us)
        elif task.stage is Stage.LEASED:
            self._write(keys.LEASE, keys.lease_key(task.lease_expire_us, storage_id, task.task_id), b"", add)
            counters.leased += step
        else:
            key = keys.expiry_key(task.retain_until_us, ExpiryKind.FAILED_TASK, storage_id, task.task_id)
            self._write(keys.EXPIRY, key, b"", add)
            counters.failed += step

    def _set_promotion(self, storage_id: int, counters: Counters, due_us: int) -> None:
        """Moves the queue's promotion-index entry to `due_us` (0: removes it)."""
        if counters.next_promotion_us == due_us:
            return
        if counters.next_promotion_us:
            self._write(keys.PROMOTION, keys.promotion_key(counters.next_promotion_us, storage_id), b"", False)
        if due_us:
            self._write(keys.PROMOTION, keys.promotion_key(due_us, storage_id), b"", True)
        counters.next_promotion_us = due_us

    def _write(self, bucket: bytes, key: bytes, value: bytes, add: bool) -> None:
        self._written = True
        if add:
            self.batch.put(key, value)
        else:
            self.batch.delete(key)
        self.index_writes.append((add, bucket, key))

    def put_tombstone(self, queue: Queue, task_id: str, expire_us: int) -> None:
        previous = self.tombstone(queue, task_id)
        if previous is not None:
            old = keys.expiry_key(previous, ExpiryKind.TOMBSTONE, queue.storage_id, task_id)
            self._write(keys.EXPIRY, old, b"", False)
        self.batch.put(keys.tombstone_key(queue.storage_id, task_id), keys.u64(expire_us))
        self._tombstones[(queue.storage_id, task_id)] = expire_us
        self._write(keys.EXPIRY, keys.expiry_key(expire_us, ExpiryKind.TOMBSTONE, queue.storage_id, task_id), b"", True)

    def _note_hour(self, storage_id: int, hour: int) -> None:
        pair = (hour, storage_id)
        if pair not in self._store.known_hours and pair not in self.new_hours:
            # Through _write: a key below the hours index's scan head must move the head.
            self._write(keys.HOURS, keys.hours_key(hour, storage_id), b"", True)
            self.new_hours.add(pair)

    def put_request(self, queue: Queue, request_id: str, record: RequestRecord) -> None:
        self._written = True
        hour = keys.request_bucket(record.create_time_us)
        self.batch.put(keys.request_key(queue.storage_id, hour, request_id), encode_request(record))
        self._requests[(queue.storage_id, request_id)] = record
        self._note_hour(queue.storage_id, hour)

    def put_ack(self, queue: Queue, task_id: str, lease_token: str, now_us: int) -> None:
        self._written = True
        hour = keys.request_bucket(now_us)
        self.batch.put(keys.ack_key(queue.storage_id, hour, task_id), lease_token.encode())
        self._acks[(queue.storage_id, task_id)] = lease_token
        self._note_hour(queue.storage_id, hour)

    def forget_hour(self, hour: int, storage_id: int) -> None:
        self._written = True
        for family in (keys.REQUEST, keys.ACK):
            self.batch.delete_range(*keys.hour_range(family, storage_id, hour))
        self._write(keys.HOURS, keys.hours_key(hour, storage_id), b"", False)
        self.forgotten_hours.add((hour, storage_id))

    def delete_expiry(self, entry: Expiry) -> None:
        self._write(
            keys.EXPIRY, keys.expiry_key(entry.expire_us, entry.kind, entry.storage_id, entry.key), b"", False
        )
        if entry.kind is ExpiryKind.TOMBSTONE:
            key = (entry.storage_id, entry.key)
            stored = self._tombstones.get(key)
            if stored is None:
                data = self._store._get(keys.tombstone_key(entry.storage_id, entry.key))
                stored = keys.read_u64(data) if data is not None else None
            if stored == entry.expire_us:
                self.batch.delete(keys.tombstone_key(entry.storage_id, entry.key))
                self._tombstones[key] = 0  # deleted: this transaction's reads must not see it

    def forget_lease(self, entry: LeaseEntry) -> None:
        self._write(keys.LEASE, keys.lease_key(entry.expire_us, entry.storage_id, entry.task_id), b"", False)

    def promote(self, queue: Queue, until_us: int, limit: int) -> bool:
        storage_id = queue.storage_id
        counters = self._counters_of(storage_id)
        bucket = keys.eta_prefix(storage_id)
        if counters.promoted_through_id:
            after = keys.eta_key(storage_id, counters.promoted_through_us, counters.promoted_through_id) + b"\x00"
        else:
            after = bucket + keys.u64(counters.promoted_through_us + 1)
        if until_us < counters.promoted_through_us or (
            until_us == counters.promoted_through_us and not counters.promoted_through_id
        ):
            # The boundary is there already; an index entry due by now is stale: move it on.
            if counters.next_promotion_us and counters.next_promotion_us <= until_us:
                self._set_promotion(storage_id, counters, self._first_eta(bucket, after))
                self._written = True
            return True
        lower = max(after, self._store._heads.get(bucket, bucket))
        upper = bucket + keys.u64(until_us + 1)
        moved = 0
        last = b""
        done = True
        if lower < upper:
            for key in keys_between(self._store._db, lower, upper, self._store.faults):
                if moved >= limit:
                    done = False
                    break
                moved += 1
                last = key
        counters.scheduled -= moved
        counters.ready += moved
        if done:
            counters.promoted_through_us, counters.promoted_through_id = until_us, ""
            self._set_promotion(storage_id, counters, self._first_eta(bucket, upper))
        else:
            if last:  # (a limit of 0 leaves the boundary where it is)
                counters.promoted_through_us, counters.promoted_through_id = keys.parse_eta_key(last)
            self._set_promotion(storage_id, counters, until_us)
        self._written = True
        return done

    def _first_eta(self, bucket: bytes, start: bytes) -> int:
        """The schedule time of the first waiting task at or after `start`, or 0."""
        lower = max(start, self._store._heads.get(bucket, bucket))
        for key in keys_between(self._store._db, lower, keys.prefix_end(bucket), self._store.faults):
            return keys.parse_eta_key(key)[0]
        return 0

    def forget_promotion(self, entry: Promotion) -> None:
        counters = self.counter_changes.get(entry.storage_id) or self._store._counters.get(entry.storage_id)
        if counters is not None and counters.next_promotion_us == entry.due_us:
            counters = self._counters_of(entry.storage_id)
            counters.next_promotion_us = 0
        self._write(keys.PROMOTION, keys.promotion_key(entry.due_us, entry.storage_id), b"", False)

    def put_bucket(self, queue: Queue, state: TokenState) -> None:
        self._written = True
        self.bucket_changes[queue.storage_id] = TokenState(state.tokens, state.updated_us)


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
