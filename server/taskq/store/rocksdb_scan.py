"""Range scans over rocksdict: the two traps of rocksdict 0.3.29 handled in one place, and
errors that surface mid-scan turned into StoreError instead of a silent end of the data."""

from __future__ import annotations

from collections.abc import Iterator

import rocksdict

from taskq.store.base import StoreError
from taskq.store.faults import Faults


def bounded(upper: bytes) -> rocksdict.ReadOptions:
    """Read options for a forward scan ending before `upper`; the caller seeks to its start.

    Only the upper bound is set: in rocksdict 0.3.29 `set_iterate_lower_bound` sets the
    *upper* bound (seek_to_first ignores it, a seek past it finds nothing). Seeking to the
    start explicitly gives a forward scan what a lower bound would. The upper bound matters:
    it stops RocksDB from skipping through tombstones beyond the range.

    The options must outlive every iterator made with them: rocksdict's iterator points into
    them, and a scan whose options were garbage-collected mid-way ended early at random.
    """
    options = rocksdict.ReadOptions()
    options.set_iterate_upper_bound(upper)
    return options


def _check(iterator: rocksdict.RdictIter, faults: Faults | None) -> None:
    """An iterator that stops being valid has either reached the end or hit an error (an I/O
    error, a corrupt block): only `status` tells which. Treating an error as the end would
    make counters drift and leases go unnoticed, so it fails the read instead."""
    try:
        iterator.status()
    except Exception as error:  # rocksdict raises bare Exceptions
        raise StoreError(f"a scan failed: {error}") from error
    if faults is not None:
        faults.on_scan_end()


def items(
    db: rocksdict.Rdict, start: bytes, end: bytes, faults: Faults | None = None
) -> Iterator[tuple[bytes, bytes]]:
    """(key, value) pairs with start <= key < end, in key order."""
    options = bounded(end)  # held by this frame for the iterator's whole life
    iterator = db.iter(options)
    iterator.seek(start)
    while iterator.valid():
        yield iterator.key(), iterator.value()
        iterator.next()
    _check(iterator, faults)


def keys_between(db: rocksdict.Rdict, start: bytes, end: bytes, faults: Faults | None = None) -> Iterator[bytes]:
    """Keys with start <= key < end, in key order."""
    options = bounded(end)
    iterator = db.iter(options)
    iterator.seek(start)
    while iterator.valid():
        yield iterator.key()
        iterator.next()
    _check(iterator, faults)
