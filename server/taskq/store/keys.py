"""The persisted key layout of the RocksDB engine: the one place that knows it.

Every key starts with a one-byte prefix naming its family. Integers are unsigned big-endian,
so byte order is numeric order and range scans walk time in order. `sid` is the 4-byte
storage id of a queue incarnation (core.model.Queue.storage_id): deleting a queue deletes
its per-queue families' sid ranges, and a re-created queue of the same name gets a new sid.

    M name                                   -> meta value (schema version, next storage id,
                                                page-token key)
    Q queue_id                               -> QueueRecord (records.proto)
    C sid                                    -> CountersRecord (records.proto): counters,
                                                promotion boundary, token bucket
    R sid task_id                            -> task record (packed, versioned; task_record.py)
    E sid eta_us(8) task_id                  -> tag (UTF-8)        waiting tasks by schedule time
    G sid len(tag)(2) tag eta_us(8) task_id  -> empty              pull queues: waiting by tag
    N sid task_id                            -> expire_us(8)       name tombstones
    I sid hour(4) request_id                 -> request record     create idempotency keys, by
                                                                   the hour of the create
                                                                   (records.encode_request)
    A sid hour(4) task_id                    -> lease token        acknowledged tasks, by the
                                                                   hour of the ack, so that a
                                                                   retried ack gets the same answer

  Global indexes by due time, one per kind of housekeeping, so that each pass of a background
  loop reads only what is due, whatever the number of queues:

    X expire_us(8) sid task_id               -> empty   leased tasks by lease expiry (reaper)
    Y expire_us(8) kind(1) sid key           -> empty   expiries: tombstones, FAILED tasks (janitor)
    P due_us(8) sid                          -> empty   queues whose scheduled tasks may be due
                                                        for counting as ready (janitor)
    J hour(4) sid                            -> empty   (queue, hour) pairs holding I or A keys,
                                                        deleted in whole hours (janitor)

Entries of the global indexes may outlive what they name (a deleted queue, a task leased
again): their readers check and drop such entries. Task ids, queue ids and request ids are
ASCII without NUL, and always last in a key or length-prefixed, so keys never collide.

Changing the layout
-------------------
KEY_SCHEMA_VERSION is stored under `M schema_version` when a data directory is created, and
a server refuses to open a directory with another version. To change the layout:
1. Bump KEY_SCHEMA_VERSION below.
2. Change the encoders here (and only here) and the docstring above.
3. Add a migration in store/rocksdb_migrate.py that rewrites a directory of the previous
   version in batches, then writes the new version; until one exists, the server refuses old
   directories with a message naming both versions.
4. Add a test that opens a directory written with the previous layout.
Adding a field to a records.proto message needs no bump: protobuf ignores unknown fields
and defaults missing ones. Reusing or renumbering a field does need one.

History: version 1 kept the lease index per queue (`X sid expire_us task_id`) and had no P, J
or A families; store/rocksdb_migrate.py turns a version 1 directory into version 2.
"""

from __future__ import annotations

import struct

KEY_SCHEMA_VERSION = 2

META = b"M"
QUEUE = b"Q"
COUNTERS = b"C"
RECORD = b"R"
ETA = b"E"
TAG = b"G"
TOMBSTONE = b"N"
REQUEST = b"I"
ACK = b"A"
LEASE = b"X"
EXPIRY = b"Y"
PROMOTION = b"P"
HOURS = b"J"

#: Families keyed by storage id first: deleting a queue deletes these sid ranges.
PER_QUEUE_FAMILIES = (COUNTERS, RECORD, ETA, TAG, TOMBSTONE, REQUEST, ACK)

META_SCHEMA_VERSION = META + b"schema_version"
META_NEXT_STORAGE_ID = META + b"next_storage_id"
#: 32 random bytes made when the directory is created: the key that signs page tokens.
META_PAGE_TOKEN_KEY = META + b"page_token_key"
#: When the directory was last opened (µs): written and synced at every open, to prove it
#: writable.
META_OPENED = META + b"opened"

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


#: Request ids and acknowledgements are kept in hour buckets: a lookup reads the current and
#: the previous hour, and whole older hours are range-deleted, so no expiry entry is written or
#: processed per id.
REQUEST_BUCKET_US = 3_600_000_000


def request_bucket(time_us: int) -> int:
    return time_us // REQUEST_BUCKET_US


def request_key(storage_id: int, bucket: int, request_id: str) -> bytes:
    return REQUEST + sid(storage_id) + _U32.pack(bucket) + request_id.encode()


def ack_key(storage_id: int, bucket: int, task_id: str) -> bytes:
    return ACK + sid(storage_id) + _U32.pack(bucket) + task_id.encode()


def hour_range(family: bytes, storage_id: int, bucket: int) -> tuple[bytes, bytes]:
    """[start, end) of one queue's keys of one hour in the I or A family."""
    return family + sid(storage_id) + _U32.pack(bucket), family + sid(storage_id) + _U32.pack(bucket + 1)


def hours_key(bucket: int, storage_id: int) -> bytes:
    return HOURS + _U32.pack(bucket) + sid(storage_id)


def parse_hours_key(key: bytes) -> tuple[int, int]:
    """(hour bucket, storage_id) of a J key."""
    return _U32.unpack_from(key, 1)[0], _U32.unpack_from(key, 5)[0]


def lease_key(expire_us: int, storage_id: int, task_id: str) -> bytes:
    return LEASE + _U64.pack(expire_us) + sid(storage_id) + task_id.encode()


def parse_lease_key(key: bytes) -> tuple[int, int, str]:
    """(expire_us, storage_id, task_id) of an X key."""
    return _U64.unpack_from(key, 1)[0], _U32.unpack_from(key, 9)[0], key[13:].decode()


def promotion_key(due_us: int, storage_id: int) -> bytes:
    return PROMOTION + _U64.pack(due_us) + sid(storage_id)


def parse_promotion_key(key: bytes) -> tuple[int, int]:
    """(due_us, storage_id) of a P key."""
    return _U64.unpack_from(key, 1)[0], _U32.unpack_from(key, 9)[0]


def expiry_key(expire_us: int, kind: int, storage_id: int, key: str) -> bytes:
    return EXPIRY + _U64.pack(expire_us) + bytes([kind]) + sid(storage_id) + key.encode()


def parse_expiry_key(key: bytes) -> tuple[int, int, int, str]:
    """(expire_us, kind, storage_id, key) of a Y key."""
    return _U64.unpack_from(key, 1)[0], key[9], _U32.unpack_from(key, 10)[0], key[14:].decode()


def time_prefix(family: bytes, time_us: int) -> bytes:
    """The first possible key at `time_us` in a time-first family (X, Y, P)."""
    return family + _U64.pack(time_us)


def hour_prefix(bucket: int) -> bytes:
    """The first possible J key of an hour bucket."""
    return HOURS + _U32.pack(bucket)
