"""The RocksDB engine (rocksdict). With rocksdb_txn.py and rocksdb_scan.py, the only modules
that import rocksdict.

One transaction is one WriteBatch: the task record, its index entries and the queue's
counters change together or not at all. Writes go to the WAL without sync; `sync` fsyncs the
WAL once for everything applied before it (group commit, driven by store/commit.py).

Start-up reads only queue configurations and counters. Scans start at a remembered "head"
per index bucket (the lowest key that may be live), so the tombstones that consumed tasks
leave at the front of an index are not walked again and again; consumed ranges are
compacted away in the background (`maintain`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator

import rocksdict

from taskq.core.model import Counters, Expiry, ExpiryKind, LeaseEntry, Queue, RequestRecord, Task
from taskq.store import keys
from taskq.store.base import StoreError, StoreLocked
from taskq.store.records import decode_counters, decode_queue, decode_request, encode_counters
from taskq.store.rocksdb_scan import items, keys_between
from taskq.store.rocksdb_txn import RocksTxn, copy_counters, copy_queue
from taskq.store.task_record import decode_task

log = logging.getLogger(__name__)

#: Deletions in one index bucket after which its consumed range is compacted.
COMPACT_AFTER_DELETES = 50_000
#: Tag buckets whose heads are remembered; past this the memory is simply dropped.
MAX_TAG_HEADS = 100_000


class RocksStore:
    """A Store on a RocksDB directory. See store/base.py for the contract."""

    def __init__(self, path: str) -> None:
        options = rocksdict.Options(raw_mode=True)
        options.create_if_missing(True)
        options.set_wal_recovery_mode(rocksdict.DBRecoveryMode.point_in_time())
        options.set_max_background_jobs(2)
        options.set_write_buffer_size(64 * 1024 * 1024)
        self._path = path
        try:
            self._db = rocksdict.Rdict(path, options)
        except Exception as error:  # rocksdict raises bare Exceptions
            text = str(error)
            if "lock" in text.lower():
                raise StoreLocked(
                    f"the data directory {path} is in use by another taskq server ({text})"
                ) from error
            raise StoreError(f"cannot open the data directory {path}: {text}") from error
        try:
            self._check_schema()
        except BaseException:
            self._db.close()  # a refused directory must not stay locked by this process
            raise
        self._queues: dict[str, Queue] = {}
        self._by_storage_id: dict[int, Queue] = {}
        self._counters: dict[int, Counters] = {}
        for _, value in items(self._db, keys.QUEUE, keys.prefix_end(keys.QUEUE)):
            queue = decode_queue(value)
            self._queues[queue.queue_id] = queue
            self._by_storage_id[queue.storage_id] = queue
        for key, value in items(self._db, keys.COUNTERS, keys.prefix_end(keys.COUNTERS)):
            self._counters[int.from_bytes(key[1:5], "big")] = decode_counters(value)
        next_id = self._db.get(keys.META_NEXT_STORAGE_ID)
        self._next_storage_id = keys.read_u64(next_id) if next_id is not None else 1
        #: bucket prefix -> lowest key that may be live in it.
        self._heads: dict[bytes, bytes] = {}
        self._tag_heads: dict[bytes, bytes] = {}
        #: bucket prefix -> deletions since it was last compacted.
        self._deletes: dict[bytes, int] = {}
        self._compact_ranges: list[tuple[bytes, bytes]] = []
        #: storage id -> the first request-id hour still kept, once older ones were deleted.
        self.requests_kept_from: dict[int, int] = {}
        self._maintain_lock = threading.Lock()
        self._closed = False

    def _check_schema(self) -> None:
        stored = self._db.get(keys.META_SCHEMA_VERSION)
        if stored is None:
            if self._db.get(keys.META_NEXT_STORAGE_ID) is not None:
                raise StoreError(f"{self._path} holds data but no schema version")
            self._db.put(keys.META_SCHEMA_VERSION, keys.u64(keys.KEY_SCHEMA_VERSION))
            self._db.flush_wal(True)
            return
        version = keys.read_u64(stored)
        if version != keys.KEY_SCHEMA_VERSION:
            raise StoreError(
                f"{self._path} uses key schema version {version}; this server reads version "
                f"{keys.KEY_SCHEMA_VERSION} and has no migration from it (see store/keys.py)"
            )

    # Queues -------------------------------------------------------------------------------

    def queue(self, queue_id: str) -> Queue | None:
        queue = self._queues.get(queue_id)
        return copy_queue(queue) if queue is not None else None

    def queue_by_storage_id(self, storage_id: int) -> Queue | None:
        queue = self._by_storage_id.get(storage_id)
        return copy_queue(queue) if queue is not None else None

    def queues(self, after: str, limit: int) -> list[Queue]:
        ids = sorted(queue_id for queue_id in self._queues if queue_id > after)[:limit]
        return [copy_queue(self._queues[queue_id]) for queue_id in ids]

    # Tasks --------------------------------------------------------------------------------

    def task(self, queue: Queue, task_id: str) -> Task | None:
        data = self._get(keys.record_key(queue.storage_id, task_id))
        return decode_task(task_id, data) if data is not None else None

    def tasks(self, queue: Queue, after: str, limit: int) -> list[Task]:
        prefix = keys.record_prefix(queue.storage_id)
        start = prefix + after.encode() + b"\x00" if after else prefix
        result: list[Task] = []
        if limit <= 0:
            return result
        for key, value in items(self._db, start, keys.prefix_end(prefix)):
            result.append(decode_task(keys.task_id_of_record(key), value))
            if len(result) >= limit:
                break
        return result

    def waiting(self, queue: Queue, until_us: int, tag: str | None = None) -> Iterator[Task]:
        storage_id = queue.storage_id
        if tag is None:
            bucket = keys.eta_prefix(storage_id)
            heads = self._heads
            parse = keys.parse_eta_key
        else:
            bucket = keys.tag_prefix(storage_id, tag)
            heads = self._tag_heads
            parse = keys.parse_tag_key
        lower = heads.get(bucket, bucket)
        upper = bucket + keys.u64(until_us + 1)
        if lower >= upper:
            return
        first = True
        for key in keys_between(self._db, lower, upper):
            if first:
                heads[bucket] = key
                first = False
            _, task_id = parse(key)
            data = self._get(keys.record_key(storage_id, task_id))
            if data is None:
                log.error("index entry %r has no task record; skipping it", key)
            else:
                yield decode_task(task_id, data)

    def oldest_waiting(self, queue: Queue) -> tuple[int, str] | None:
        bucket = keys.eta_prefix(queue.storage_id)
        lower = self._heads.get(bucket, bucket)
        end = keys.prefix_end(bucket)
        for key, value in items(self._db, lower, end):
            self._heads[bucket] = key
            eta_us, _ = keys.parse_eta_key(key)
            return eta_us, value.decode()
        return None

    def first_scheduled(self, queue: Queue) -> int | None:
        counters = self._counters.get(queue.storage_id)
        if counters is None or counters.scheduled <= 0:
            return None
        bucket = keys.eta_prefix(queue.storage_id)
        lower = max(bucket + keys.u64(counters.promoted_through_us + 1), self._heads.get(bucket, bucket))
        for key in keys_between(self._db, lower, keys.prefix_end(bucket)):
            return keys.parse_eta_key(key)[0]
        return None

    def expired_leases(self, until_us: int, limit: int) -> list[LeaseEntry]:
        # Each queue's leases are in expiry order; merge the due ones of every queue.
        found: list[LeaseEntry] = []
        for storage_id in list(self._by_storage_id):
            for key in self._scan_time_family(keys.lease_prefix(storage_id), until_us, limit):
                found.append(LeaseEntry(*keys.parse_lease_key(key)))
        found.sort(key=lambda entry: (entry.expire_us, entry.storage_id, entry.task_id))
        return found[: max(limit, 0)]

    def leases(self, queue: Queue, limit: int) -> list[LeaseEntry]:
        bucket = keys.lease_prefix(queue.storage_id)
        result = []
        if limit <= 0:
            return result
        for key in keys_between(self._db, self._heads.get(bucket, bucket), keys.prefix_end(bucket)):
            result.append(LeaseEntry(*keys.parse_lease_key(key)))
            if len(result) >= limit:
                break
        return result

    def next_lease_expiry(self) -> int | None:
        earliest = None
        for storage_id in list(self._by_storage_id):
            key = self._first_in_time_family(keys.lease_prefix(storage_id))
            if key is not None:
                expire_us = keys.parse_lease_key(key)[0]
                earliest = expire_us if earliest is None else min(earliest, expire_us)
        return earliest

    def expiries(self, until_us: int, limit: int) -> list[Expiry]:
        result = []
        for key in self._scan_time_family(keys.EXPIRY, until_us, limit):
            expire_us, kind, storage_id, item = keys.parse_expiry_key(key)
            result.append(Expiry(expire_us, ExpiryKind(kind), storage_id, item))
        return result

    def next_expiry(self) -> int | None:
        key = self._first_in_time_family(keys.EXPIRY)
        return keys.parse_expiry_key(key)[0] if key is not None else None

    def _scan_time_family(self, family: bytes, until_us: int, limit: int) -> list[bytes]:
        lower = self._heads.get(family, family)
        upper = keys.time_prefix(family, until_us + 1)
        if lower >= upper or limit <= 0:
            return []
        found = []
        for key in keys_between(self._db, lower, upper):
            if not found:
                self._heads[family] = key
            found.append(key)
            if len(found) >= limit:
                break
        return found

    def _first_in_time_family(self, family: bytes) -> bytes | None:
        lower = self._heads.get(family, family)
        for key in keys_between(self._db, lower, keys.prefix_end(family)):
            self._heads[family] = key
            return key
        return None

    def tombstone(self, queue: Queue, task_id: str) -> int | None:
        data = self._get(keys.tombstone_key(queue.storage_id, task_id))
        return keys.read_u64(data) if data is not None else None

    def request(self, queue: Queue, request_id: str, now_us: int) -> RequestRecord | None:
        bucket = keys.request_bucket(now_us)
        for hour in (bucket, bucket - 1) if bucket else (0,):
            data = self._get(keys.request_key(queue.storage_id, hour, request_id))
            if data is not None:
                return decode_request(data)
        return None

    def counters(self, queue: Queue) -> Counters:
        counters = self._counters.get(queue.storage_id)
        return copy_counters(counters) if counters is not None else Counters()

    # Writes -------------------------------------------------------------------------------

    def begin(self) -> RocksTxn:
        return RocksTxn(self)

    def apply(self, txn: RocksTxn) -> None:
        self._check_open()
        batch = txn.batch
        for storage_id, counters in txn.counters.items():
            if storage_id not in txn.deleted_storage_ids:
                batch.put(keys.counters_key(storage_id), encode_counters(counters))
        if txn.next_storage_id != self._next_storage_id:
            batch.put(keys.META_NEXT_STORAGE_ID, keys.u64(txn.next_storage_id))
        try:
            self._db.write(batch)
        except Exception as error:
            raise StoreError(f"write failed: {error}") from error
        # The write is in: bring the caches and hints up to date.
        self._next_storage_id = txn.next_storage_id
        for queue in txn.deleted_queues:
            self._queues.pop(queue.queue_id, None)
            self._by_storage_id.pop(queue.storage_id, None)
            self._counters.pop(queue.storage_id, None)
            self._forget_heads(queue.storage_id)
        for queue in txn.put_queues:
            stored = copy_queue(queue)
            self._queues[queue.queue_id] = stored
            self._by_storage_id[queue.storage_id] = stored
        for storage_id, counters in txn.counters.items():
            if storage_id not in txn.deleted_storage_ids:
                self._counters[storage_id] = counters
        self.requests_kept_from.update(txn.requests_kept_from)
        # In the order written: a key deleted and put again in one transaction stays live.
        for added, bucket, key in txn.index_writes:
            heads = self._tag_heads if key[:1] == keys.TAG else self._heads
            if added:
                head = heads.get(bucket)
                if head is not None and key < head:
                    heads[bucket] = key
                continue
            if heads.get(bucket) == key:
                heads[bucket] = key + b"\x00"
            count = self._deletes.get(bucket, 0) + 1
            if count >= COMPACT_AFTER_DELETES:
                self._deletes[bucket] = 0
                self._compact_ranges.append((bucket, heads.get(bucket, key)))
            else:
                self._deletes[bucket] = count
        if len(self._tag_heads) > MAX_TAG_HEADS:
            self._tag_heads.clear()

    def _forget_heads(self, storage_id: int) -> None:
        self._heads.pop(keys.eta_prefix(storage_id), None)
        self._heads.pop(keys.lease_prefix(storage_id), None)
        tag_family = keys.TAG + keys.sid(storage_id)
        for bucket in [bucket for bucket in self._tag_heads if bucket.startswith(tag_family)]:
            del self._tag_heads[bucket]

    def sync(self) -> None:
        self._check_open()
        try:
            self._db.flush_wal(True)
        except Exception as error:
            raise StoreError(f"fsync of the write-ahead log failed: {error}") from error

    def maintain(self) -> None:
        with self._maintain_lock:
            ranges, self._compact_ranges = self._compact_ranges, []
            for start, end in ranges:
                if start < end and not self._closed:
                    self._db.compact_range(start, end)

    def close(self) -> None:
        with self._maintain_lock:
            if self._closed:
                return
            self._closed = True
            try:
                self._db.flush_wal(True)
            finally:
                self._db.close()

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError("the store is closed")

    def _get(self, key: bytes) -> bytes | None:
        try:
            return self._db.get(key)
        except Exception as error:
            raise StoreError(f"read failed: {error}") from error
