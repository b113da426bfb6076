"""`taskq restore`: a backup (a RocksDB checkpoint written by AdminService.Backup) made the
data directory of a stopped server again.

Nothing is ever deleted: a data directory that holds anything is refused, or with `replace`
moved aside to `<dir>.before-restore-<UTC time>`. The copy is written to a temporary sibling,
fsynced, opened once by this binary (which checks, and if older migrates, its key schema:
store/keys.py), and only then renamed into place, so a crash midway leaves either the old
directory or the restored one, never half of one.
"""

from __future__ import annotations

import dataclasses
import datetime
import errno
import fcntl
import os
import shutil

from taskq.store.base import StoreError
from taskq.store.rocksdb import RocksStore


class RestoreError(Exception):
    """The restore was refused or failed; the message says why and what to do."""


@dataclasses.dataclass(frozen=True)
class Restored:
    data_dir: str
    #: Where the directory that was there went (None: there was none, or it was empty).
    moved_aside: str | None
    size_bytes: int
    file_count: int


def _in_use(data_dir: str) -> bool:
    """Whether a running server holds the directory: RocksDB keeps a POSIX lock on its LOCK
    file for as long as the database is open."""
    try:
        fd = os.open(os.path.join(data_dir, "LOCK"), os.O_RDWR)
    except FileNotFoundError:
        return False
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as error:
        if error.errno in (errno.EACCES, errno.EAGAIN):
            return True
        raise
    finally:
        os.close(fd)  # closing the descriptor releases the lock taken just now
    return False


def _fsync_tree(root: str) -> tuple[int, int]:
    """fsyncs every file and directory under `root`; returns (bytes, files)."""
    size = files = 0
    for folder, _, names in os.walk(root):
        for name in names:
            path = os.path.join(folder, name)
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fsync(fd)
                size += os.fstat(fd).st_size
            finally:
                os.close(fd)
            files += 1
        _fsync_dir(folder)
    return size, files


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def restore(backup: str, data_dir: str, *, replace: bool = False, now: datetime.datetime | None = None) -> Restored:
    backup = os.path.abspath(backup)
    data_dir = os.path.abspath(data_dir.rstrip("/") or "/")
    if not os.path.isfile(os.path.join(backup, "CURRENT")):
        raise RestoreError(f"{backup} is not a taskq backup (no RocksDB CURRENT file in it)")
    if os.path.commonpath([backup, data_dir]) in (backup, data_dir):
        raise RestoreError(f"the backup {backup} and the data directory {data_dir} must not contain each other")
    occupied = os.path.isdir(data_dir) and bool(os.listdir(data_dir))
    if os.path.lexists(data_dir) and not os.path.isdir(data_dir):
        raise RestoreError(f"{data_dir} exists and is not a directory")
    if occupied:
        if _in_use(data_dir):
            raise RestoreError(f"a taskq server is running on {data_dir}: stop it first")
        if not replace:
            raise RestoreError(f"{data_dir} is not empty: stop its server and give --replace to move it aside "
                               "(nothing is deleted), or restore into a new directory")
    parent = os.path.dirname(data_dir)
    os.makedirs(parent, exist_ok=True)
    staging = f"{data_dir}.restoring-{os.getpid()}"
    if os.path.lexists(staging):
        shutil.rmtree(staging)  # our own leftover: this process's pid names it
    shutil.copytree(backup, staging, symlinks=False)
    try:
        _fsync_tree(staging)
        # Opening checks the key schema (and migrates an older one) before anything is moved.
        RocksStore(staging).close()
        size, files = _fsync_tree(staging)
    except StoreError as error:
        shutil.rmtree(staging, ignore_errors=True)
        raise RestoreError(f"{backup} cannot be opened by this taskq: {error}") from None
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    moved_aside = None
    if occupied:
        stamp = (now or datetime.datetime.now(datetime.UTC)).strftime("%Y%m%dT%H%M%SZ")
        moved_aside = f"{data_dir}.before-restore-{stamp}"
        os.rename(data_dir, moved_aside)
    elif os.path.isdir(data_dir):
        os.rmdir(data_dir)  # empty: rename cannot replace a directory
    os.rename(staging, data_dir)
    _fsync_dir(parent)
    return Restored(data_dir, moved_aside, size, files)
