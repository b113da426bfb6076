"""Reads of the PostgreSQL engine, on one connection (a Reader: store/base.py).

Outside a transaction they read committed state. Inside one (PgTxn, `locking` set) the reads
of rows the transaction may change lock them, FOR UPDATE, so two servers' transactions on one
task (an ack and an expiry, two leases) take turns and the second sees what the first did;
the scans that claim work (`waiting`) skip rows another transaction holds (SKIP LOCKED).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg

from taskq.core.model import (
    Counters,
    Expiry,
    ExpiryKind,
    LeaseEntry,
    Promotion,
    Queue,
    RequestRecord,
    Task,
    TokenState,
)
from taskq.store.records import decode_queue, decode_request
from taskq.store.task_record import decode_task

HOUR_US = 3_600_000_000
#: Rows fetched per query by the scans that are read as they advance.
CHUNK = 64


def recent_hour(now_us: int) -> int:
    """The oldest hour whose request ids and acknowledgements are still returned."""
    return now_us // HOUR_US - 1


class PgReader:
    """Reads on `conn`. The store's page-token key is passed in (read once at open)."""

    def __init__(self, conn: psycopg.Connection, page_token_key: bytes, *, locking: bool = False) -> None:
        self.conn = conn
        self._page_token_key = page_token_key
        self._locking = locking

    def _one(self, sql: str, params: tuple[Any, ...] = ()) -> Any:
        return self.conn.execute(sql, params).fetchone()

    def _all(self, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        return self.conn.execute(sql, params).fetchall()

    # Queues -------------------------------------------------------------------------------

    def _queue(self, record: bytes) -> Queue:
        queue = decode_queue(record)
        self._saw_queue(queue.storage_id, bytes(record))
        return queue

    def _saw_queue(self, storage_id: int, record: bytes) -> None:
        """Notes a queue's record as read: a transaction that replaces the queue checks that
        nobody replaced it meanwhile (see PgTxn); reads outside a transaction keep nothing."""

    def queue(self, queue_id: str) -> Queue | None:
        row = self._one("SELECT record FROM taskq_queues WHERE queue_id = %s", (queue_id,))
        return self._queue(row[0]) if row else None

    def queue_by_storage_id(self, storage_id: int) -> Queue | None:
        row = self._one("SELECT record FROM taskq_queues WHERE storage_id = %s", (storage_id,))
        return self._queue(row[0]) if row else None

    def queues(self, after: str, limit: int) -> list[Queue]:
        if limit <= 0:
            return []
        rows = self._all(
            "SELECT record FROM taskq_queues WHERE queue_id > %s ORDER BY queue_id LIMIT %s", (after, limit)
        )
        return [self._queue(row[0]) for row in rows]

    def purging_queues(self) -> list[Queue]:
        return [self._queue(row[0]) for row in self._all("SELECT record FROM taskq_queues WHERE purging")]

    def dead_letter_referrers(self, queue_id: str) -> list[str]:
        rows = self._all(
            "SELECT queue_id FROM taskq_queues WHERE dead_letter_queue = %s ORDER BY queue_id", (queue_id,)
        )
        return [row[0] for row in rows]

    # Tasks --------------------------------------------------------------------------------

    def _task(self, storage_id: int, row: Any) -> Task:
        """A task from (task_id, record, payload, counted_ready)."""
        task_id, record, payload, counted_ready = row
        task = decode_task(task_id, record)
        task.payload = bytes(payload)
        self._saw(storage_id, task_id, counted_ready)
        return task

    def _saw(self, storage_id: int, task_id: str, counted_ready: bool) -> None:
        """Notes how a task read is counted: a transaction needs it to count its writes (see
        PgTxn); reads outside a transaction keep nothing."""

    def task(self, queue: Queue, task_id: str) -> Task | None:
        lock = " FOR UPDATE" if self._locking else ""
        row = self._one(
            "SELECT task_id, record, payload, counted_ready FROM taskq_tasks "
            "WHERE storage_id = %s AND task_id = %s" + lock,
            (queue.storage_id, task_id),
        )
        return self._task(queue.storage_id, row) if row else None

    def tasks(self, queue: Queue, after: str, *, payloads: bool = True) -> Iterator[Task]:
        payload = "payload" if payloads else "''::bytea"
        lock = " FOR UPDATE" if self._locking else ""
        while True:
            rows = self._all(
                f"SELECT task_id, record, {payload}, counted_ready FROM taskq_tasks "
                "WHERE storage_id = %s AND task_id > %s ORDER BY task_id LIMIT %s" + lock,
                (queue.storage_id, after, CHUNK),
            )
            for row in rows:
                yield self._task(queue.storage_id, row)
            if len(rows) < CHUNK:
                return
            after = rows[-1][0]

    def waiting(self, queue: Queue, until_us: int, tag: str | None = None, limit: int = 1000) -> Iterator[Task]:
        lock = " FOR UPDATE SKIP LOCKED" if self._locking else ""
        tag_clause = " AND tag = %s" if tag is not None else ""
        position = (-1, "")
        returned = 0
        while returned < limit:
            wanted = min(CHUNK, limit - returned)
            params: tuple[Any, ...] = (queue.storage_id, until_us, *position)
            if tag is not None:
                params += (tag,)
            rows = self._all(
                "SELECT task_id, record, payload, counted_ready, schedule_us FROM taskq_tasks "
                "WHERE storage_id = %s AND stage = 1 AND schedule_us <= %s AND (schedule_us, task_id) > (%s, %s)"
                + tag_clause + " ORDER BY schedule_us, task_id LIMIT %s" + lock,
                (*params, wanted),
            )
            for row in rows:
                yield self._task(queue.storage_id, row[:4])
                returned += 1
            if len(rows) < wanted:
                return
            position = (rows[-1][4], rows[-1][0])

    def oldest_waiting(self, queue: Queue) -> tuple[int, str] | None:
        row = self._one(
            "SELECT schedule_us, tag FROM taskq_tasks WHERE storage_id = %s AND stage = 1 "
            "ORDER BY schedule_us, task_id LIMIT 1",
            (queue.storage_id,),
        )
        return (row[0], row[1]) if row else None

    def counters(self, queue: Queue) -> Counters:
        return self._counters(queue, [])

    def _counters(self, queue: Queue, leave_out: list[str]) -> Counters:
        """The counters, with next_promotion_us derived from the queue's waiting tasks counted
        as scheduled other than those in `leave_out`."""
        skip = " AND task_id <> ALL(%s)" if leave_out else ""
        row = self._one(
            "SELECT coalesce(sum(scheduled), 0), coalesce(sum(ready), 0), coalesce(sum(leased), 0), "
            "coalesce(sum(failed), 0), (SELECT min(schedule_us) FROM taskq_tasks WHERE storage_id = %s "
            "AND stage = 1 AND NOT counted_ready" + skip + ") FROM taskq_counters WHERE storage_id = %s",
            (queue.storage_id, *([leave_out] if leave_out else []), queue.storage_id),
        )
        return Counters(
            scheduled=int(row[0]), ready=int(row[1]), leased=int(row[2]), failed=int(row[3]),
            next_promotion_us=int(row[4] or 0),
        )

    def bucket(self, queue: Queue) -> TokenState | None:
        lock = " FOR UPDATE" if self._locking else ""
        row = self._one("SELECT tokens, updated_us FROM taskq_buckets WHERE storage_id = %s" + lock, (queue.storage_id,))
        if row is None or row[1] == 0:
            return None  # never used (the row may exist only to be locked)
        return TokenState(row[0], row[1])

    def tombstone(self, queue: Queue, task_id: str) -> int | None:
        row = self._one(
            "SELECT expire_us FROM taskq_tombstones WHERE storage_id = %s AND task_id = %s", (queue.storage_id, task_id)
        )
        return row[0] if row else None

    def request(self, queue: Queue, request_id: str, now_us: int) -> RequestRecord | None:
        row = self._one(
            "SELECT record FROM taskq_requests WHERE storage_id = %s AND request_id = %s AND hour >= %s",
            (queue.storage_id, request_id, recent_hour(now_us)),
        )
        return decode_request(row[0]) if row else None

    def acked(self, queue: Queue, task_id: str, now_us: int) -> str | None:
        row = self._one(
            "SELECT token FROM taskq_acks WHERE storage_id = %s AND task_id = %s AND hour >= %s",
            (queue.storage_id, task_id, recent_hour(now_us)),
        )
        return row[0] if row else None

    # Due-time indexes ---------------------------------------------------------------------

    def expired_leases(self, until_us: int, limit: int) -> list[LeaseEntry]:
        if limit <= 0:
            return []
        rows = self._all(
            "SELECT lease_expire_us, storage_id, task_id FROM taskq_tasks WHERE stage = 2 AND lease_expire_us <= %s "
            "ORDER BY lease_expire_us, storage_id, task_id LIMIT %s",
            (until_us, limit),
        )
        return [LeaseEntry(*row) for row in rows]

    def leases(self, after: LeaseEntry | None, limit: int) -> list[LeaseEntry]:
        if limit <= 0:
            return []
        start = (after.expire_us, after.storage_id, after.task_id) if after is not None else (-1, -1, "")
        rows = self._all(
            "SELECT lease_expire_us, storage_id, task_id FROM taskq_tasks WHERE stage = 2 "
            "AND (lease_expire_us, storage_id, task_id) > (%s, %s, %s) "
            "ORDER BY lease_expire_us, storage_id, task_id LIMIT %s",
            (*start, limit),
        )
        return [LeaseEntry(*row) for row in rows]

    def next_lease_expiry(self) -> int | None:
        row = self._one("SELECT min(lease_expire_us) FROM taskq_tasks WHERE stage = 2")
        return row[0] if row else None

    def expiries(self, until_us: int, limit: int) -> list[Expiry]:
        if limit <= 0:
            return []
        rows = self._all(
            "(SELECT expire_us, 1, storage_id, task_id FROM taskq_tombstones WHERE expire_us <= %s "
            " ORDER BY expire_us, storage_id, task_id LIMIT %s) "
            "UNION ALL "
            "(SELECT retain_until_us, 2, storage_id, task_id FROM taskq_tasks WHERE stage = 3 AND retain_until_us <= %s "
            " ORDER BY retain_until_us, storage_id, task_id LIMIT %s) "
            "ORDER BY 1, 2, 3, 4 LIMIT %s",
            (until_us, limit, until_us, limit, limit),
        )
        return [Expiry(row[0], ExpiryKind(row[1]), row[2], row[3]) for row in rows]

    def next_expiry(self) -> int | None:
        row = self._one(
            "SELECT least((SELECT min(expire_us) FROM taskq_tombstones), "
            "(SELECT min(retain_until_us) FROM taskq_tasks WHERE stage = 3))"
        )
        return row[0] if row else None

    def promotions(self, until_us: int, limit: int) -> list[Promotion]:
        # One entry per queue with waiting tasks counted as scheduled: its earliest. A skip
        # scan of the index by queue (one probe per such queue, however many tasks each has),
        # so that one queue with many due tasks hides no other queue's entry.
        if limit <= 0:
            return []
        rows = self._all(
            "WITH RECURSIVE firsts AS ("
            " (SELECT storage_id, schedule_us FROM taskq_tasks WHERE stage = 1 AND NOT counted_ready"
            "  ORDER BY storage_id, schedule_us LIMIT 1)"
            " UNION ALL"
            " SELECT later.storage_id, later.schedule_us FROM firsts CROSS JOIN LATERAL"
            " (SELECT storage_id, schedule_us FROM taskq_tasks WHERE stage = 1 AND NOT counted_ready"
            "  AND storage_id > firsts.storage_id ORDER BY storage_id, schedule_us LIMIT 1) later"
            ") SELECT schedule_us, storage_id FROM firsts WHERE schedule_us <= %s ORDER BY 1, 2 LIMIT %s",
            (until_us, limit),
        )
        return [Promotion(due_us, storage_id) for due_us, storage_id in rows]

    def next_promotion(self) -> int | None:
        row = self._one("SELECT min(schedule_us) FROM taskq_tasks WHERE stage = 1 AND NOT counted_ready")
        return row[0] if row else None

    def request_hours(self, before_hour: int, limit: int) -> list[tuple[int, int]]:
        if limit <= 0:
            return []
        rows = self._all(
            "SELECT hour, storage_id FROM taskq_requests WHERE hour < %s "
            "UNION SELECT hour, storage_id FROM taskq_acks WHERE hour < %s ORDER BY 1, 2 LIMIT %s",
            (before_hour, before_hour, limit),
        )
        return [(row[0], row[1]) for row in rows]

    def first_request_hour(self) -> int | None:
        row = self._one("SELECT least((SELECT min(hour) FROM taskq_requests), (SELECT min(hour) FROM taskq_acks))")
        return row[0] if row else None

    # Meta ---------------------------------------------------------------------------------

    def page_token_key(self) -> bytes:
        return self._page_token_key
