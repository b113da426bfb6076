"""The persisted key layout of the RocksDB engine: the one place that knows it.

Every key starts with a one-byte prefix naming its family. Integers are unsigned big-endian,
so byte order is numeric order and range scans walk time in order. `sid` is the 4-byte
storage id of a queue incarnation (core.model.Queue.storage_id): deleting a queue deletes
its families' sid ranges, and a re-created queue of the same name gets a new sid.

    M name                                   -> meta value (schema version, next storage id)
    Q queue_id                               -> QueueRecord
    C sid                                    -> CountersRecord
    R sid task_id                            -> TaskRecord
    E sid eta_us(8) task_id                  -> tag (UTF-8)         waiting tasks by schedule time
    G sid len(tag)(2) tag eta_us(8) task_id  -> empty               pull queues: waiting by tag
    N sid task_id                            -> expire_us(8)        name tombstones
    I sid hour(4) request_id                 -> RequestRecord       create idempotency keys, by
                                                                    the hour of the create
    X sid expire_us(8) task_id               -> empty               leased tasks by lease expiry
    Y expire_us(8) kind(1) sid key           -> empty               expiries (tombstones, FAILED
                                                                    tasks), all queues

Values are records.proto messages unless stated. Task ids, queue ids and request ids are
ASCII without NUL, and always last in a key or length-prefixed, so keys never collide.

Changing the layout
-------------------
KEY_SCHEMA_VERSION is stored under `M schema_version` when a data directory is created, and
a server refuses to open a directory with another version. To change the layout:
1. Bump KEY_SCHEMA_VERSION below.
2. Change the encoders here (and only here) and the docstring above.
3. Add a migration in store/rocksdb.py (`_migrate`) that rewrites a directory of the previous
   version in batches, then writes the new version; until one exists, the server refuses old
   directories with a message naming both versions.
4. Add a test that opens a directory written with the previous layout.
Adding a field to a records.proto message needs no bump: protobuf ignores unknown fields
and defaults missing ones. Reusing or renumbering a field does need one.
"""

from __future__ import annotations

import struct

KEY_SCHEMA_VERSION = 1

META = b"M"
QUEUE = b"Q"
COUNTERS = b"C"
RECORD = b"R"
ETA = b"E"
TAG = b"G"
TOMBSTONE = b"N"
REQUEST = b"I"
LEASE = b"X"
EXPIRY = b"Y"

#: Families keyed by storage id first: deleting a queue deletes these sid ranges.
PER_QUEUE_FAMILIES = (COUNTERS, RECORD, ETA, TAG, TOMBSTONE, REQUEST, LEASE)

META_SCHEMA_VERSION = META + b"schema_version"
META_NEXT_STORAGE_ID = META + b"next_storage_id"

_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")
_U64 = struct.Struct(">Q")


def u64(value: int) -> bytes:
    return _U64.pack(value)


def read_u64(data: bytes, offset: int = 0) -> int:
    return _U64.unpack_from(data, offset)[0]


def sid(storage_id: int) -> bytes:
    return _U32.pack(storage_id)


def family_range(family: bytes, storage_id: int) -> tuple[bytes, bytes]:
    """[start, end) of one queue's keys in a per-queue family."""
    return family + sid(storage_id), family + sid(storage_id + 1)


def prefix_end(prefix: bytes) -> bytes:
    """The smallest key greater than every key starting with `prefix`."""
    trimmed = prefix.rstrip(b"\xff")
    if not trimmed:
        raise ValueError("a prefix of only 0xff bytes has no end")
    return trimmed[:-1] + bytes([trimmed[-1] + 1])


def queue_key(queue_id: str) -> bytes:
    return QUEUE + queue_id.encode()


def counters_key(storage_id: int) -> bytes:
    return COUNTERS + sid(storage_id)


def record_key(storage_id: int, task_id: str) -> bytes:
    return RECORD + sid(storage_id) + task_id.encode()


def record_prefix(storage_id: int) -> bytes:
    return RECORD + sid(storage_id)


def task_id_of_record(key: bytes) -> str:
    return key[5:].decode()


def eta_prefix(storage_id: int) -> bytes:
    return ETA + sid(storage_id)


def eta_key(storage_id: int, eta_us: int, task_id: str) -> bytes:
    return ETA + sid(storage_id) + _U64.pack(eta_us) + task_id.encode()


def parse_eta_key(key: bytes) -> tuple[int, str]:
    """(eta_us, task_id) of an E key."""
    return _U64.unpack_from(key, 5)[0], key[13:].decode()


def tag_prefix(storage_id: int, tag: str) -> bytes:
    encoded = tag.encode()
    return TAG + sid(storage_id) + _U16.pack(len(encoded)) + encoded


def tag_key(storage_id: int, tag: str, eta_us: int, task_id: str) -> bytes:
    return tag_prefix(storage_id, tag) + _U64.pack(eta_us) + task_id.encode()


def parse_tag_key(key: bytes) -> tuple[int, str]:
    """(eta_us, task_id) of a G key."""
    tag_length = _U16.unpack_from(key, 5)[0]
    offset = 7 + tag_length
    return _U64.unpack_from(key, offset)[0], key[offset + 8 :].decode()


def tombstone_key(storage_id: int, task_id: str) -> bytes:
    return TOMBSTONE + sid(storage_id) + task_id.encode()


#: Request ids are kept in hour buckets: a lookup reads the current and the previous hour, and
#: whole older hours are range-deleted, so no expiry entry is written or processed per id.
REQUEST_BUCKET_US = 3_600_000_000


def request_bucket(time_us: int) -> int:
    return time_us // REQUEST_BUCKET_US


def request_key(storage_id: int, bucket: int, request_id: str) -> bytes:
    return REQUEST + sid(storage_id) + _U32.pack(bucket) + request_id.encode()


def request_bucket_prefix(storage_id: int, bucket: int) -> bytes:
    return REQUEST + sid(storage_id) + _U32.pack(bucket)


def lease_prefix(storage_id: int) -> bytes:
    return LEASE + sid(storage_id)


def lease_key(expire_us: int, storage_id: int, task_id: str) -> bytes:
    return LEASE + sid(storage_id) + _U64.pack(expire_us) + task_id.encode()


def parse_lease_key(key: bytes) -> tuple[int, int, str]:
    """(expire_us, storage_id, task_id) of an X key."""
    return _U64.unpack_from(key, 5)[0], _U32.unpack_from(key, 1)[0], key[13:].decode()


def expiry_key(expire_us: int, kind: int, storage_id: int, key: str) -> bytes:
    return EXPIRY + _U64.pack(expire_us) + bytes([kind]) + sid(storage_id) + key.encode()


def parse_expiry_key(key: bytes) -> tuple[int, int, int, str]:
    """(expire_us, kind, storage_id, key) of a Y key."""
    return _U64.unpack_from(key, 1)[0], key[9], _U32.unpack_from(key, 10)[0], key[14:].decode()


def time_prefix(family: bytes, time_us: int) -> bytes:
    """The first possible key at `time_us` in a time-first family (Y, or an X sid prefix)."""
    return family + _U64.pack(time_us)
