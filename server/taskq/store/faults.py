"""Failures a test can inject into a store, to see what the server does when the disk fails.

Replaced by tests to simulate failures, as beanstalkd does with its `falloc`: a fsync that
fails (fsyncgate), a write that fails (a full disk, an I/O error), a scan that stops with an
error mid-way. Production code never sets these; each engine consults them at the point
where the real failure would surface.
"""

from __future__ import annotations

import dataclasses

from taskq.store.base import StoreError


@dataclasses.dataclass
class Faults:
    #: How many of the next syncs fail.
    failing_syncs: int = 0
    #: Every write fails while this is set (e.g. "No space left on device").
    failing_writes: str = ""
    #: Every scan that reaches the end of its range fails while this is set (after returning
    #: what it found); one stopped early by its limit or its reader does not.
    failing_scans: str = ""

    def on_sync(self) -> None:
        if self.failing_syncs > 0:
            self.failing_syncs -= 1
            raise StoreError("fsync of the write-ahead log failed: injected I/O error")

    def on_write(self) -> None:
        if self.failing_writes:
            raise StoreError(f"write failed: {self.failing_writes}")

    def on_scan_end(self) -> None:
        if self.failing_scans:
            raise StoreError(f"a scan failed: {self.failing_scans}")
