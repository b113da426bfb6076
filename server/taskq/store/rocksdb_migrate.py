"""Migrations of RocksDB data directories written with an older key layout (store/keys.py).

Each migration rewrites what changed in batches and then records the new schema version, in
that order: a migration interrupted by a crash leaves the old version recorded and is simply
run again (every step is idempotent).
"""

from __future__ import annotations

import logging
import struct

import rocksdict

from taskq.store import keys
from taskq.store.base import StoreError
from taskq.store.records import decode_counters, encode_counters
from taskq.store.rocksdb_scan import items, keys_between

log = logging.getLogger(__name__)

_U32 = struct.Struct(">I")
_U64 = struct.Struct(">Q")

#: Present only while a 1 -> 2 migration is under way: written in the batch that rewrites the
#: lease keys, deleted with the version bump. Old and new lease keys cannot be told apart, so a
#: migration run again after a crash must know that they were rewritten already.
_LEASES_REWRITTEN = keys.META + b"migration_1_to_2_leases_rewritten"


def migrate(db: rocksdict.Rdict, path: str, version: int) -> None:
    """Brings a directory of schema `version` to keys.KEY_SCHEMA_VERSION, or refuses it."""
    if version == 1 and keys.KEY_SCHEMA_VERSION == 2:
        log.info("migrating %s from key schema 1 to 2", path)
        _v1_to_v2(db)
        batch = rocksdict.WriteBatch(raw_mode=True)
        batch.put(keys.META_SCHEMA_VERSION, keys.u64(2))
        batch.delete(_LEASES_REWRITTEN)
        db.write(batch)
        db.flush_wal(True)
        return
    raise StoreError(
        f"{path} uses key schema version {version}; this server reads version "
        f"{keys.KEY_SCHEMA_VERSION} and has no migration from it (see store/keys.py)"
    )


def _v1_to_v2(db: rocksdict.Rdict) -> None:
    """Version 1 kept leases per queue (`X sid expire_us task_id`); version 2 keeps them in
    one global index (`X expire_us sid task_id`), and adds the promotion index (P) and the
    index of request-id hours (J)."""
    # 1. Leases. Old and new keys share the X prefix and cannot be told apart, so they are
    # rewritten in one atomic batch (a few dozen bytes per leased task), with a marker that
    # keeps a rerun from rewriting them again.
    if db.get(_LEASES_REWRITTEN) is None:
        batch = rocksdict.WriteBatch(raw_mode=True)
        for key in list(keys_between(db, keys.LEASE, keys.prefix_end(keys.LEASE))):
            storage_id = _U32.unpack_from(key, 1)[0]
            expire_us = _U64.unpack_from(key, 5)[0]
            task_id = key[13:].decode()
            batch.delete(key)
            batch.put(keys.lease_key(expire_us, storage_id, task_id), b"")
        batch.put(_LEASES_REWRITTEN, b"")
        db.write(batch)
    # 2. Request-id hours: one J key per (hour, queue) that has I keys.
    hours: set[tuple[int, int]] = set()
    for key in keys_between(db, keys.REQUEST, keys.prefix_end(keys.REQUEST)):
        hours.add((_U32.unpack_from(key, 5)[0], _U32.unpack_from(key, 1)[0]))
    batch = rocksdict.WriteBatch(raw_mode=True)
    for hour, storage_id in hours:
        batch.put(keys.hours_key(hour, storage_id), b"")
    db.write(batch)
    # 3. Promotion index: each queue with scheduled tasks gets an entry at its first one.
    batch = rocksdict.WriteBatch(raw_mode=True)
    for key, value in items(db, keys.COUNTERS, keys.prefix_end(keys.COUNTERS)):
        storage_id = int.from_bytes(key[1:5], "big")
        counters, bucket = decode_counters(value)
        if counters.scheduled <= 0 or counters.next_promotion_us:
            continue
        eta = keys.eta_prefix(storage_id)
        first = next(iter(keys_between(db, eta + keys.u64(counters.promoted_through_us + 1), keys.prefix_end(eta))), None)
        if first is None:
            continue
        counters.next_promotion_us = keys.parse_eta_key(first)[0]
        batch.put(keys.promotion_key(counters.next_promotion_us, storage_id), b"")
        batch.put(key, encode_counters(counters, bucket))
    db.write(batch)
