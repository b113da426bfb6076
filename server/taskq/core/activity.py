"""Per-queue counts of recent events (leases, completions) over a sliding minute.

Kept in memory on purpose: these are rates, not state. They restart from zero with the
server, as the proto documents. Memory is one small ring per queue.
"""

from __future__ import annotations

from taskq.core.clock import Clock
from taskq.core.model import US_PER_SECOND

WINDOW_SECONDS = 60


class _Ring:
    __slots__ = ("counts", "seconds")

    def __init__(self) -> None:
        self.counts = [0] * WINDOW_SECONDS
        self.seconds = [0] * WINDOW_SECONDS

    def add(self, second: int, amount: int) -> None:
        slot = second % WINDOW_SECONDS
        if self.seconds[slot] != second:
            self.seconds[slot] = second
            self.counts[slot] = 0
        self.counts[slot] += amount

    def total(self, second: int) -> int:
        oldest = second - WINDOW_SECONDS
        return sum(c for c, s in zip(self.counts, self.seconds) if s > oldest)


class Activity:
    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._leased: dict[str, _Ring] = {}
        self._executed: dict[str, _Ring] = {}

    def _second(self) -> int:
        return self._clock.now_us() // US_PER_SECOND

    def leased(self, queue_id: str, count: int) -> None:
        if count:
            self._leased.setdefault(queue_id, _Ring()).add(self._second(), count)

    def executed(self, queue_id: str, count: int) -> None:
        if count:
            self._executed.setdefault(queue_id, _Ring()).add(self._second(), count)

    def leased_last_minute(self, queue_id: str) -> int:
        ring = self._leased.get(queue_id)
        return ring.total(self._second()) if ring else 0

    def executed_last_minute(self, queue_id: str) -> int:
        ring = self._executed.get(queue_id)
        return ring.total(self._second()) if ring else 0

    def forget(self, queue_id: str) -> None:
        self._leased.pop(queue_id, None)
        self._executed.pop(queue_id, None)
