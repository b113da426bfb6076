"""The reads a transaction of a single-writer engine makes of the store itself.

RocksDB's and the in-memory engine's transactions keep their writes aside until applied: their
point reads look there first (each engine's own), while these scans and due-time reads go to
the committed store. The contract allows it (store/base.py: a transaction's scans may or may
not see its own writes), and core never scans what it wrote in the same transaction.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator

from taskq.core.model import Expiry, LeaseEntry, Promotion, Queue, Task
from taskq.store.base import Reader


class StoreScans:
    """Mixed into a transaction whose `_store` is the Reader of committed state."""

    _store: Reader

    def tasks(self, queue: Queue, after: str, *, payloads: bool = True) -> Iterator[Task]:
        return self._store.tasks(queue, after, payloads=payloads)

    def waiting(self, queue: Queue, until_us: int, tag: str | None = None, limit: int = 1000) -> Iterator[Task]:
        return self._store.waiting(queue, until_us, tag, limit)

    def oldest_waiting(self, queue: Queue) -> tuple[int, str] | None:
        return self._store.oldest_waiting(queue)

    def expired_leases(self, until_us: int, limit: int) -> list[LeaseEntry]:
        return self._store.expired_leases(until_us, limit)

    def leases(self, after: LeaseEntry | None, limit: int) -> list[LeaseEntry]:
        return self._store.leases(after, limit)

    def next_lease_expiry(self) -> int | None:
        return self._store.next_lease_expiry()

    def expiries(self, until_us: int, limit: int) -> list[Expiry]:
        return self._store.expiries(until_us, limit)

    def next_expiry(self) -> int | None:
        return self._store.next_expiry()

    def promotions(self, until_us: int, limit: int) -> list[Promotion]:
        return self._store.promotions(until_us, limit)

    def next_promotion(self) -> int | None:
        return self._store.next_promotion()

    def request_hours(self, before_hour: int, limit: int) -> list[tuple[int, int]]:
        return self._store.request_hours(before_hour, limit)

    def first_request_hour(self) -> int | None:
        return self._store.first_request_hour()

    def page_token_key(self) -> bytes:
        return self._store.page_token_key()

    def prefetch(
        self, queue: Queue, task_ids: Collection[str] = (), *, tombstones: bool = False,
        request_ids: Collection[str] = (),
    ) -> None:
        """Nothing to gain: a point read of this engine costs microseconds."""
