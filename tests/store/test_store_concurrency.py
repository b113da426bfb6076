"""The storage contract under concurrent transactions: what only an engine whose transactions
run at the same time can be asked (conftest.CONCURRENT_ENGINES: PostgreSQL; the memory and
RocksDB engines have one writer at a time, store/commit.py). Each test opens transactions on
separate connections, from one thread where the order can be chosen, from several where it
is a race.

What a concurrent engine promises: claims (`waiting` in a transaction) never hand one task to
two transactions; reads a decision rests on lock their rows, so of two transactions deciding
about one task the second sees what the first did; a race the locks cannot settle (a name
created twice, a row gone or changed since it was read) fails at apply with ConflictError and
leaves nothing half-written; counters stay equal to a recount however many transactions
update them at once.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

import psycopg
import pytest
from store_helpers import (
    ALL,
    FOREVER,
    REQUEST_NOW,
    add_tasks,
    as_failed,
    as_leased,
    as_waiting,
    assert_counters_match_tasks,
    commit,
    create_queue,
    ids,
    listed,
    new_queue,
    ready_ids,
    request_record,
    tally,
    waiting_ids,
    waiting_task,
)

from taskq.core.model import QueueState, Stage
from taskq.store.base import Store, Txn
from taskq.store.postgres.store import ConflictError, storage_error

T = TypeVar("T")

#: How long a thread of a test may take before the test fails (seconds).
THREAD_TIMEOUT_S = 60


@pytest.fixture
def store(concurrent_store):
    return concurrent_store


def begin(store: Store) -> Txn:
    """A transaction that gives up waiting for a lock after a while: a test that deadlocks
    fails instead of hanging."""
    txn = store.begin()
    txn.conn.execute("SET LOCAL lock_timeout = '20s'")  # type: ignore[attr-defined]
    return txn


def transact(store: Store, mutation: Callable[[Txn], T], attempts: int = 100) -> T:
    """Runs `mutation` in a transaction and applies it, again after each conflict, as the
    PostgreSQL Database does (store/postgres/database.py)."""
    for _ in range(attempts):
        txn = begin(store)
        try:
            result = mutation(txn)
        except psycopg.Error as error:
            store.discard(txn)
            if isinstance(storage_error(error), ConflictError):
                continue
            raise
        except BaseException:
            store.discard(txn)
            raise
        try:
            store.apply(txn)
        except ConflictError:
            continue
        return result
    raise AssertionError(f"still conflicting after {attempts} attempts")


def in_threads(*work: Callable[[], object]) -> list[object]:
    """Runs each callable in a thread of its own, all started together; returns their results
    (re-raising the first failure)."""
    results: list[object] = [None] * len(work)
    errors: list[BaseException] = []
    start = threading.Barrier(len(work))

    def run(index: int, fn: Callable[[], object]) -> None:
        try:
            start.wait(THREAD_TIMEOUT_S)
            results[index] = fn()
        except BaseException as error:  # noqa: BLE001 - handed to the test
            errors.append(error)

    threads = [threading.Thread(target=run, args=(i, fn), daemon=True) for i, fn in enumerate(work)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(THREAD_TIMEOUT_S)
        assert not thread.is_alive(), "a thread of the test hung"
    if errors:
        raise errors[0]
    return results


# Claims -----------------------------------------------------------------------------------


def test_two_transactions_claiming_one_queue_never_get_the_same_task(store):
    queue = create_queue(store, "q")
    add_tasks(store, queue, *[waiting_task(f"t{i:02d}", 10 + i % 3) for i in range(12)])
    first, second = begin(store), begin(store)
    claimed_first = list(first.waiting(queue, 100, limit=5))
    claimed_second = list(second.waiting(queue, 100, limit=5))
    assert len(claimed_first) == len(claimed_second) == 5
    assert not set(ids(claimed_first)) & set(ids(claimed_second))
    # Each takes the oldest it can have: the first the five oldest, the second the next five.
    every = waiting_ids(store, queue, 100)
    assert ids(claimed_first) == every[:5] and ids(claimed_second) == every[5:10]
    for txn, claimed in ((first, claimed_first), (second, claimed_second)):
        for task in claimed:
            txn.put_task(queue, as_leased(task, 500), task)
    store.apply(second)
    store.apply(first)
    assert sorted(e.task_id for e in store.expired_leases(FOREVER, ALL)) == sorted(every[:10])
    assert tally(store.counters(queue)) == (2, 0, 10, 0)
    assert_counters_match_tasks(store, queue)


def test_a_claim_sees_tasks_another_transaction_released(store):
    queue = create_queue(store, "q")
    add_tasks(store, queue, waiting_task("a", 10), waiting_task("b", 20))
    holder = begin(store)
    assert ids(holder.waiting(queue, 100, limit=1)) == ["a"]
    other = begin(store)
    assert ids(other.waiting(queue, 100)) == ["b"]
    store.discard(other)
    store.discard(holder)  # releases "a" unchanged
    again = begin(store)
    assert ids(again.waiting(queue, 100)) == ["a", "b"]
    store.discard(again)


def test_many_workers_claiming_at_once_lease_every_task_once(store):
    queue = create_queue(store, "q")
    add_tasks(store, queue, *[waiting_task(f"t{i:03d}", i % 7) for i in range(120)])
    leased_by: dict[str, int] = {}
    lock = threading.Lock()

    def worker(number: int) -> None:
        while True:
            def claim(txn: Txn) -> list[str]:
                tasks = list(txn.waiting(queue, 100, limit=3))
                for task in tasks:
                    txn.put_task(queue, as_leased(task, 1000 + number), task)
                return ids(tasks)

            claimed = transact(store, claim)
            if not claimed:
                return
            with lock:
                for task_id in claimed:
                    assert task_id not in leased_by, f"{task_id} leased twice"
                    leased_by[task_id] = number

    in_threads(*[lambda number=number: worker(number) for number in range(6)])
    assert len(leased_by) == 120
    assert waiting_ids(store, queue) == []
    assert tally(store.counters(queue)) == (0, 0, 120, 0)
    assert_counters_match_tasks(store, queue)


# Two transactions deciding about one task -------------------------------------------------


def _ack(queue, token):
    def mutation(txn: Txn) -> bool:
        task = txn.task(queue, "t")  # locks the task
        if task is None or task.stage is not Stage.LEASED or task.lease_token != token:
            return False
        txn.delete_task(queue, task)
        txn.put_ack(queue, "t", token, REQUEST_NOW)
        return True

    return mutation


def _expire(queue, token):
    def mutation(txn: Txn) -> bool:
        task = txn.task(queue, "t")  # locks the task
        if task is None or task.stage is not Stage.LEASED or task.lease_token != token:
            return False
        txn.put_task(queue, as_waiting(task, 5), task)
        return True

    return mutation


def _assert_one_winner(store, queue, token: str, acked: bool, expired: bool) -> None:
    assert acked != expired, "exactly one of the ack and the expiry wins"
    stored = store.task(queue, "t")
    if acked:
        assert stored is None and store.acked(queue, "t", REQUEST_NOW) == token
    else:
        assert stored is not None and stored.stage is Stage.WAITING
        assert store.acked(queue, "t", REQUEST_NOW) != token
    assert store.expired_leases(FOREVER, ALL) == []
    assert_counters_match_tasks(store, queue)


def test_a_transaction_reading_a_task_another_holds_waits_and_sees_its_change(store):
    queue = create_queue(store, "q")
    (task,) = add_tasks(store, queue, as_leased(waiting_task("t", 1), 50))
    first = begin(store)
    assert _ack(queue, task.lease_token)(first) is True  # holds the task's lock
    outcome: list[bool] = []
    waiter = threading.Thread(target=lambda: outcome.append(transact(store, _expire(queue, task.lease_token))))
    waiter.start()
    waiter.join(0.5)
    assert waiter.is_alive(), "the expiry waits for the ack's transaction"
    store.apply(first)
    waiter.join(THREAD_TIMEOUT_S)
    assert not waiter.is_alive()
    assert outcome == [False]  # it saw the task acknowledged: nothing to expire
    _assert_one_winner(store, queue, task.lease_token, True, False)


@pytest.mark.parametrize("rounds", [25])
def test_an_ack_racing_an_expiry_has_exactly_one_winner(store, rounds):
    queue = create_queue(store, "q")
    wins = {"ack": 0, "expiry": 0}
    for round_number in range(rounds):
        (task,) = add_tasks(store, queue, as_leased(waiting_task("t", 1), 50 + round_number))
        ack, expire = _ack(queue, task.lease_token), _expire(queue, task.lease_token)
        acked, expired = in_threads(*[lambda fn=fn: transact(store, fn) for fn in (ack, expire)])
        _assert_one_winner(store, queue, task.lease_token, bool(acked), bool(expired))
        wins["ack" if acked else "expiry"] += 1
        # Clear the way for the next round.
        commit(store, *([lambda txn: txn.delete_task(queue, txn.task(queue, "t"))] if expired else []))
        assert listed(store, queue) == []
    assert sum(wins.values()) == rounds


def test_replacing_a_task_another_transaction_deleted_fails_and_counts_nothing(store):
    queue = create_queue(store, "q")
    (task,) = add_tasks(store, queue, as_leased(waiting_task("t", 1), 50))
    late = begin(store)  # decides on `task` as it was, without reading it again
    commit(store, lambda txn: txn.delete_task(queue, task))
    late.put_task(queue, as_waiting(task, 5), task)
    with pytest.raises(ConflictError):
        store.apply(late)
    assert listed(store, queue) == []
    assert tally(store.counters(queue)) == (0, 0, 0, 0)
    assert_counters_match_tasks(store, queue)


def test_promote_skips_a_task_another_transaction_holds_and_says_it_is_not_done(store):
    queue = create_queue(store, "q")
    add_tasks(store, queue, waiting_task("a", 10), waiting_task("b", 20), waiting_task("c", 30))
    holder = begin(store)
    assert holder.task(queue, "b") is not None  # holds "b"
    promoting = begin(store)
    assert promoting.promote(queue, 25, ALL) is False  # "b" is due and still counted as scheduled
    store.apply(promoting)
    assert ready_ids(store, queue) == ["a"]
    assert 0 < store.counters(queue).next_promotion_us <= 20
    store.discard(holder)
    assert transact(store, lambda txn: txn.promote(queue, 25, ALL)) is True
    assert ready_ids(store, queue) == ["a", "b"]
    assert_counters_match_tasks(store, queue)


# Names created twice ------------------------------------------------------------------------


def test_a_task_name_created_by_two_transactions_fails_the_second_whole(store):
    queue = create_queue(store, "q")
    other = create_queue(store, "other")
    txns = [begin(store), begin(store)]
    for number, txn in enumerate(txns):
        assert txn.task(queue, "name") is None and txn.tombstone(queue, "name") is None  # both see it free
        txn.put_task(queue, waiting_task("name", 10 + number, payload=b"%d" % number), None)
        txn.put_task(queue, waiting_task(f"unnamed-{number}", 10), None)
        txn.put_task(other, as_leased(waiting_task(f"elsewhere-{number}", 1), 50), None)
        txn.put_request(queue, f"req-{number}", request_record("name"))
        txn.put_tombstone(queue, f"gone-{number}", 70)
    store.apply(txns[0])
    with pytest.raises(ConflictError):
        store.apply(txns[1])
    # The first is stored whole, nothing of the second.
    assert store.task(queue, "name").payload == b"0"
    assert ids(listed(store, queue)) == ["name", "unnamed-0"]
    assert ids(listed(store, other)) == ["elsewhere-0"]
    assert store.request(queue, "req-0", REQUEST_NOW) is not None and store.request(queue, "req-1", REQUEST_NOW) is None
    assert store.tombstone(queue, "gone-0") == 70 and store.tombstone(queue, "gone-1") is None
    assert tally(store.counters(queue)) == (2, 0, 0, 0) and tally(store.counters(other)) == (0, 0, 1, 0)
    assert_counters_match_tasks(store, queue)
    assert_counters_match_tasks(store, other)


def test_concurrent_creates_of_one_task_name_store_one_task(store):
    queue = create_queue(store, "q")

    def create(number: int) -> bool:
        def mutation(txn: Txn) -> bool:
            if txn.task(queue, "name") is not None:
                return False
            txn.put_task(queue, waiting_task("name", 10, payload=b"%d" % number), None)
            return True

        return transact(store, mutation)

    created = in_threads(*[lambda number=number: create(number) for number in range(4)])
    assert created.count(True) == 1
    assert ids(listed(store, queue)) == ["name"]
    assert tally(store.counters(queue)) == (1, 0, 0, 0)


def test_a_queue_created_by_two_transactions_fails_the_second(store):
    first, second = begin(store), begin(store)
    assert first.queue("q") is None and second.queue("q") is None
    mine, theirs = new_queue("q", create_time_us=1), new_queue("q", create_time_us=2)
    first.put_queue(mine)
    second.put_queue(theirs)
    store.apply(first)
    with pytest.raises(ConflictError):
        store.apply(second)
    stored = store.queue("q")
    assert stored.storage_id == mine.storage_id and stored.create_time_us == 1
    assert store.queue_by_storage_id(theirs.storage_id) is None


def test_a_queue_changed_since_a_transaction_read_it_is_not_overwritten(store):
    create_queue(store, "q")
    purging, pausing = begin(store), begin(store)
    purged, paused = purging.queue("q"), pausing.queue("q")
    purged.purging, purged.purge_time_us = True, 5
    purging.put_queue(purged)
    paused.state = QueueState.PAUSED
    pausing.put_queue(paused)
    store.apply(purging)
    with pytest.raises(ConflictError):
        store.apply(pausing)  # it would have undone the purge
    assert store.queue("q").purging is True
    # Run again, it sees the purge and keeps it.

    def pause(txn: Txn) -> None:
        queue = txn.queue("q")
        queue.state = QueueState.PAUSED
        txn.put_queue(queue)

    transact(store, pause)
    stored = store.queue("q")
    assert stored.purging is True and stored.purge_time_us == 5 and stored.state is QueueState.PAUSED


# Counters -----------------------------------------------------------------------------------


def test_many_concurrent_transactions_keep_one_queues_counters_equal_to_a_recount(store):
    queue = create_queue(store, "q")
    add_tasks(store, queue, *[waiting_task(f"seed{i:02d}", i) for i in range(20)])

    def worker(number: int) -> None:
        for step in range(15):
            def mutation(txn: Txn, step: int = step) -> None:
                now = 10 + step
                txn.promote(queue, now, 4)
                txn.put_task(queue, waiting_task(f"w{number}-{step}", now + (step % 3) * 10), None)
                for task in list(txn.waiting(queue, now, limit=1)):
                    if step % 4 == 3:
                        txn.put_task(queue, as_failed(as_leased(task, now), now + 100), task)
                    else:
                        txn.put_task(queue, as_leased(task, now + 50), task)

            transact(store, mutation)

    in_threads(*[lambda number=number: worker(number) for number in range(8)])
    counters = store.counters(queue)
    assert counters.total == 20 + 8 * 15
    assert_counters_match_tasks(store, queue)
    # The counts were spread over several of the queue's counter rows.
    stripes = store.conn.execute(
        "SELECT count(*) FROM taskq_counters WHERE storage_id = %s", (queue.storage_id,)
    ).fetchone()[0]
    assert stripes > 1


# A queue deleted while its tasks are written ----------------------------------------------


def test_a_task_written_as_its_queue_is_deleted_fails_and_leaves_nothing(store):
    queue = create_queue(store, "doomed")
    kept = create_queue(store, "kept")
    add_tasks(store, kept, waiting_task("k", 40), as_leased(waiting_task("kl", 1), 45))
    writer = begin(store)
    assert writer.queue("doomed") is not None
    writer.put_task(queue, waiting_task("w", 10), None)
    writer.put_task(queue, as_leased(waiting_task("l", 1), 20), None)
    writer.put_task(queue, as_failed(waiting_task("f", 1), 30), None)
    commit(store, lambda txn: txn.delete_queue(queue))
    # The writer did not see the deletion: its commit fails as a conflict (run again, its
    # mutation would find no queue), instead of leaving rows of a queue that is gone.
    with pytest.raises(ConflictError):
        store.apply(writer)
    assert store.queue("doomed") is None

    # What the janitor and the reaper do with entries of a queue that is gone.
    def drop(txn: Txn) -> None:
        for entry in txn.promotions(FOREVER, ALL):
            if txn.queue_by_storage_id(entry.storage_id) is None:
                txn.forget_promotion(entry)
        for lease in txn.expired_leases(FOREVER, ALL):
            if txn.queue_by_storage_id(lease.storage_id) is None:
                txn.forget_lease(lease)
        for expiry in txn.expiries(FOREVER, ALL):
            if txn.queue_by_storage_id(expiry.storage_id) is None:
                txn.delete_expiry(expiry)

    transact(store, drop)
    assert [p.storage_id for p in store.promotions(FOREVER, ALL)] == [kept.storage_id]
    assert [e.storage_id for e in store.expired_leases(FOREVER, ALL)] == [kept.storage_id]
    assert store.expiries(FOREVER, ALL) == []
    assert store.next_promotion() == 40 and store.next_lease_expiry() == 45 and store.next_expiry() is None
    assert ids(listed(store, kept)) == ["k", "kl"]
    assert_counters_match_tasks(store, kept)
