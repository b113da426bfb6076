"""Free space on the disk that holds the data directory, and the reserve taskq keeps on it.

Running the disk full is worse for RocksDB than refusing a write: a write-ahead-log write that
fails with ENOSPC puts the database in an error state that only reopening clears, and reopening
replays the log into memory and writes it out as table files, which needs about as much free
space as the log holds. So taskq stops *growing* the data before that: below the reserve,
creates are refused with RESOURCE_EXHAUSTED / DISK_FULL (and the server reports NOT_SERVING),
while acknowledgements, deletes and every other small write go on, so workers can drain the
queues and free space. Once there is room again, creates are accepted again, with no restart.

The reserve should exceed the memtable size (Config.write_buffer_mb): that much free space
guarantees that a restart after a crash can replay the log.
"""

from __future__ import annotations

import os
import time

#: How often the free space is measured, at most, seconds.
CHECK_EVERY_S = 0.1


class DiskSpace:
    def __init__(self, path: str, reserve_bytes: int) -> None:
        self._path = path
        self.reserve_bytes = reserve_bytes
        self._checked_at = float("-inf")
        self._free = 0

    def free_bytes(self) -> int:
        """Bytes free to unprivileged writers on the data directory's disk (fresh within
        CHECK_EVERY_S)."""
        now = time.monotonic()
        if now - self._checked_at >= CHECK_EVERY_S:
            try:
                stats = os.statvfs(self._path)
                self._free = stats.f_bavail * stats.f_frsize
            except OSError:
                self._free = 0  # unknown: assume the worst until it can be read again
            self._checked_at = now
        return self._free

    def low(self) -> bool:
        """Whether the free space is below the reserve."""
        return self.free_bytes() < self.reserve_bytes
