"""Free space on the disk that holds the data directory, and the reserve taskq keeps on it.

Running the disk full is worse for RocksDB than refusing a write: a write-ahead-log write that
fails with ENOSPC puts the database in an error state that only reopening clears, and reopening
replays the log into memory and writes it out as table files, which needs about as much free
space as the log holds. So taskq stops *growing* the data before that: below the reserve,
creates are refused with RESOURCE_EXHAUSTED / DISK_FULL (and the server reports NOT_SERVING),
while acknowledgements, deletes and every other small write go on, so workers can drain the
queues and free space. Once there is room again, creates are accepted again, with no restart.

The reserve must leave room for what RocksDB writes on its own after taskq's writes: a
memtable flush (Config.write_buffer_mb), a compaction rewriting the files it merges, a restart
replaying the log. The default, 256 MiB, covers the default 64 MiB memtable several times.
The free space is measured before every write that grows the data (a statvfs, about 0.6 µs),
so a burst of large creates cannot overshoot the reserve between two measurements.
"""

from __future__ import annotations

import os


class DiskSpace:
    def __init__(self, path: str, reserve_bytes: int) -> None:
        self._path = path
        self.reserve_bytes = reserve_bytes

    def free_bytes(self) -> int:
        """Bytes free to unprivileged writers on the data directory's disk."""
        try:
            stats = os.statvfs(self._path)
        except OSError:
            return 0  # unknown: assume the worst until it can be read again
        return stats.f_bavail * stats.f_frsize

    def low(self) -> bool:
        """Whether the free space is below the reserve."""
        return self.free_bytes() < self.reserve_bytes
