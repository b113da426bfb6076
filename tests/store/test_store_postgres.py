"""What only the PostgreSQL engine promises, next to the contract: it counts a waiting task as
ready or scheduled by a flag on the task (`counted_ready`) rather than by a boundary, so its
Counters carry no boundary, and its promotion index is derived from the tasks still counted as
scheduled (Counters.next_promotion_us is the earliest of them; forget_promotion has no entry of
its own to forget). The counterparts of the boundary-only tests of test_store_counters.py.

What needs two transactions at once is in test_store_concurrency.py.
"""

from __future__ import annotations

import pytest
from store_helpers import (
    ALL,
    FOREVER,
    add_tasks,
    as_leased,
    assert_counters_match_tasks,
    commit,
    create_queue,
    listed,
    promote,
    ready_ids,
    tally,
    waiting_ids,
    waiting_task,
)

from taskq.core.model import Counters, LeaseEntry, Promotion


@pytest.fixture
def store(concurrent_store):
    return concurrent_store


def test_counters_carry_no_boundary(store):
    queue = create_queue(store, "q", create_time_us=100)
    add_tasks(store, queue, waiting_task("past", 1), waiting_task("later", 200))
    # Without a promote in their transaction, tasks count as scheduled, whatever their time.
    assert store.counters(queue) == Counters(scheduled=2, next_promotion_us=1)
    assert promote(store, queue, 150) is True
    assert store.counters(queue) == Counters(scheduled=1, ready=1, next_promotion_us=200)
    assert ready_ids(store, queue) == ["past"]


def test_next_promotion_is_the_first_task_still_counted_as_scheduled(store):
    queue = create_queue(store, "q")
    a, b, c = add_tasks(store, queue, waiting_task("a", 10), waiting_task("b", 20), waiting_task("c", 30))
    assert store.counters(queue).next_promotion_us == 10
    # A bounded promote that stops early leaves it at the first task it did not count.
    assert promote(store, queue, 25, limit=1) is False
    assert store.counters(queue).next_promotion_us == 20
    assert store.promotions(FOREVER, ALL) == [Promotion(20, queue.storage_id)]
    # No stale entry: a scheduled task leased takes its entry with it.
    commit(store, lambda txn: txn.put_task(queue, as_leased(b, 100), b))
    assert store.counters(queue).next_promotion_us == 30
    assert store.promotions(FOREVER, ALL) == [Promotion(30, queue.storage_id)] and store.next_promotion() == 30
    assert_counters_match_tasks(store, queue)


def test_forgetting_a_live_queues_entries_changes_nothing(store):
    queue = create_queue(store, "q")
    add_tasks(store, queue, waiting_task("a", 10), as_leased(waiting_task("l", 1), 50))
    (entry,) = store.promotions(FOREVER, ALL)
    txn = store.begin()
    txn.forget_promotion(entry)
    txn.forget_lease(LeaseEntry(50, queue.storage_id, "l"))
    assert not txn.written()
    store.apply(txn)
    assert store.promotions(FOREVER, ALL) == [entry]
    assert store.expired_leases(FOREVER, ALL) == [LeaseEntry(50, queue.storage_id, "l")]
    assert tally(store.counters(queue)) == (1, 0, 1, 0)


def test_reads_outside_a_transaction_keep_nothing_per_task(store):
    """The store is one long-lived reader: what a transaction notes about the rows it read
    (how each is counted) must not pile up there."""
    queue = create_queue(store, "q")
    add_tasks(store, queue, *[waiting_task(f"t{i:03d}", i) for i in range(200)])
    assert len(listed(store, queue)) == 200
    assert len(waiting_ids(store, queue)) == 200
    assert store.task(queue, "t000") is not None
    assert getattr(store, "flags", {}) == {}
