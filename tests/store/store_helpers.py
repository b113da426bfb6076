"""Builders and checks shared by the storage conformance suite (tests/store/test_store_*.py).

Times are small integers (microseconds): the store compares them, it never reads a clock.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable, Iterable

from taskq.core.model import (
    Counters,
    Queue,
    QueueType,
    RequestRecord,
    RetryPolicy,
    Stage,
    Task,
)
from taskq.store.base import Reader, Store, Txn
from taskq.store.postgres.reader import PgReader

#: Later than every time the tests use, and still far from the 64-bit key limit.
FOREVER = 2**62
#: A limit larger than any listing the tests make.
ALL = 1_000_000
#: Request ids and acknowledgements are remembered by the hour.
HOUR_US = 3_600_000_000
#: Request records below are made at time 7 and looked up at REQUEST_NOW, in the same hour.
REQUEST_NOW = 8


def new_queue(queue_id: str, type: QueueType = QueueType.PULL, create_time_us: int = 0, **fields) -> Queue:
    return Queue(
        queue_id=queue_id,
        type=type,
        retry=RetryPolicy(
            max_attempts=5, max_retry_duration_us=0, min_backoff_us=100, max_backoff_us=3600, max_doublings=16
        ),
        dispatch_deadline_us=600,
        task_ttl_us=1000,
        tombstone_ttl_us=500,
        create_time_us=create_time_us,
        update_time_us=create_time_us,
        **fields,
    )


def commit(store: Store, *steps: Callable[[Txn], object]) -> list[object]:
    """Runs `steps` against one transaction and applies it; returns what each step returned."""
    txn = store.begin()
    results = [step(txn) for step in steps]
    store.apply(txn)
    return results


def create_queue(
    store: Store, queue_id: str, type: QueueType = QueueType.PULL, create_time_us: int = 0, **fields
) -> Queue:
    queue = new_queue(queue_id, type, create_time_us, **fields)
    commit(store, lambda txn: txn.put_queue(queue))
    return queue


def waiting_task(task_id: str, at: int, tag: str = "", **fields) -> Task:
    return Task(task_id=task_id, schedule_time_us=at, create_time_us=0, tag=tag, **fields)


def as_leased(task: Task, expire_us: int) -> Task:
    leased = task.copy()
    leased.stage = Stage.LEASED
    leased.lease_expire_us = expire_us
    leased.lease_token = f"token-{task.task_id}-{expire_us}"
    leased.attempt_count += 1
    return leased


def as_failed(task: Task, retain_until_us: int) -> Task:
    failed = task.copy()
    failed.stage = Stage.FAILED
    failed.lease_token = ""
    failed.lease_expire_us = 0
    failed.retain_until_us = retain_until_us
    return failed


def as_waiting(task: Task, at: int, tag: str | None = None) -> Task:
    waiting = task.copy()
    waiting.stage = Stage.WAITING
    waiting.schedule_time_us = at
    waiting.lease_token = ""
    waiting.lease_expire_us = 0
    waiting.retain_until_us = 0
    if tag is not None:
        waiting.tag = tag
    return waiting


def add_tasks(store: Store, queue: Queue, *tasks: Task) -> list[Task]:
    commit(store, *[lambda txn, task=task: txn.put_task(queue, task, None) for task in tasks])
    return list(tasks)


def replace(store: Store, queue: Queue, previous: Task, task: Task) -> Task:
    commit(store, lambda txn: txn.put_task(queue, task, previous))
    return task


def remove(store: Store, queue: Queue, task: Task) -> None:
    commit(store, lambda txn: txn.delete_task(queue, task))


def promote(store: Store, queue: Queue, until_us: int, limit: int = ALL) -> bool:
    """Promotes in a transaction of its own; returns what Txn.promote returned."""
    return commit(store, lambda txn: txn.promote(queue, until_us, limit))[0]


def ids(tasks: Iterable[Task]) -> list[str]:
    return [task.task_id for task in tasks]


def listed(reader: Reader, queue: Queue, after: str = "", limit: int = ALL, *, payloads: bool = True) -> list[Task]:
    """The first `limit` tasks of `Reader.tasks` (a lazy iterator without a limit)."""
    return list(itertools.islice(reader.tasks(queue, after, payloads=payloads), limit))


def waiting_ids(
    reader: Reader, queue: Queue, until_us: int = FOREVER, tag: str | None = None, limit: int = ALL
) -> list[str]:
    return ids(reader.waiting(queue, until_us, tag, limit))


def tally(counters: Counters) -> tuple[int, int, int, int]:
    """(scheduled, ready, leased, failed): the counts without the boundary and the entry."""
    return counters.scheduled, counters.ready, counters.leased, counters.failed


def boundary(counters: Counters) -> tuple[int, str]:
    return counters.promoted_through_us, counters.promoted_through_id


# Engines that count by a boundary, and one that counts by a flag per task ---------------------
#
# The memory and RocksDB engines split a queue's waiting tasks into ready and scheduled by a
# boundary in schedule-time order (Counters.promoted_through_us/_id, Counters.counts_as_ready),
# with a promotion index of their own. The PostgreSQL engine marks each waiting task
# (`counted_ready`) instead: its Counters carry no boundary, and its promotion index and
# `next_promotion_us` are derived from the tasks still counted as scheduled. What the contract
# says holds for both: the four counts, which tasks promote counts as ready, and
# next_promotion_us no later than the next task that needs promoting. The helpers below ask
# each engine for its own classification; the boundary itself is checked on boundary engines.


def boundary_engine(reader: Reader) -> bool:
    """Whether the engine (a store or one of its transactions) counts by a boundary."""
    return not isinstance(reader, PgReader)


def counted_ready(reader: Reader, queue: Queue) -> dict[str, bool]:
    """Task id -> whether the engine counts that waiting task as ready (else as scheduled).
    In a PostgreSQL transaction this is what the transaction has sent (its promotions), not
    its buffered writes: call it before the transaction writes tasks of the queue."""
    if boundary_engine(reader):
        counters = reader.counters(queue)
        return {
            task.task_id: counters.counts_as_ready(task.schedule_time_us, task.task_id)
            for task in reader.tasks(queue, "", payloads=False)
            if task.stage is Stage.WAITING
        }
    rows = reader.conn.execute(  # type: ignore[attr-defined]
        "SELECT task_id, counted_ready FROM taskq_tasks WHERE storage_id = %s AND stage = 1",
        (queue.storage_id,),
    ).fetchall()
    return {task_id: ready for task_id, ready in rows}


def ready_ids(reader: Reader, queue: Queue) -> list[str]:
    """The waiting tasks the engine counts as ready, in id order."""
    return sorted(task_id for task_id, ready in counted_ready(reader, queue).items() if ready)


def assert_counters(reader: Reader, queue: Queue, expected: Counters) -> None:
    """The queue's counters are `expected`: all of it on a boundary engine; on one that keeps
    no boundary, everything but the boundary (which it leaves at zero)."""
    found = reader.counters(queue)
    if boundary_engine(reader):
        assert found == expected
    else:
        assert found == dataclasses.replace(expected, promoted_through_us=0, promoted_through_id="")


def recount(reader: Reader, queue: Queue) -> Counters:
    """The counters as they follow from the stored tasks and the engine's own classification
    of its waiting tasks (counted_ready), with the stored boundary and promotion entry."""
    stored = reader.counters(queue)
    counted = Counters(
        promoted_through_us=stored.promoted_through_us,
        promoted_through_id=stored.promoted_through_id,
        next_promotion_us=stored.next_promotion_us,
    )
    ready = counted_ready(reader, queue)
    for task in reader.tasks(queue, "", payloads=False):
        if task.stage is Stage.WAITING:
            if ready[task.task_id]:
                counted.ready += 1
            else:
                counted.scheduled += 1
        elif task.stage is Stage.LEASED:
            counted.leased += 1
        else:
            counted.failed += 1
    return counted


def assert_counters_match_tasks(reader: Reader, queue: Queue) -> None:
    assert reader.counters(queue) == recount(reader, queue)


def first_scheduled(reader: Reader, queue: Queue) -> int | None:
    """The earliest schedule time of a waiting task the counters count as scheduled."""
    ready = counted_ready(reader, queue)
    times = [
        task.schedule_time_us
        for task in reader.tasks(queue, "", payloads=False)
        if task.stage is Stage.WAITING and not ready[task.task_id]
    ]
    return min(times) if times else None


def assert_promotion_entry_covers_scheduled_tasks(reader: Reader, queue: Queue) -> None:
    """The promotion promise the janitor relies on: a queue with tasks counted as scheduled
    has an entry in the promotion index, no later than the first of them."""
    first = first_scheduled(reader, queue)
    if first is None:
        return
    due = reader.counters(queue).next_promotion_us
    assert 0 < due <= first
    assert any(entry.due_us == due and entry.storage_id == queue.storage_id for entry in reader.promotions(due, ALL))


def request_record(task_id: str) -> RequestRecord:
    return RequestRecord(task_id=task_id, tag="", schedule_time_us=7, create_time_us=7)


def snapshot(reader: Reader, names: list[str]) -> dict:
    """Everything a reader can observe, for queues, tasks and reservations named in `names`."""
    seen: dict = {"queues": reader.queues("", ALL), "purging": sorted(q.queue_id for q in reader.purging_queues())}
    for queue in seen["queues"]:
        seen[queue.queue_id] = {
            "by_storage_id": reader.queue_by_storage_id(queue.storage_id),
            "tasks": listed(reader, queue),
            "waiting": waiting_ids(reader, queue),
            "tags": {tag: waiting_ids(reader, queue, tag=tag) for tag in ("", "x", "y")},
            "oldest": reader.oldest_waiting(queue),
            "counters": reader.counters(queue),
            "bucket": reader.bucket(queue),
            "referrers": reader.dead_letter_referrers(queue.queue_id),
            "tombstones": {name: reader.tombstone(queue, name) for name in names},
            "requests": {name: reader.request(queue, name, REQUEST_NOW) for name in names},
            "acks": {name: reader.acked(queue, name, REQUEST_NOW) for name in names},
        }
    seen["leases"] = reader.expired_leases(FOREVER, ALL)
    seen["all_leases"] = reader.leases(None, ALL)
    seen["next_lease"] = reader.next_lease_expiry()
    seen["expiries"] = reader.expiries(FOREVER, ALL)
    seen["next_expiry"] = reader.next_expiry()
    seen["promotions"] = reader.promotions(FOREVER, ALL)
    seen["next_promotion"] = reader.next_promotion()
    seen["request_hours"] = reader.request_hours(2**31, ALL)
    seen["first_request_hour"] = reader.first_request_hour()
    seen["page_token_key"] = reader.page_token_key()
    return seen
