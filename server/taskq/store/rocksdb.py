"""The RocksDB engine (rocksdict). With rocksdb_txn.py, rocksdb_scan.py and rocksdb_migrate.py,
the only modules that import rocksdict.

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
import os
import shutil
import threading
import time
from collections.abc import Iterator

import rocksdict

from taskq.core.errors import BackupDestinationExists, BackupFailed
from taskq.core.model import (
    Counters,
    Expiry,
    ExpiryKind,
    LeaseEntry,
    Promotion,
    Queue,
    RequestRecord,
    Task,
    TokenState,
)
from taskq.store import keys
from taskq.store.base import StoreError, StoreLocked, Txn
from taskq.store.faults import Faults
from taskq.store.records import decode_counters, decode_queue, decode_request, encode_counters
from taskq.store.rocksdb_migrate import migrate
from taskq.store.rocksdb_scan import items, keys_between
from taskq.store.rocksdb_txn import RocksTxn, copy_counters, copy_queue
from taskq.store.task_record import decode_task

log = logging.getLogger(__name__)

#: Deletions in one index bucket after which its consumed range is compacted.
COMPACT_AFTER_DELETES = 50_000
#: Tag buckets whose heads are remembered; past this the memory is simply dropped.
MAX_TAG_HEADS = 100_000
#: The memtable size, bytes. Opening a directory after a crash replays the write-ahead log
#: into memtables and may flush them, which needs about this much free disk space.
WRITE_BUFFER_BYTES = 64 * 1024 * 1024


class RocksStore:
    """A Store on a RocksDB directory. See store/base.py for the contract."""

    def __init__(self, path: str, faults: Faults | None = None, write_buffer_bytes: int = WRITE_BUFFER_BYTES) -> None:
        options = rocksdict.Options(raw_mode=True)
        options.create_if_missing(True)
        options.set_wal_recovery_mode(rocksdict.DBRecoveryMode.point_in_time())
        options.set_max_background_jobs(2)
        options.set_write_buffer_size(write_buffer_bytes)
        self._write_buffer_bytes = write_buffer_bytes
        self._path = path
        self.faults = faults or Faults()
        try:
            self._db = rocksdict.Rdict(path, options)
        except Exception as error:  # rocksdict raises bare Exceptions
            raise _open_failure(path, error, write_buffer_bytes) from error
        try:
            self._page_token_key = self._prepare()
        except BaseException:
            self._db.close()  # a refused directory must not stay locked by this process
            raise
        self._queues: dict[str, Queue] = {}
        self._by_storage_id: dict[int, Queue] = {}
        self._counters: dict[int, Counters] = {}
        self._buckets: dict[int, TokenState] = {}
        for _, value in items(self._db, keys.QUEUE, keys.prefix_end(keys.QUEUE)):
            queue = decode_queue(value)
            self._queues[queue.queue_id] = queue
            self._by_storage_id[queue.storage_id] = queue
        for key, value in items(self._db, keys.COUNTERS, keys.prefix_end(keys.COUNTERS)):
            storage_id = int.from_bytes(key[1:5], "big")
            counters, bucket = decode_counters(value)
            self._counters[storage_id] = counters
            if bucket is not None:
                self._buckets[storage_id] = bucket
        next_id = self._db.get(keys.META_NEXT_STORAGE_ID)
        self._next_storage_id = keys.read_u64(next_id) if next_id is not None else 1
        #: bucket prefix -> lowest key that may be live in it.
        self._heads: dict[bytes, bytes] = {}
        self._tag_heads: dict[bytes, bytes] = {}
        #: bucket prefix -> deletions since it was last compacted.
        self._deletes: dict[bytes, int] = {}
        self._compact_ranges: list[tuple[bytes, bytes]] = []
        #: (hour, storage id) pairs known to have their J key written (saves rewriting it).
        self.known_hours: set[tuple[int, int]] = set()
        self._maintain_lock = threading.Lock()
        self._closed = False

    def _prepare(self) -> bytes:
        """Checks (or, in a new directory, writes) the schema version, migrating an older
        layout; returns the page-token key, made on first use."""
        stored = self._db.get(keys.META_SCHEMA_VERSION)
        if stored is None:
            if self._db.get(keys.META_NEXT_STORAGE_ID) is not None:
                raise StoreError(f"{self._path} holds data but no schema version")
            self._db.put(keys.META_SCHEMA_VERSION, keys.u64(keys.KEY_SCHEMA_VERSION))
        else:
            version = keys.read_u64(stored)
            if version != keys.KEY_SCHEMA_VERSION:
                migrate(self._db, self._path, version)
        secret = self._db.get(keys.META_PAGE_TOKEN_KEY)
        if secret is None:
            secret = os.urandom(32)
            self._db.put(keys.META_PAGE_TOKEN_KEY, secret)
        # A durable write proves the directory writable: a database reopened after a failure
        # (a full disk) is not put back in service before it can take writes again.
        self.faults.on_write()
        self.faults.on_sync()
        try:
            self._db.put(keys.META_OPENED, keys.u64(time.time_ns() // 1000))
            self._db.flush_wal(True)
        except Exception as error:
            raise StoreError(f"{self._path} cannot be written: {error}") from error
        return secret

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

    def purging_queues(self) -> list[Queue]:
        return [copy_queue(queue) for queue in self._queues.values() if queue.purging]

    def dead_letter_referrers(self, queue_id: str) -> list[str]:
        return sorted(queue.queue_id for queue in self._queues.values() if queue.dead_letter_queue == queue_id)

    # Tasks --------------------------------------------------------------------------------

    def task(self, queue: Queue, task_id: str) -> Task | None:
        data = self._get(keys.record_key(queue.storage_id, task_id))
        return decode_task(task_id, data) if data is not None else None

    def tasks(self, queue: Queue, after: str, *, payloads: bool = True) -> Iterator[Task]:
        prefix = keys.record_prefix(queue.storage_id)
        start = prefix + after.encode() + b"\x00" if after else prefix
        for key, value in items(self._db, start, keys.prefix_end(prefix), self.faults):
            yield decode_task(keys.task_id_of_record(key), value, payloads)

    def waiting(self, queue: Queue, until_us: int, tag: str | None = None, limit: int = 1000) -> Iterator[Task]:
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
        if lower >= upper or limit <= 0:
            return
        returned = 0
        for key in keys_between(self._db, lower, upper, self.faults):
            if returned == 0:
                heads[bucket] = key
            _, task_id = parse(key)
            data = self._get(keys.record_key(storage_id, task_id))
            if data is None:
                log.error("index entry %r has no task record; skipping it", key)
                continue
            yield decode_task(task_id, data)
            returned += 1
            if returned >= limit:
                return

    def oldest_waiting(self, queue: Queue) -> tuple[int, str] | None:
        bucket = keys.eta_prefix(queue.storage_id)
        lower = self._heads.get(bucket, bucket)
        for key, value in items(self._db, lower, keys.prefix_end(bucket), self.faults):
            self._heads[bucket] = key
            eta_us, _ = keys.parse_eta_key(key)
            return eta_us, value.decode()
        return None

    def counters(self, queue: Queue) -> Counters:
        counters = self._counters.get(queue.storage_id)
        return copy_counters(counters) if counters is not None else Counters()

    def bucket(self, queue: Queue) -> TokenState | None:
        state = self._buckets.get(queue.storage_id)
        return TokenState(state.tokens, state.updated_us) if state is not None else None

    def tombstone(self, queue: Queue, task_id: str) -> int | None:
        data = self._get(keys.tombstone_key(queue.storage_id, task_id))
        return keys.read_u64(data) if data is not None else None

    def request(self, queue: Queue, request_id: str, now_us: int) -> RequestRecord | None:
        for hour in _recent_hours(now_us):
            data = self._get(keys.request_key(queue.storage_id, hour, request_id))
            if data is not None:
                return decode_request(data)
        return None

    def acked(self, queue: Queue, task_id: str, now_us: int) -> str | None:
        for hour in _recent_hours(now_us):
            data = self._get(keys.ack_key(queue.storage_id, hour, task_id))
            if data is not None:
                return data.decode()
        return None

    # Due-time indexes ---------------------------------------------------------------------

    def expired_leases(self, until_us: int, limit: int) -> list[LeaseEntry]:
        found = self._scan_global(keys.LEASE, keys.time_prefix(keys.LEASE, until_us + 1), limit)
        return [LeaseEntry(*keys.parse_lease_key(key)) for key in found]

    def leases(self, after: LeaseEntry | None, limit: int) -> list[LeaseEntry]:
        start = None
        if after is not None:
            start = keys.lease_key(after.expire_us, after.storage_id, after.task_id) + b"\x00"
        found = self._scan_global(keys.LEASE, keys.prefix_end(keys.LEASE), limit, start)
        return [LeaseEntry(*keys.parse_lease_key(key)) for key in found]

    def next_lease_expiry(self) -> int | None:
        found = self._scan_global(keys.LEASE, keys.prefix_end(keys.LEASE), 1)
        return keys.parse_lease_key(found[0])[0] if found else None

    def expiries(self, until_us: int, limit: int) -> list[Expiry]:
        found = self._scan_global(keys.EXPIRY, keys.time_prefix(keys.EXPIRY, until_us + 1), limit)
        result = []
        for key in found:
            expire_us, kind, storage_id, item = keys.parse_expiry_key(key)
            result.append(Expiry(expire_us, ExpiryKind(kind), storage_id, item))
        return result

    def next_expiry(self) -> int | None:
        found = self._scan_global(keys.EXPIRY, keys.prefix_end(keys.EXPIRY), 1)
        return keys.parse_expiry_key(found[0])[0] if found else None

    def promotions(self, until_us: int, limit: int) -> list[Promotion]:
        found = self._scan_global(keys.PROMOTION, keys.time_prefix(keys.PROMOTION, until_us + 1), limit)
        return [Promotion(*keys.parse_promotion_key(key)) for key in found]

    def next_promotion(self) -> int | None:
        found = self._scan_global(keys.PROMOTION, keys.prefix_end(keys.PROMOTION), 1)
        return keys.parse_promotion_key(found[0])[0] if found else None

    def request_hours(self, before_hour: int, limit: int) -> list[tuple[int, int]]:
        found = self._scan_global(keys.HOURS, keys.hour_prefix(before_hour), limit)
        return [keys.parse_hours_key(key) for key in found]

    def first_request_hour(self) -> int | None:
        found = self._scan_global(keys.HOURS, keys.prefix_end(keys.HOURS), 1)
        return keys.parse_hours_key(found[0])[0] if found else None

    def _scan_global(self, family: bytes, upper: bytes, limit: int, start: bytes | None = None) -> list[bytes]:
        """Up to `limit` keys of a global family from its head (or `start`) to `upper`."""
        head = self._heads.get(family, family)
        lower = head if start is None else max(start, head)
        if lower >= upper or limit <= 0:
            return []
        found: list[bytes] = []
        for key in keys_between(self._db, lower, upper, self.faults):
            if not found and start is None:
                self._heads[family] = key
            found.append(key)
            if len(found) >= limit:
                break
        return found

    # Meta ---------------------------------------------------------------------------------

    def page_token_key(self) -> bytes:
        return self._page_token_key

    # Writes -------------------------------------------------------------------------------

    def begin(self) -> RocksTxn:
        return RocksTxn(self)

    def apply(self, txn: Txn) -> None:
        assert isinstance(txn, RocksTxn)  # a transaction of this store (begin)
        self._check_open()
        if not txn.written():
            return
        self.faults.on_write()
        batch = txn.batch
        for storage_id, counters in txn.counter_changes.items():
            if storage_id not in txn.deleted_storage_ids:
                bucket = txn.bucket_changes.get(storage_id, self._buckets.get(storage_id))
                batch.put(keys.counters_key(storage_id), encode_counters(counters, bucket))
        for storage_id in txn.bucket_changes.keys() - txn.counter_changes.keys() - txn.deleted_storage_ids:
            counters = self._counters.get(storage_id, Counters())
            batch.put(keys.counters_key(storage_id), encode_counters(counters, txn.bucket_changes[storage_id]))
        if txn.next_storage_id != self._next_storage_id:
            batch.put(keys.META_NEXT_STORAGE_ID, keys.u64(txn.next_storage_id))
        try:
            self._db.write(batch)
        except Exception as error:
            raise StoreError(f"write failed: {error}") from error
        # The write is in: bring the caches and hints up to date.
        self._next_storage_id = txn.next_storage_id
        for queue_id, queue in txn.queue_changes.items():
            old = self._queues.pop(queue_id, None)
            if old is not None:
                self._by_storage_id.pop(old.storage_id, None)
            if queue is not None:
                stored = copy_queue(queue)
                self._queues[queue_id] = stored
                self._by_storage_id[queue.storage_id] = stored
        for storage_id in txn.deleted_storage_ids:
            self._counters.pop(storage_id, None)
            self._buckets.pop(storage_id, None)
            self._forget_heads(storage_id)
        for storage_id, counters in txn.counter_changes.items():
            if storage_id not in txn.deleted_storage_ids:
                self._counters[storage_id] = counters
        for storage_id, bucket in txn.bucket_changes.items():
            if storage_id not in txn.deleted_storage_ids:
                self._buckets[storage_id] = bucket
        self.known_hours |= txn.new_hours
        self.known_hours -= txn.forgotten_hours
        # In the order written: a key deleted and put again in one transaction stays live.
        for added, bucket_prefix, key in txn.index_writes:
            heads = self._tag_heads if key[:1] == keys.TAG else self._heads
            if added:
                head = heads.get(bucket_prefix)
                if head is not None and key < head:
                    heads[bucket_prefix] = key
                continue
            if heads.get(bucket_prefix) == key:
                heads[bucket_prefix] = key + b"\x00"
            count = self._deletes.get(bucket_prefix, 0) + 1
            if count >= COMPACT_AFTER_DELETES:
                self._deletes[bucket_prefix] = 0
                self._compact_ranges.append((bucket_prefix, heads.get(bucket_prefix, key)))
            else:
                self._deletes[bucket_prefix] = count
        if len(self._tag_heads) > MAX_TAG_HEADS:
            self._tag_heads.clear()

    def discard(self, txn: Txn) -> None:
        """Nothing to undo: a WriteBatch that is not written changes nothing."""

    def _forget_heads(self, storage_id: int) -> None:
        self._heads.pop(keys.eta_prefix(storage_id), None)
        tag_family = keys.TAG + keys.sid(storage_id)
        for bucket in [bucket for bucket in self._tag_heads if bucket.startswith(tag_family)]:
            del self._tag_heads[bucket]

    def sync(self) -> None:
        self._check_open()
        self.faults.on_sync()
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

    def size_bytes(self) -> int | None:
        """RocksDB's own count of its SST files (rocksdb.total-sst-files-size, obsolete files
        not yet deleted included) plus the write-ahead log files (*.log) in the directory; the
        memtables are in those logs. The lock keeps close() from pulling the database away."""
        with self._maintain_lock:
            self._check_open()
            sst = self._db.property_int_value("rocksdb.total-sst-files-size") or 0
        wal = 0
        with os.scandir(self._path) as entries:
            for entry in entries:
                if entry.name.endswith(".log"):
                    try:
                        wal += entry.stat().st_size
                    except FileNotFoundError:  # recycled between the listing and the stat
                        pass
        return sst + wal

    def checkpoint(self, destination: str) -> None:
        """RocksDB's checkpoint: the live SST files hard-linked (copied across filesystems),
        the MANIFEST and WAL copied up to one sequence number, then fsynced. The lock keeps
        close() (a reopen after a failure) from pulling the database away meanwhile."""
        with self._maintain_lock:
            self._check_open()
            try:
                rocksdict.Checkpoint(self._db).create_checkpoint(destination)
            except Exception as error:  # rocksdict raises bare Exceptions
                if os.path.lexists(destination):
                    raise BackupDestinationExists(f"{destination} already exists") from None
                raise BackupFailed(f"the backup to {destination} failed: {error}") from None

    def close(self) -> None:
        """Closes the database. A failing final fsync (after a disk failure) is reported and
        the database closed anyway: what was acknowledged was synced when it was answered."""
        with self._maintain_lock:
            if self._closed:
                return
            self._closed = True
            try:
                self._db.flush_wal(True)
            except Exception as error:
                log.warning("the final fsync of %s failed: %s", self._path, error)
            try:
                self._db.close()
            except Exception as error:
                log.warning("closing %s failed: %s", self._path, error)

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError("the store is closed")

    def _get(self, key: bytes) -> bytes | None:
        if self._closed:
            raise StoreError("the store is closed")
        try:
            return self._db.get(key)
        except Exception as error:
            raise StoreError(f"read failed: {error}") from error


def _recent_hours(now_us: int) -> tuple[int, ...]:
    """The hour buckets a lookup of request ids or acknowledgements reads: this one and the
    previous one (so an entry is found for at least an hour)."""
    bucket = keys.request_bucket(now_us)
    return (bucket, bucket - 1) if bucket else (0,)


def _open_failure(path: str, error: Exception, write_buffer_bytes: int) -> StoreError:
    """A clear reason why the directory cannot be opened."""
    text = str(error)
    if "lock" in text.lower():
        return StoreLocked(f"the data directory {path} is in use by another taskq server ({text})")
    if "no space" in text.lower():
        wal_bytes = 0
        try:
            wal_bytes = sum(entry.stat().st_size for entry in os.scandir(path) if entry.name.endswith(".log"))
        except OSError:
            pass
        try:
            free = shutil.disk_usage(path).free
        except OSError:
            free = 0
        needed = max(wal_bytes, write_buffer_bytes)
        return StoreError(
            f"cannot open the data directory {path}: the disk is full ({free // 2**20} MiB free). Opening "
            f"replays the write-ahead log ({wal_bytes // 2**20} MiB) and writes it to table files, which "
            f"needs about {needed // 2**20} MiB free: free that much space and start again"
        )
    return StoreError(f"cannot open the data directory {path}: {text}")
