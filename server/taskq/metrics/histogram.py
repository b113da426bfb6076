"""A fixed-bucket histogram cheap enough for the hot paths: one bisect and two additions per
observation, no lock (everything that observes runs on the event loop).

prometheus_client's own Histogram takes a lock and a labels() lookup per observation; here
the owners keep plain objects in dicts and the collector (metrics/exporter.py) turns them
into metric families at scrape time.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence

from prometheus_client.utils import floatToGoString

#: Seconds from a task's schedule time (ETA) to its delivery: a healthy queue delivers within
#: milliseconds; a backlog or a rate limit shows as minutes to hours.
DELIVERY_DELAY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 4 * 3600)
#: Seconds from a task's creation to its acknowledgement: delivery, retries and the worker's
#: own time, so up to days for scheduled tasks and long retry chains.
COMPLETION_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 6 * 3600, 86400)
#: Seconds a gRPC call took: unary calls take milliseconds, long polls up to 60 s; streams
#: (StreamTasks, health Watch) last for minutes and land in the last buckets.
RPC_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)
#: Seconds an fsync of RocksDB's write-ahead log took (SSDs: ~0.1-2 ms), or a PostgreSQL
#: transaction (a round trip or a few, and the WAL flush of its commit).
STORAGE_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5)
#: Mutations in one commit group of the single writer (each applied as its own batch, all
#: made durable by one fsync).
GROUP_SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096)


class Histogram:
    """Counts of observations per bucket (upper bounds inclusive, as Prometheus's `le`), and
    their sum."""

    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = bounds
        #: One count per bound, and the last for what is above every bound (+Inf).
        self.counts = [0] * (len(bounds) + 1)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.sum += value

    @property
    def count(self) -> int:
        return sum(self.counts)

    def cumulative(self) -> list[tuple[str, float]]:
        """(le, observations at or below it) pairs, as a Prometheus histogram has them."""
        buckets: list[tuple[str, float]] = []
        total = 0
        for bound, count in zip(self.bounds, self.counts):
            total += count
            buckets.append((floatToGoString(bound), total))
        buckets.append(("+Inf", total + self.counts[-1]))
        return buckets
