"""The storage contract (store/base.py), part 1: queues, tasks, the waiting-task indexes,
transactions (atomicity, what their reads see) and injected failures. Run against every
engine of conftest.ENGINES.

The other parts: test_store_counters.py (counters, promotion), test_store_housekeeping.py (the
global due-time indexes, tombstones, request ids, acknowledgements), test_store_walk.py (a
random walk against a model), test_store_rocksdb.py (persistence, migration: RocksDB only).
"""

from __future__ import annotations

import pytest
from store_helpers import (
    ALL,
    FOREVER,
    REQUEST_NOW,
    add_tasks,
    as_failed,
    as_leased,
    as_waiting,
    assert_counters,
    assert_counters_match_tasks,
    boundary_engine,
    commit,
    create_queue,
    ids,
    listed,
    new_queue,
    promote,
    remove,
    replace,
    request_record,
    snapshot,
    tally,
    waiting_ids,
    waiting_task,
)

from taskq.core.model import (
    Attempt,
    Counters,
    Expiry,
    ExpiryKind,
    LeaseEntry,
    QueueState,
    QueueType,
    RetryPolicy,
    Stage,
    Task,
    TokenState,
)
from taskq.store.base import StoreError

# Queues -----------------------------------------------------------------------------------


def test_a_new_queue_gets_a_nonzero_storage_id_as_soon_as_it_is_put(store):
    first, second = new_queue("first"), new_queue("second")
    txn = store.begin()
    txn.put_queue(first)
    txn.put_queue(second)
    assert first.storage_id != 0 and second.storage_id != 0
    assert first.storage_id != second.storage_id
    store.apply(txn)
    assert store.queue("first").storage_id == first.storage_id
    assert store.queue("second").storage_id == second.storage_id


def test_storage_ids_are_not_reused_by_later_queues(store):
    sids = [create_queue(store, f"q{i}").storage_id for i in range(5)]
    assert len(set(sids)) == 5


def test_updating_a_queue_keeps_its_storage_id_and_its_tasks(store):
    queue = create_queue(store, "q")
    add_tasks(store, queue, waiting_task("t", 5))
    updated = store.queue("q")
    updated.state = QueueState.PAUSED
    updated.max_concurrent_dispatches = 3
    commit(store, lambda txn: txn.put_queue(updated))
    stored = store.queue("q")
    assert stored.storage_id == queue.storage_id
    assert stored.state is QueueState.PAUSED and stored.max_concurrent_dispatches == 3
    assert ids(listed(store, stored)) == ["t"]
    assert tally(store.counters(stored)) == (1, 0, 0, 0)


def test_a_queue_keeps_every_field(store):
    queue = new_queue(
        "full",
        QueueType.PUSH,
        create_time_us=11,
        state=QueueState.PAUSED,
        max_dispatches_per_second=2.5,
        max_burst_size=7,
        max_concurrent_dispatches=9,
        dead_letter_queue="dead",
        purge_time_us=13,
        purging=True,
    )
    queue.update_time_us = 12
    commit(store, lambda txn: txn.put_queue(queue))
    assert store.queue("full") == queue
    assert store.queue_by_storage_id(queue.storage_id) == queue
    unlimited = new_queue("unlimited", max_dispatches_per_second=None)
    commit(store, lambda txn: txn.put_queue(unlimited))
    assert store.queue("unlimited").max_dispatches_per_second is None
    assert store.queue("unlimited").purging is False


def test_an_unknown_queue_is_none(store):
    assert store.queue("missing") is None
    assert store.queue_by_storage_id(12345) is None


def test_a_queue_is_found_by_its_storage_id_only_while_it_lives(store):
    queue = create_queue(store, "q")
    assert store.queue_by_storage_id(queue.storage_id).queue_id == "q"
    commit(store, lambda txn: txn.delete_queue(queue))
    assert store.queue("q") is None
    assert store.queue_by_storage_id(queue.storage_id) is None


def test_queues_are_listed_in_id_order_after_the_cursor_up_to_the_limit(store):
    for queue_id in ["m", "b", "z", "a", "ba", "c"]:
        create_queue(store, queue_id)
    assert [q.queue_id for q in store.queues("", ALL)] == ["a", "b", "ba", "c", "m", "z"]
    assert [q.queue_id for q in store.queues("", 2)] == ["a", "b"]
    assert [q.queue_id for q in store.queues("b", 2)] == ["ba", "c"]
    assert [q.queue_id for q in store.queues("bb", 10)] == ["c", "m", "z"]
    assert store.queues("z", 10) == []
    assert store.queues("", 0) == []
    pages, after = [], ""
    while page := store.queues(after, 4):
        pages.append([q.queue_id for q in page])
        after = page[-1].queue_id
    assert pages == [["a", "b", "ba", "c"], ["m", "z"]]


def test_returned_queues_are_copies(store):
    queue = create_queue(store, "q", purging=True)
    queue.max_concurrent_dispatches = 77  # the caller's object, after apply
    queue.retry.max_attempts = 77
    found_by = (
        store.queue("q"),
        store.queue_by_storage_id(queue.storage_id),
        store.queues("", 1)[0],
        store.purging_queues()[0],
    )
    for found in found_by:
        assert found.max_concurrent_dispatches == 1000
        assert found.retry.max_attempts == 5
        found.max_concurrent_dispatches = 99
        found.retry.max_attempts = 99
    assert store.queue("q").max_concurrent_dispatches == 1000
    assert store.queue("q").retry.max_attempts == 5


def test_purging_queues_are_those_whose_purge_is_not_finished(store):
    assert store.purging_queues() == []
    create_queue(store, "idle")
    create_queue(store, "b", purge_time_us=5, purging=True)
    a = create_queue(store, "a", purge_time_us=6, purging=True)
    create_queue(store, "done", purge_time_us=4, purging=False)
    assert sorted(q.queue_id for q in store.purging_queues()) == ["a", "b"]
    assert {q.queue_id: q.purge_time_us for q in store.purging_queues()} == {"a": 6, "b": 5}

    finished = store.queue("a")
    finished.purging = False
    commit(store, lambda txn: txn.put_queue(finished))
    assert [q.queue_id for q in store.purging_queues()] == ["b"]
    again = store.queue("a")
    again.purging = True
    commit(store, lambda txn: txn.put_queue(again), lambda txn: txn.delete_queue(store.queue("b")))
    assert [q.queue_id for q in store.purging_queues()] == ["a"]
    assert store.purging_queues()[0].storage_id == a.storage_id


def test_dead_letter_referrers_are_the_queues_naming_one_as_their_dead_letter_queue(store):
    assert store.dead_letter_referrers("dead") == []
    create_queue(store, "dead")
    create_queue(store, "z-source", dead_letter_queue="dead")
    create_queue(store, "a-source", dead_letter_queue="dead")
    create_queue(store, "elsewhere", dead_letter_queue="other")
    create_queue(store, "none")
    create_queue(store, "dead-itself", dead_letter_queue="dead-itself")
    assert store.dead_letter_referrers("dead") == ["a-source", "z-source"]
    assert store.dead_letter_referrers("other") == ["elsewhere"]
    assert store.dead_letter_referrers("dead-itself") == ["dead-itself"]
    assert store.dead_letter_referrers("none") == []

    moved = store.queue("z-source")
    moved.dead_letter_queue = "other"
    commit(store, lambda txn: txn.put_queue(moved), lambda txn: txn.delete_queue(store.queue("a-source")))
    assert store.dead_letter_referrers("dead") == []
    assert store.dead_letter_referrers("other") == ["elsewhere", "z-source"]


def test_a_recreated_queue_gets_a_new_storage_id_and_nothing_of_the_old_one(store):
    old = create_queue(store, "q", QueueType.PUSH, create_time_us=0)
    commit(
        store,
        lambda txn: txn.put_task(old, waiting_task("a", 5, tag="x"), None),
        lambda txn: txn.put_task(old, as_leased(waiting_task("b", 5), 50), None),
        lambda txn: txn.put_task(old, as_failed(waiting_task("c", 5), 60), None),
        lambda txn: txn.put_task(old, waiting_task("d", 500), None),
        lambda txn: txn.put_tombstone(old, "gone", 70),
        lambda txn: txn.put_request(old, "req", request_record("a")),
        lambda txn: txn.put_ack(old, "acked", "token", REQUEST_NOW),
        lambda txn: txn.put_bucket(old, TokenState(2.5, 9)),
    )
    promote(store, old, 10)
    assert store.counters(old).ready == 1

    commit(store, lambda txn: txn.delete_queue(old))
    fresh = create_queue(store, "q", QueueType.PUSH, create_time_us=100)

    assert fresh.storage_id != old.storage_id
    assert store.queue("q").storage_id == fresh.storage_id
    assert store.queue_by_storage_id(old.storage_id) is None
    assert store.queue_by_storage_id(fresh.storage_id).queue_id == "q"
    assert listed(store, fresh) == []
    for task_id in "abcd":
        assert store.task(fresh, task_id) is None
    assert waiting_ids(store, fresh) == []
    assert store.oldest_waiting(fresh) is None
    assert store.tombstone(fresh, "gone") is None
    assert store.request(fresh, "req", REQUEST_NOW) is None
    assert store.acked(fresh, "acked", REQUEST_NOW) is None
    assert store.bucket(fresh) is None
    assert_counters(store, fresh, Counters(promoted_through_us=100))


def test_a_queue_can_be_deleted_and_recreated_in_one_transaction(store):
    old = create_queue(store, "q")
    add_tasks(store, old, waiting_task("a", 5))
    fresh = new_queue("q", create_time_us=3)
    commit(store, lambda txn: txn.delete_queue(old), lambda txn: txn.put_queue(fresh))
    assert fresh.storage_id != old.storage_id
    assert store.queue("q").storage_id == fresh.storage_id
    assert store.queue_by_storage_id(old.storage_id) is None
    assert listed(store, fresh) == []
    assert_counters(store, fresh, Counters(promoted_through_us=3))


def test_delete_queue_removes_everything_of_that_queue_and_nothing_of_others(store):
    doomed = create_queue(store, "doomed", QueueType.PULL)
    kept = create_queue(store, "kept", QueueType.PULL)
    for queue in (doomed, kept):
        commit(
            store,
            lambda txn, q=queue: txn.put_task(q, waiting_task("w", 5, tag="x"), None),
            lambda txn, q=queue: txn.put_task(q, waiting_task("later", 500), None),
            lambda txn, q=queue: txn.put_task(q, as_leased(waiting_task("l", 5), 50 + q.storage_id), None),
            lambda txn, q=queue: txn.put_task(q, as_failed(waiting_task("f", 5), 60 + q.storage_id), None),
            lambda txn, q=queue: txn.put_tombstone(q, "gone", 70 + q.storage_id),
            lambda txn, q=queue: txn.put_request(q, "req", request_record("w")),
            lambda txn, q=queue: txn.put_ack(q, "acked", "token", REQUEST_NOW),
            lambda txn, q=queue: txn.put_bucket(q, TokenState(1.5, 3)),
        )
        promote(store, queue, 10)

    def observe(queue):
        return {
            "tasks": listed(store, queue),
            "waiting": waiting_ids(store, queue),
            "tagged": waiting_ids(store, queue, tag="x"),
            "counters": store.counters(queue),
            "tombstone": store.tombstone(queue, "gone"),
            "request": store.request(queue, "req", REQUEST_NOW),
            "acked": store.acked(queue, "acked", REQUEST_NOW),
            "bucket": store.bucket(queue),
            "oldest": store.oldest_waiting(queue),
        }

    kept_before = observe(kept)
    commit(store, lambda txn: txn.delete_queue(doomed))

    assert store.queue("doomed") is None
    assert [q.queue_id for q in store.queues("", ALL)] == ["kept"]
    assert observe(doomed) == {
        "tasks": [],
        "waiting": [],
        "tagged": [],
        "counters": Counters(),
        "tombstone": None,
        "request": None,
        "acked": None,
        "bucket": None,
        "oldest": None,
    }
    assert store.task(doomed, "w") is None
    assert observe(kept) == kept_before
    assert store.queue("kept").storage_id == kept.storage_id
    # The global indexes keep the kept queue's entries; the doomed queue's may stay (readers
    # drop them), but only those it had.
    assert [e for e in store.expired_leases(FOREVER, ALL) if e.storage_id == kept.storage_id] == [
        LeaseEntry(50 + kept.storage_id, kept.storage_id, "l")
    ]
    assert [e for e in store.expiries(FOREVER, ALL) if e.storage_id == kept.storage_id] == [
        Expiry(60 + kept.storage_id, ExpiryKind.FAILED_TASK, kept.storage_id, "f"),
        Expiry(70 + kept.storage_id, ExpiryKind.TOMBSTONE, kept.storage_id, "gone"),
    ]
    assert set(store.leases(None, ALL)) <= {
        LeaseEntry(50 + kept.storage_id, kept.storage_id, "l"),
        LeaseEntry(50 + doomed.storage_id, doomed.storage_id, "l"),
    }


# Tasks ------------------------------------------------------------------------------------


def test_a_task_keeps_every_field(store):
    queue = create_queue(store, "q")
    task = Task(
        task_id="full",
        schedule_time_us=10,
        create_time_us=3,
        payload=b"\x00\xffpayload",
        attributes={"k": "v", "empty": ""},
        tag="tag",
        stage=Stage.LEASED,
        attempt_count=4,
        first_attempt_time_us=5,
        last_attempt=Attempt(dispatch_time_us=6, response_time_us=7, error_code=13, error_message="boom"),
        lease_token="token",
        lease_expire_us=99,
        retry=RetryPolicy(max_attempts=3, max_backoff_us=0),
        dispatch_deadline_us=8,
        named=True,
        retain_until_us=0,
        trace_parent="00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        trace_state="vendor=value,other=1",
    )
    add_tasks(store, queue, task)
    assert store.task(queue, "full") == task
    assert listed(store, queue) == [task]
    plain = waiting_task("plain", 1)
    add_tasks(store, queue, plain)
    assert store.task(queue, "plain") == plain
    assert store.task(queue, "plain").retry is None and store.task(queue, "plain").last_attempt is None


def test_an_unknown_task_is_none(store):
    queue = create_queue(store, "q")
    assert store.task(queue, "missing") is None


def test_tasks_are_listed_in_id_order_after_the_cursor(store):
    queue = create_queue(store, "q")
    for i, task_id in enumerate(["m", "b", "z", "a", "ba", "c"]):
        add_tasks(store, queue, waiting_task(task_id, 100 - i))
    assert ids(listed(store, queue)) == ["a", "b", "ba", "c", "m", "z"]
    assert ids(listed(store, queue, "", 2)) == ["a", "b"]
    assert ids(listed(store, queue, "b", 2)) == ["ba", "c"]
    assert ids(listed(store, queue, "bb")) == ["c", "m", "z"]
    assert listed(store, queue, "z") == []
    pages, after = [], ""
    while page := listed(store, queue, after, 4):
        pages.append(ids(page))
        after = page[-1].task_id
    assert pages == [["a", "b", "ba", "c"], ["m", "z"]]


def test_tasks_are_read_as_the_iterator_advances(store):
    queue = create_queue(store, "q")
    add_tasks(store, queue, *[waiting_task(f"t{i}", i) for i in range(5)])
    iterator = store.tasks(queue, "")
    assert next(iterator).task_id == "t0"
    assert next(iterator).task_id == "t1"
    # A caller may stop early, and another scan meanwhile is independent of it.
    assert ids(listed(store, queue, "t2")) == ["t3", "t4"]
    assert ids(iterator) == ["t2", "t3", "t4"]


def test_tasks_without_payloads_are_the_tasks_with_empty_payloads(store):
    queue = create_queue(store, "q")
    stored = add_tasks(
        store,
        queue,
        waiting_task("a", 1, payload=b"a" * 1000, attributes={"k": "v"}),
        as_leased(waiting_task("b", 1, payload=b"\x00b"), 50),
        as_failed(waiting_task("c", 1, payload=b""), 60),
    )
    light = listed(store, queue, payloads=False)
    expected = []
    for task in stored:
        copy = task.copy()
        copy.payload = b""
        expected.append(copy)
    assert light == expected
    assert listed(store, queue) == stored
    assert ids(listed(store, queue, "a", payloads=False)) == ["b", "c"]


def test_tasks_of_one_queue_are_invisible_in_another(store):
    first, second = create_queue(store, "a"), create_queue(store, "ab")
    add_tasks(store, first, waiting_task("t1", 5, tag="x"))
    add_tasks(store, second, waiting_task("t2", 5, tag="x"), as_leased(waiting_task("t3", 5), 9))
    assert ids(listed(store, first)) == ["t1"]
    assert ids(listed(store, second)) == ["t2", "t3"]
    assert store.task(first, "t2") is None
    assert waiting_ids(store, first) == ["t1"]
    assert waiting_ids(store, first, tag="x") == ["t1"]
    assert waiting_ids(store, second, tag="x") == ["t2"]
    assert store.counters(first).leased == 0 and store.counters(second).leased == 1


def test_returned_tasks_are_copies(store):
    queue = create_queue(store, "q")
    task = waiting_task("t", 5, attributes={"k": "v"})
    add_tasks(store, queue, task)
    task.attributes["k"] = "changed by the caller after put"
    task.schedule_time_us = 6
    for found in (store.task(queue, "t"), listed(store, queue)[0], next(store.waiting(queue, FOREVER))):
        assert found.attributes == {"k": "v"} and found.schedule_time_us == 5
        found.attributes["k"] = "changed by a reader"
        found.schedule_time_us = 9
    assert store.task(queue, "t") == waiting_task("t", 5, attributes={"k": "v"})


def test_a_replaced_task_is_stored_as_given(store):
    queue = create_queue(store, "q")
    (task,) = add_tasks(store, queue, waiting_task("t", 5))
    changed = task.copy()
    changed.payload = b"new"
    changed.attempt_count = 2
    replace(store, queue, task, changed)
    assert store.task(queue, "t") == changed
    assert store.counters(queue).total == 1


def test_a_deleted_task_is_gone_from_the_store_and_its_indexes(store):
    queue = create_queue(store, "q")
    waiting, leased, failed = add_tasks(
        store,
        queue,
        waiting_task("w", 5, tag="x"),
        as_leased(waiting_task("l", 5), 50),
        as_failed(waiting_task("f", 5), 60),
    )
    commit(store, *[lambda txn, t=t: txn.delete_task(queue, t) for t in (waiting, leased, failed)])
    assert listed(store, queue) == []
    assert waiting_ids(store, queue) == [] and waiting_ids(store, queue, tag="x") == []
    assert store.expired_leases(FOREVER, ALL) == [] and store.leases(None, ALL) == []
    assert store.expiries(FOREVER, ALL) == []
    assert store.counters(queue).total == 0


# Transactions -----------------------------------------------------------------------------


def test_a_transactions_writes_are_invisible_until_it_is_applied(store):
    queue = create_queue(store, "q", create_time_us=0)
    txn = store.begin()
    txn.promote(queue, 10, ALL)
    fresh = new_queue("fresh", purging=True, dead_letter_queue="q")
    txn.put_queue(fresh)
    txn.put_task(queue, waiting_task("w", 5, tag="x"), None)
    txn.put_task(queue, waiting_task("s", 50), None)
    txn.put_task(queue, as_leased(waiting_task("l", 5), 50), None)
    txn.put_tombstone(queue, "name", 70)
    txn.put_request(queue, "req", request_record("w"))
    txn.put_ack(queue, "acked", "token", REQUEST_NOW)
    txn.put_bucket(queue, TokenState(4.0, 6))
    assert txn.written()

    def assert_nothing_visible() -> None:
        assert store.queue("fresh") is None and store.queue_by_storage_id(fresh.storage_id) is None
        assert [q.queue_id for q in store.queues("", ALL)] == ["q"]
        assert store.purging_queues() == [] and store.dead_letter_referrers("q") == []
        assert store.task(queue, "w") is None and listed(store, queue) == []
        assert waiting_ids(store, queue) == [] and waiting_ids(store, queue, tag="x") == []
        assert store.oldest_waiting(queue) is None
        assert store.expired_leases(FOREVER, ALL) == [] and store.next_lease_expiry() is None
        assert store.leases(None, ALL) == []
        assert store.expiries(FOREVER, ALL) == [] and store.next_expiry() is None
        assert store.promotions(FOREVER, ALL) == [] and store.next_promotion() is None
        assert store.request_hours(2**31, ALL) == [] and store.first_request_hour() is None
        assert store.tombstone(queue, "name") is None and store.request(queue, "req", REQUEST_NOW) is None
        assert store.acked(queue, "acked", REQUEST_NOW) is None and store.bucket(queue) is None
        assert store.counters(queue) == Counters()

    assert_nothing_visible()
    store.apply(txn)
    assert store.queue("fresh") is not None
    assert [q.queue_id for q in store.purging_queues()] == ["fresh"]
    assert store.dead_letter_referrers("q") == ["fresh"]
    assert ids(listed(store, queue)) == ["l", "s", "w"]
    assert waiting_ids(store, queue, tag="x") == ["w"]
    assert store.next_lease_expiry() == 50
    assert store.tombstone(queue, "name") == 70
    assert store.request(queue, "req", REQUEST_NOW) == request_record("w")
    assert store.acked(queue, "acked", REQUEST_NOW) == "token"
    assert store.bucket(queue) == TokenState(4.0, 6)
    assert_counters(
        store, queue, Counters(scheduled=1, ready=1, leased=1, promoted_through_us=10, next_promotion_us=50)
    )
    assert store.next_promotion() == 50
    assert store.first_request_hour() == 0


def test_point_reads_in_a_transaction_see_its_own_writes(store):
    queue = create_queue(store, "q", QueueType.PUSH)
    other = create_queue(store, "other")
    (old,) = add_tasks(store, queue, waiting_task("old", 5))
    txn = store.begin()

    fresh = new_queue("fresh", dead_letter_queue="q")
    txn.put_queue(fresh)
    assert txn.queue("fresh") == fresh
    assert txn.queue_by_storage_id(fresh.storage_id) == fresh
    changed = store.queue("other")
    changed.state = QueueState.PAUSED
    txn.put_queue(changed)
    assert txn.queue("other").state is QueueState.PAUSED
    assert txn.queue_by_storage_id(other.storage_id).state is QueueState.PAUSED

    new = waiting_task("new", 100, payload=b"p")
    txn.put_task(queue, new, None)
    assert txn.task(queue, "new") == new
    leased = as_leased(old, 50)
    txn.put_task(queue, leased, old)
    assert txn.task(queue, "old") == leased
    # The entry may stay at 5, where the leased task was (a stale entry, as the boundary engines
    # leave it), or move on to 100 (PostgreSQL derives it from the tasks, its own writes too).
    if boundary_engine(txn):
        assert txn.counters(queue) == Counters(scheduled=1, leased=1, next_promotion_us=5)
    else:
        assert txn.counters(queue) == Counters(scheduled=1, leased=1, next_promotion_us=100)

    txn.delete_task(queue, new)
    assert txn.task(queue, "new") is None
    assert tally(txn.counters(queue)) == (0, 0, 1, 0)
    again = waiting_task("new", 7)
    txn.put_task(queue, again, None)
    assert txn.task(queue, "new") == again

    txn.put_tombstone(queue, "name", 70)
    assert txn.tombstone(queue, "name") == 70
    txn.put_tombstone(queue, "name", 90)
    assert txn.tombstone(queue, "name") == 90
    txn.put_request(queue, "req", request_record("new"))
    assert txn.request(queue, "req", REQUEST_NOW) == request_record("new")
    txn.put_ack(queue, "done", "token-1", REQUEST_NOW)
    assert txn.acked(queue, "done", REQUEST_NOW) == "token-1"
    txn.put_bucket(queue, TokenState(3.25, 11))
    assert txn.bucket(queue) == TokenState(3.25, 11)

    # The store shows none of it yet.
    assert store.queue("fresh") is None and store.queue("other").state is QueueState.RUNNING
    assert store.task(queue, "new") is None and store.task(queue, "old") == old
    assert store.tombstone(queue, "name") is None and store.bucket(queue) is None
    assert store.counters(queue) == Counters(scheduled=1, next_promotion_us=5)

    store.apply(txn)
    assert store.task(queue, "new") == again and store.task(queue, "old") == leased
    assert store.tombstone(queue, "name") == 90
    assert store.acked(queue, "done", REQUEST_NOW) == "token-1"
    assert store.bucket(queue) == TokenState(3.25, 11)
    assert store.queue("other").state is QueueState.PAUSED
    assert_counters_match_tasks(store, queue)


def test_point_reads_in_a_transaction_see_a_tombstone_its_expiry_entry_removed(store):
    queue = create_queue(store, "q")
    commit(store, lambda txn: txn.put_tombstone(queue, "name", 70))
    (entry,) = store.expiries(FOREVER, ALL)
    txn = store.begin()
    txn.delete_expiry(entry)
    assert txn.tombstone(queue, "name") is None
    assert store.tombstone(queue, "name") == 70
    txn.put_tombstone(queue, "name", 80)
    assert txn.tombstone(queue, "name") == 80
    store.apply(txn)
    assert store.tombstone(queue, "name") == 80
    assert store.expiries(FOREVER, ALL) == [Expiry(80, ExpiryKind.TOMBSTONE, queue.storage_id, "name")]


def test_point_reads_in_a_transaction_see_a_queue_it_deleted_as_gone(store):
    queue = create_queue(store, "q", QueueType.PUSH)
    commit(
        store,
        lambda txn: txn.put_task(queue, waiting_task("t", 5), None),
        lambda txn: txn.put_tombstone(queue, "name", 70),
        lambda txn: txn.put_request(queue, "req", request_record("t")),
        lambda txn: txn.put_ack(queue, "acked", "token", REQUEST_NOW),
        lambda txn: txn.put_bucket(queue, TokenState(1.0, 2)),
    )
    txn = store.begin()
    txn.put_tombstone(queue, "fresh-name", 80)  # written before the delete, deleted with it
    txn.delete_queue(queue)
    assert txn.queue("q") is None
    assert txn.queue_by_storage_id(queue.storage_id) is None
    assert txn.task(queue, "t") is None
    assert txn.tombstone(queue, "name") is None and txn.tombstone(queue, "fresh-name") is None
    assert txn.request(queue, "req", REQUEST_NOW) is None
    assert txn.acked(queue, "acked", REQUEST_NOW) is None
    assert txn.bucket(queue) is None
    assert txn.counters(queue) == Counters()
    assert store.task(queue, "t") is not None  # not applied yet
    store.apply(txn)
    assert store.queue("q") is None and store.tombstone(queue, "fresh-name") is None


def test_an_abandoned_transaction_changes_nothing(store):
    queue = create_queue(store, "q")
    txn = store.begin()
    txn.put_task(queue, waiting_task("t", 5), None)
    txn.put_queue(new_queue("other"))
    del txn
    discarded = store.begin()
    discarded.put_task(queue, waiting_task("d", 5), None)
    discarded.put_tombstone(queue, "d", 50)
    store.discard(discarded)
    commit(store, lambda txn: txn.put_task(queue, waiting_task("u", 5), None))
    assert ids(listed(store, queue)) == ["u"]
    assert store.queue("other") is None
    assert store.tombstone(queue, "d") is None
    assert_counters_match_tasks(store, queue)


def test_a_transaction_applies_all_of_its_writes(store):
    queue, other = create_queue(store, "q"), create_queue(store, "other", QueueType.PUSH)
    (first,) = add_tasks(store, queue, waiting_task("first", 5))
    commit(
        store,
        lambda txn: txn.put_task(queue, as_leased(first, 50), first),
        lambda txn: txn.put_task(other, waiting_task("second", 6), None),
        lambda txn: txn.put_tombstone(queue, "first", 90),
    )
    assert store.task(queue, "first").stage is Stage.LEASED
    assert store.task(other, "second") is not None
    assert store.tombstone(queue, "first") == 90
    assert tally(store.counters(queue)) == (0, 0, 1, 0)
    assert store.counters(other) == Counters(scheduled=1, next_promotion_us=6)


def test_an_empty_transaction_writes_nothing_and_changes_nothing(store):
    queue = create_queue(store, "q")
    add_tasks(store, queue, waiting_task("t", 5))
    before = snapshot(store, ["t"])
    txn = store.begin()
    assert not txn.written()
    assert txn.task(queue, "t") is not None and txn.queue("q") is not None
    assert txn.counters(queue).scheduled == 1 and txn.tombstone(queue, "t") is None
    assert not txn.written()  # reads write nothing
    store.apply(txn)
    assert snapshot(store, ["t"]) == before


@pytest.mark.parametrize(
    "write",
    [
        lambda txn, q: txn.put_queue(new_queue("new")),
        lambda txn, q: txn.put_task(q, waiting_task("new", 5), None),
        lambda txn, q: txn.put_tombstone(q, "new", 5),
        lambda txn, q: txn.put_request(q, "new", request_record("new")),
        lambda txn, q: txn.put_ack(q, "new", "token", REQUEST_NOW),
        lambda txn, q: txn.put_bucket(q, TokenState(1.0, 1)),
        lambda txn, q: txn.delete_queue(q),
    ],
    ids=["put_queue", "put_task", "put_tombstone", "put_request", "put_ack", "put_bucket", "delete_queue"],
)
def test_a_transaction_with_a_write_says_it_has_written(store, write):
    queue = create_queue(store, "q")
    txn = store.begin()
    write(txn, queue)
    assert txn.written()
    store.apply(txn)


# Waiting tasks ----------------------------------------------------------------------------


def test_waiting_tasks_come_out_oldest_schedule_time_first(store):
    queue = create_queue(store, "q")
    add_tasks(
        store,
        queue,
        waiting_task("c", 30),
        waiting_task("a", 10),
        waiting_task("e", 50),
        waiting_task("b", 20),
        waiting_task("d", 40),
    )
    assert waiting_ids(store, queue) == ["a", "b", "c", "d", "e"]


def test_waiting_tasks_with_one_schedule_time_come_out_in_task_id_order(store):
    queue = create_queue(store, "q")
    add_tasks(
        store, queue, waiting_task("b", 10), waiting_task("ab", 10), waiting_task("a", 10), waiting_task("z", 5)
    )
    assert waiting_ids(store, queue) == ["z", "a", "ab", "b"]


def test_waiting_returns_only_tasks_due_by_until_inclusive(store):
    queue = create_queue(store, "q")
    add_tasks(store, queue, waiting_task("a", 10), waiting_task("b", 20), waiting_task("c", 21))
    assert waiting_ids(store, queue, 9) == []
    assert waiting_ids(store, queue, 10) == ["a"]
    assert waiting_ids(store, queue, 20) == ["a", "b"]
    assert waiting_ids(store, queue, FOREVER) == ["a", "b", "c"]
    assert waiting_ids(store, queue, 0) == []


def test_waiting_returns_at_most_limit_tasks(store):
    queue = create_queue(store, "q", QueueType.PULL)
    add_tasks(store, queue, *[waiting_task(f"t{i}", 10 + i, tag="x" if i % 2 else "") for i in range(6)])
    assert waiting_ids(store, queue, FOREVER, limit=3) == ["t0", "t1", "t2"]
    assert waiting_ids(store, queue, FOREVER, tag="x", limit=2) == ["t1", "t3"]
    assert waiting_ids(store, queue, 11, limit=5) == ["t0", "t1"]
    assert waiting_ids(store, queue, FOREVER, limit=0) == []
    assert ids(store.waiting(queue, FOREVER)) == [f"t{i}" for i in range(6)]  # the default: 1000


def test_waiting_returns_only_waiting_tasks(store):
    queue = create_queue(store, "q")
    add_tasks(
        store,
        queue,
        waiting_task("w", 10),
        as_leased(waiting_task("l", 10), 20),
        as_failed(waiting_task("f", 10), 20),
    )
    assert waiting_ids(store, queue) == ["w"]
    assert store.oldest_waiting(queue) == (10, "")


def test_waiting_with_a_tag_returns_only_that_tags_tasks_in_a_pull_queue(store):
    queue = create_queue(store, "q", QueueType.PULL)
    add_tasks(
        store,
        queue,
        waiting_task("a1", 30, tag="a"),
        waiting_task("b1", 10, tag="b"),
        waiting_task("u1", 20),
        waiting_task("a2", 10, tag="a"),
        waiting_task("ab", 5, tag="ab"),
        waiting_task("u2", 40, tag=""),
    )
    assert waiting_ids(store, queue, tag="a") == ["a2", "a1"]
    assert waiting_ids(store, queue, 20, tag="a") == ["a2"]
    assert waiting_ids(store, queue, tag="b") == ["b1"]
    assert waiting_ids(store, queue, tag="ab") == ["ab"]
    assert waiting_ids(store, queue, tag="") == ["u1", "u2"]
    assert waiting_ids(store, queue, tag="none") == []
    assert waiting_ids(store, queue) == ["ab", "a2", "b1", "u1", "a1", "u2"]


def test_leasing_a_task_removes_it_from_waiting(store):
    queue = create_queue(store, "q")
    a, b = add_tasks(store, queue, waiting_task("a", 10, tag="x"), waiting_task("b", 20, tag="x"))
    assert waiting_ids(store, queue) == ["a", "b"]  # moves the engines' scan positions onto "a"
    replace(store, queue, a, as_leased(a, 100))
    assert waiting_ids(store, queue) == ["b"]
    assert waiting_ids(store, queue, tag="x") == ["b"]
    assert store.oldest_waiting(queue) == (20, "x")


def test_failing_a_task_removes_it_from_waiting(store):
    queue = create_queue(store, "q")
    a, b = add_tasks(store, queue, waiting_task("a", 10, tag="x"), waiting_task("b", 20, tag="x"))
    leased = replace(store, queue, a, as_leased(a, 100))
    replace(store, queue, leased, as_failed(leased, 200))
    assert waiting_ids(store, queue) == ["b"]
    assert waiting_ids(store, queue, tag="x") == ["b"]


def test_a_released_task_waits_again_at_its_new_schedule_time(store):
    queue = create_queue(store, "q")
    a, b = add_tasks(store, queue, waiting_task("a", 10, tag="x"), waiting_task("b", 20, tag="x"))
    leased = replace(store, queue, a, as_leased(a, 100))
    replace(store, queue, leased, as_waiting(leased, 30))
    assert waiting_ids(store, queue) == ["b", "a"]
    assert waiting_ids(store, queue, tag="x") == ["b", "a"]
    assert waiting_ids(store, queue, 25) == ["b"]


def test_rescheduling_a_waiting_task_moves_it(store):
    queue = create_queue(store, "q")
    a, b, c = add_tasks(
        store, queue, waiting_task("a", 10, tag="x"), waiting_task("b", 20, tag="x"), waiting_task("c", 30, tag="x")
    )
    assert waiting_ids(store, queue) == ["a", "b", "c"]
    a_later = replace(store, queue, a, as_waiting(a, 40))
    assert waiting_ids(store, queue) == ["b", "c", "a"]
    assert waiting_ids(store, queue, tag="x") == ["b", "c", "a"]
    assert waiting_ids(store, queue, 35) == ["b", "c"]
    replace(store, queue, c, as_waiting(c, 1))
    assert waiting_ids(store, queue) == ["c", "b", "a"]
    assert waiting_ids(store, queue, tag="x") == ["c", "b", "a"]
    assert store.oldest_waiting(queue) == (1, "x")
    assert store.task(queue, "a") == a_later


def test_changing_a_waiting_tasks_tag_moves_it_between_tag_indexes(store):
    queue = create_queue(store, "q", QueueType.PULL)
    a, b = add_tasks(store, queue, waiting_task("a", 10, tag="x"), waiting_task("b", 20, tag="x"))
    assert waiting_ids(store, queue) == ["a", "b"]  # the scan position now rests on "a"
    replace(store, queue, a, as_waiting(a, 10, tag="y"))
    assert waiting_ids(store, queue) == ["a", "b"]
    assert waiting_ids(store, queue, tag="x") == ["b"]
    assert waiting_ids(store, queue, tag="y") == ["a"]
    assert store.oldest_waiting(queue) == (10, "y")


def test_changing_a_waiting_tasks_tag_keeps_it_waiting_in_a_push_queue(store):
    queue = create_queue(store, "q", QueueType.PUSH)
    (a,) = add_tasks(store, queue, waiting_task("a", 10, tag="x"))
    assert waiting_ids(store, queue) == ["a"]  # the scan position now rests on "a"
    replace(store, queue, a, as_waiting(a, 10, tag="y"))
    assert waiting_ids(store, queue) == ["a"]
    assert store.oldest_waiting(queue) == (10, "y")


def test_a_task_deleted_and_recreated_in_one_transaction_still_waits(store):
    queue = create_queue(store, "q")
    (a,) = add_tasks(store, queue, waiting_task("a", 10, tag="x"))
    assert waiting_ids(store, queue) == ["a"] and waiting_ids(store, queue, tag="x") == ["a"]
    commit(
        store,
        lambda txn: txn.delete_task(queue, a),
        lambda txn: txn.put_task(queue, waiting_task("a", 10, tag="x"), None),
    )
    assert waiting_ids(store, queue) == ["a"]
    assert waiting_ids(store, queue, tag="x") == ["a"]
    assert_counters_match_tasks(store, queue)


def test_a_task_added_before_the_oldest_waiting_one_comes_out_first(store):
    queue = create_queue(store, "q")
    add_tasks(store, queue, waiting_task("b", 20, tag="x"), waiting_task("c", 30, tag="x"))
    assert waiting_ids(store, queue) == ["b", "c"] and waiting_ids(store, queue, tag="x") == ["b", "c"]
    add_tasks(store, queue, waiting_task("a", 10, tag="x"))
    assert waiting_ids(store, queue) == ["a", "b", "c"]
    assert waiting_ids(store, queue, tag="x") == ["a", "b", "c"]
    assert store.oldest_waiting(queue) == (10, "x")


def test_oldest_waiting_names_the_earliest_waiting_tasks_time_and_tag(store):
    queue = create_queue(store, "q")
    assert store.oldest_waiting(queue) is None
    a, b = add_tasks(store, queue, waiting_task("b", 20, tag="later"), waiting_task("a", 10, tag="first"))
    add_tasks(store, queue, as_leased(waiting_task("l", 1), 5), as_failed(waiting_task("f", 1), 5))
    assert store.oldest_waiting(queue) == (10, "first")
    replace(store, queue, b, as_leased(b, 50))
    assert store.oldest_waiting(queue) == (20, "later")
    remove(store, queue, a)
    assert store.oldest_waiting(queue) is None


def test_waiting_tasks_of_other_queues_do_not_leak_into_a_scan(store):
    queues = [create_queue(store, f"q{i}") for i in range(3)]
    for i, queue in enumerate(queues):
        add_tasks(store, queue, waiting_task(f"t{i}", 10 * i + 1), waiting_task(f"u{i}", 100 - i))
    for i, queue in enumerate(queues):
        assert waiting_ids(store, queue) == [f"t{i}", f"u{i}"]
        assert waiting_ids(store, queue, tag="") == [f"t{i}", f"u{i}"]


# Failures ---------------------------------------------------------------------------------


def test_a_failing_scan_raises_store_error_instead_of_ending_early(store):
    queue = create_queue(store, "q", QueueType.PULL)
    add_tasks(store, queue, waiting_task("a", 10, tag="x"), as_leased(waiting_task("l", 1), 20))
    add_tasks(store, queue, as_failed(waiting_task("f", 1), 30), waiting_task("b", 100))
    commit(
        store,
        lambda txn: txn.put_tombstone(queue, "gone", 40),
        lambda txn: txn.put_request(queue, "req", request_record("a")),
    )
    store.faults.failing_scans = "injected: corrupt block"

    scans = {
        "tasks": lambda: list(store.tasks(queue, "")),
        "tasks without payloads": lambda: list(store.tasks(queue, "", payloads=False)),
        "waiting": lambda: list(store.waiting(queue, FOREVER)),
        "waiting until a time": lambda: list(store.waiting(queue, 50)),
        "waiting by tag": lambda: list(store.waiting(queue, FOREVER, "x")),
        "expired_leases": lambda: store.expired_leases(FOREVER, ALL),
        "leases": lambda: store.leases(None, ALL),
        "expiries": lambda: store.expiries(FOREVER, ALL),
        "promotions": lambda: store.promotions(FOREVER, ALL),
        "request_hours": lambda: store.request_hours(2**31, ALL),
    }
    failed = []
    for name, scan in scans.items():
        try:
            scan()
        except StoreError as error:
            assert "corrupt block" in str(error)
            failed.append(name)
    assert failed == list(scans)

    # What a scan found before failing is still handed out first.
    iterator = store.tasks(queue, "")
    assert next(iterator).task_id == "a"
    with pytest.raises(StoreError):
        list(iterator)

    store.faults.failing_scans = ""
    assert ids(listed(store, queue)) == ["a", "b", "f", "l"]
    assert waiting_ids(store, queue) == ["a", "b"]


def test_a_failing_write_raises_store_error_and_leaves_nothing_visible(store):
    queue = create_queue(store, "q")
    (task,) = add_tasks(store, queue, waiting_task("t", 5))
    names = ["t", "name", "req", "new"]
    before = snapshot(store, names)
    store.faults.failing_writes = "No space left on device"
    txn = store.begin()
    txn.put_queue(new_queue("new", purging=True))
    txn.promote(queue, 10, ALL)
    txn.put_task(queue, as_leased(task, 50), task)
    txn.put_task(queue, waiting_task("new", 20), None)
    txn.put_tombstone(queue, "name", 70)
    txn.put_request(queue, "req", request_record("new"))
    txn.put_ack(queue, "t", "token", REQUEST_NOW)
    txn.put_bucket(queue, TokenState(1.0, 1))
    with pytest.raises(StoreError) as failed:
        store.apply(txn)
    assert "No space left on device" in str(failed.value)
    assert snapshot(store, names) == before

    # Once the disk has room again the store takes writes as before.
    store.faults.failing_writes = ""
    again = create_queue(store, "new")
    assert again.storage_id != queue.storage_id
    replace(store, queue, task, as_leased(task, 50))
    assert store.expired_leases(FOREVER, ALL) == [LeaseEntry(50, queue.storage_id, "t")]
    assert_counters_match_tasks(store, queue)


def test_a_failing_sync_raises_store_error(store):
    queue = create_queue(store, "q")
    store.faults.failing_syncs = 1
    with pytest.raises(StoreError):
        store.sync()
    store.sync()  # only the injected one failed
    assert store.queue("q") == queue


def test_prefetch_changes_no_answer_of_a_transaction(store):
    queue = create_queue(store, "q")
    leased, waiting = add_tasks(store, queue, as_leased(waiting_task("l", 5), 50), waiting_task("w", 6))
    commit(
        store,
        lambda txn: txn.put_tombstone(queue, "gone", 70),
        lambda txn: txn.put_request(queue, "req", request_record("w")),
    )
    txn = store.begin()
    txn.put_task(queue, as_leased(waiting, 60), waiting)  # a write before the hint
    txn.prefetch(queue, ["l", "w", "gone", "missing"], tombstones=True, request_ids=["req", "other"])
    assert txn.task(queue, "l") == leased
    assert txn.task(queue, "w").stage is Stage.LEASED  # its own write, not the stored task
    assert txn.task(queue, "missing") is None and txn.task(queue, "gone") is None
    assert txn.tombstone(queue, "gone") == 70 and txn.tombstone(queue, "l") is None
    assert txn.request(queue, "req", REQUEST_NOW) == request_record("w")
    assert txn.request(queue, "other", REQUEST_NOW) is None
    assert txn.request(queue, "req", REQUEST_NOW + 3 * 3_600_000_000) is None  # past its hour, as without
    txn.delete_task(queue, leased)  # and writes after it count as before
    store.apply(txn)
    assert ids(listed(store, queue)) == ["w"]
    assert_counters_match_tasks(store, queue)
