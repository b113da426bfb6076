"""The storage contract (store/base.py), part 2: counters, bounded promotion (Txn.promote), the
promotion index (promotions, next_promotion, forget_promotion, Counters.next_promotion_us) and,
on the engines that keep one, the promotion boundary (Counters.counts_as_ready).

Which waiting tasks count as ready is asked of each engine (store_helpers.counted_ready): by
its boundary on the memory and RocksDB engines, by a flag per task on PostgreSQL. Assertions
about the boundary itself, and the tests of what only a boundary does, run on boundary engines
(store_helpers.boundary_engine).
"""

from __future__ import annotations

from store_helpers import (
    ALL,
    FOREVER,
    add_tasks,
    as_failed,
    as_leased,
    as_waiting,
    assert_counters,
    assert_counters_match_tasks,
    assert_promotion_entry_covers_scheduled_tasks,
    boundary,
    boundary_engine,
    commit,
    create_queue,
    listed,
    new_queue,
    promote,
    ready_ids,
    remove,
    replace,
    tally,
    waiting_ids,
    waiting_task,
)

from taskq.core.model import Counters, Promotion, QueueType

# Counters ---------------------------------------------------------------------------------


def test_an_unknown_queue_has_zero_counters(store):
    assert store.counters(new_queue("never-stored")) == Counters()


def test_a_new_queue_counts_from_its_creation_time(store):
    queue = create_queue(store, "q", create_time_us=100)
    assert_counters(store, queue, Counters(promoted_through_us=100))
    add_tasks(store, queue, waiting_task("due", 100), waiting_task("past", 1), waiting_task("later", 101))
    if boundary_engine(store):
        # The creation time is the first boundary: tasks due by it count as ready at once.
        assert store.counters(queue) == Counters(
            scheduled=1, ready=2, promoted_through_us=100, next_promotion_us=101
        )
    # Every engine: the tasks are counted, the later one as scheduled, and whatever is counted
    # as scheduled is in the promotion index; a promote up to the creation time counts the rest.
    assert store.counters(queue).total == 3
    assert "later" not in ready_ids(store, queue)
    assert_promotion_entry_covers_scheduled_tasks(store, queue)
    assert_counters_match_tasks(store, queue)
    assert promote(store, queue, 100) is True
    assert_counters(store, queue, Counters(scheduled=1, ready=2, promoted_through_us=100, next_promotion_us=101))
    assert ready_ids(store, queue) == ["due", "past"]


def test_counters_follow_every_stage_change(store):
    queue = create_queue(store, "q", create_time_us=10)
    (task,) = add_tasks(store, queue, waiting_task("t", 20))
    assert tally(store.counters(queue)) == (1, 0, 0, 0)
    # Moved before the boundary (10) by a transaction that promotes first, as core's writes do.
    ready = as_waiting(task, 5)
    commit(store, lambda txn: txn.promote(queue, 10, ALL), lambda txn: txn.put_task(queue, ready, task))
    assert tally(store.counters(queue)) == (0, 1, 0, 0)
    leased = replace(store, queue, ready, as_leased(ready, 50))
    assert tally(store.counters(queue)) == (0, 0, 1, 0)
    renewed = replace(store, queue, leased, as_leased(leased, 60))
    assert tally(store.counters(queue)) == (0, 0, 1, 0)
    failed = replace(store, queue, renewed, as_failed(renewed, 70))
    assert tally(store.counters(queue)) == (0, 0, 0, 1)
    later = replace(store, queue, failed, as_waiting(failed, 30))
    assert tally(store.counters(queue)) == (1, 0, 0, 0)
    remove(store, queue, later)
    assert tally(store.counters(queue)) == (0, 0, 0, 0)
    if boundary_engine(store):
        assert boundary(store.counters(queue)) == (10, "")


def test_counters_are_kept_per_queue(store):
    first, second = create_queue(store, "first"), create_queue(store, "second")
    add_tasks(store, first, waiting_task("a", 1), waiting_task("b", 1))
    add_tasks(store, second, as_leased(waiting_task("a", 1), 5))
    assert store.counters(first) == Counters(scheduled=2, next_promotion_us=1)
    assert store.counters(second) == Counters(leased=1)


def test_returned_counters_are_copies(store):
    queue = create_queue(store, "q")
    add_tasks(store, queue, waiting_task("a", 1))
    counters = store.counters(queue)
    counters.scheduled = 99
    counters.promoted_through_us = 99
    counters.next_promotion_us = 99
    assert store.counters(queue) == Counters(scheduled=1, next_promotion_us=1)


def test_a_point_read_of_counters_in_a_transaction_sees_the_promotion_its_writes_need(store):
    queue = create_queue(store, "q")
    add_tasks(store, queue, waiting_task("a", 50))
    txn = store.begin()
    txn.put_task(queue, waiting_task("b", 20), None)
    assert tally(txn.counters(queue)) == (2, 0, 0, 0)
    assert txn.counters(queue).next_promotion_us == 20
    store.apply(txn)
    assert store.counters(queue).next_promotion_us == 20
    assert_promotion_entry_covers_scheduled_tasks(store, queue)


def test_a_scan_in_a_transaction_after_its_writes_leaves_the_counters_right(store):
    """Core never scans what it wrote in the same transaction, but a scan that returns a task
    the transaction has changed must not undo how the change is counted."""
    queue = create_queue(store, "q")
    add_tasks(store, queue, waiting_task("a", 5), waiting_task("b", 6))
    assert promote(store, queue, 10) is True
    assert tally(store.counters(queue)) == (0, 2, 0, 0)
    txn = store.begin()
    a, b = txn.task(queue, "a"), txn.task(queue, "b")  # read first, as core does
    txn.put_task(queue, as_waiting(a, 50), a)
    txn.delete_task(queue, b)
    assert len(listed(txn, queue)) in (1, 2) and waiting_ids(txn, queue, 10) in ([], ["a", "b"])
    store.apply(txn)
    assert tally(store.counters(queue)) == (1, 0, 0, 0)
    assert_counters_match_tasks(store, queue)
    assert_promotion_entry_covers_scheduled_tasks(store, queue)


def test_a_boundary_inside_one_schedule_time_splits_its_tasks_by_id():
    counters = Counters(promoted_through_us=20, promoted_through_id="b")
    assert counters.counts_as_ready(19, "z")
    assert counters.counts_as_ready(20, "a") and counters.counts_as_ready(20, "b")
    assert not counters.counts_as_ready(20, "ba") and not counters.counts_as_ready(21, "a")
    whole = Counters(promoted_through_us=20)
    assert whole.counts_as_ready(20, "~") and not whole.counts_as_ready(21, "")


# Promotion --------------------------------------------------------------------------------


def test_promote_counts_the_due_tasks_as_ready(store):
    queue = create_queue(store, "q", create_time_us=0)
    add_tasks(
        store,
        queue,
        waiting_task("a", 10),
        waiting_task("b", 20),
        waiting_task("c", 20),
        waiting_task("d", 30),
        as_leased(waiting_task("l", 15), 100),
        as_failed(waiting_task("f", 15), 100),
    )
    assert store.counters(queue) == Counters(scheduled=4, leased=1, failed=1, next_promotion_us=10)
    assert promote(store, queue, 9) is True
    assert_counters(store, queue, Counters(scheduled=4, leased=1, failed=1, promoted_through_us=9, next_promotion_us=10))
    assert ready_ids(store, queue) == []
    assert promote(store, queue, 20) is True
    assert_counters(
        store, queue, Counters(scheduled=1, ready=3, leased=1, failed=1, promoted_through_us=20, next_promotion_us=30)
    )
    assert ready_ids(store, queue) == ["a", "b", "c"]
    assert promote(store, queue, FOREVER) is True
    assert_counters(store, queue, Counters(ready=4, leased=1, failed=1, promoted_through_us=FOREVER))
    assert_counters_match_tasks(store, queue)


def test_promote_up_to_the_boundary_changes_nothing(store):
    queue = create_queue(store, "q", create_time_us=50)
    add_tasks(store, queue, waiting_task("a", 10), waiting_task("b", 60))
    first = store.counters(queue)
    assert promote(store, queue, 50) is True
    if boundary_engine(store):  # the creation time was the boundary already
        assert store.counters(queue) == first
    before = store.counters(queue)
    assert promote(store, queue, 50) is True
    assert promote(store, queue, 40) is True
    assert store.counters(queue) == before
    assert_counters(store, queue, Counters(scheduled=1, ready=1, promoted_through_us=50, next_promotion_us=60))
    assert ready_ids(store, queue) == ["a"]


def test_promote_counts_only_the_stored_waiting_tasks_of_its_queue(store):
    queue, other = create_queue(store, "q"), create_queue(store, "other")
    add_tasks(store, queue, waiting_task("a", 10))
    add_tasks(store, other, waiting_task("b", 10), waiting_task("c", 10))
    assert promote(store, queue, 10) is True
    assert tally(store.counters(queue)) == (0, 1, 0, 0)
    assert store.counters(other) == Counters(scheduled=2, next_promotion_us=10)


def test_promote_twice_in_one_transaction_counts_each_task_once(store):
    queue = create_queue(store, "q")
    add_tasks(store, queue, waiting_task("a", 10), waiting_task("b", 20), waiting_task("c", 30))
    done = commit(
        store,
        lambda txn: txn.promote(queue, 10, ALL),
        lambda txn: txn.promote(queue, 20, ALL),
        lambda txn: txn.promote(queue, 15, ALL),
    )
    assert done == [True, True, True]
    assert_counters(store, queue, Counters(scheduled=1, ready=2, promoted_through_us=20, next_promotion_us=30))
    assert_counters_match_tasks(store, queue)


def test_promote_then_writes_in_one_transaction_keep_the_counters_right(store):
    queue = create_queue(store, "q")
    a, b = add_tasks(store, queue, waiting_task("a", 10), waiting_task("b", 20))
    assert waiting_ids(store, queue) == ["a", "b"]
    done = commit(
        store,
        lambda txn: txn.promote(queue, 15, ALL),
        lambda txn: txn.put_task(queue, as_leased(a, 100), a),
        lambda txn: txn.put_task(queue, waiting_task("c", 12), None),
        lambda txn: txn.put_task(queue, as_waiting(b, 14), b),
    )
    assert done[0] is True
    assert tally(store.counters(queue)) == (0, 2, 1, 0)
    assert ready_ids(store, queue) == ["b", "c"]  # both written due by the promote's time
    if boundary_engine(store):
        assert boundary(store.counters(queue)) == (15, "")
    assert_counters_match_tasks(store, queue)


def test_promote_after_a_scan_has_moved_past_consumed_tasks(store):
    queue = create_queue(store, "q")
    tasks = add_tasks(store, queue, *[waiting_task(f"t{i}", 10 + i) for i in range(5)])
    for task in tasks[:3]:
        assert waiting_ids(store, queue, 100)[0] == task.task_id
        replace(store, queue, task, as_leased(task, 1000))
    assert promote(store, queue, 100) is True
    assert tally(store.counters(queue)) == (0, 2, 3, 0)
    assert_counters_match_tasks(store, queue)


def test_a_bounded_promote_can_stop_between_two_tasks_of_one_schedule_time(store):
    queue = create_queue(store, "q", create_time_us=0)
    add_tasks(
        store,
        queue,
        waiting_task("a", 10),
        waiting_task("b", 20),
        waiting_task("c", 20),
        waiting_task("d", 20),
        waiting_task("e", 30),
    )
    assert promote(store, queue, 25, limit=2) is False
    counters = store.counters(queue)
    assert tally(counters) == (3, 2, 0, 0)
    assert ready_ids(store, queue) == ["a", "b"]
    # Stopped early: the queue's entry says there is work due already (a boundary engine puts
    # it at 25, where it stopped; a derived one at 20, the first task still scheduled).
    assert counters.next_promotion_us == (25 if boundary_engine(store) else 20)
    assert store.promotions(25, ALL) == [Promotion(counters.next_promotion_us, queue.storage_id)]
    assert_counters_match_tasks(store, queue)

    if boundary_engine(store):
        # Tasks put next to the boundary are counted by it: one at or before it counts as ready,
        # one after it as scheduled (and brings the entry forward to its time).
        add_tasks(store, queue, waiting_task("aa", 20), waiting_task("bb", 20))
        counters = store.counters(queue)
        assert tally(counters) == (4, 3, 0, 0)
        assert counters.counts_as_ready(20, "aa") and not counters.counts_as_ready(20, "bb")
        assert counters.next_promotion_us == 20
    else:
        # Without a promote in their transaction, tasks are counted as scheduled.
        add_tasks(store, queue, waiting_task("aa", 20), waiting_task("bb", 20))
        assert tally(store.counters(queue)) == (5, 2, 0, 0)
        assert store.counters(queue).next_promotion_us == 20
        assert promote(store, queue, 25, limit=1) is False
        assert ready_ids(store, queue) == ["a", "aa", "b"]
    assert_counters_match_tasks(store, queue)
    assert_promotion_entry_covers_scheduled_tasks(store, queue)

    # A second transaction continues where the first stopped.
    assert promote(store, queue, 25, limit=1) is False
    assert tally(store.counters(queue)) == (3, 4, 0, 0)
    assert ready_ids(store, queue) == ["a", "aa", "b", "bb"]
    assert_counters_match_tasks(store, queue)
    assert promote(store, queue, 25, limit=2) is True
    assert_counters(store, queue, Counters(scheduled=1, ready=6, promoted_through_us=25, next_promotion_us=30))
    assert ready_ids(store, queue) == ["a", "aa", "b", "bb", "c", "d"]
    assert_counters_match_tasks(store, queue)


def test_a_bounded_promote_with_exactly_limit_due_tasks_finishes(store):
    queue = create_queue(store, "q")
    add_tasks(store, queue, waiting_task("a", 10), waiting_task("b", 10), waiting_task("c", 40))
    assert promote(store, queue, 20, limit=2) is True
    assert_counters(store, queue, Counters(scheduled=1, ready=2, promoted_through_us=20, next_promotion_us=40))
    assert promote(store, queue, 20, limit=2) is True  # nothing left to count


def test_a_bounded_promote_in_many_steps_counts_every_due_task_once(store):
    queue = create_queue(store, "q")
    add_tasks(store, queue, *[waiting_task(f"t{i:02d}", 10 + i // 4) for i in range(23)])
    add_tasks(store, queue, waiting_task("later", 100))
    steps = 0
    while not promote(store, queue, 50, limit=3):
        steps += 1
        assert store.counters(queue).ready == 3 * steps
        assert_counters_match_tasks(store, queue)
        due = store.counters(queue).next_promotion_us
        # More due now: the entry stays where the promote stopped (boundary engines) or at the
        # first task still counted as scheduled (PostgreSQL).
        assert due == 50 if boundary_engine(store) else 0 < due <= 50
        assert Promotion(due, queue.storage_id) in store.promotions(50, ALL)
    assert steps == 7
    assert_counters(store, queue, Counters(scheduled=1, ready=23, promoted_through_us=50, next_promotion_us=100))


def test_promote_with_a_limit_of_zero_counts_nothing(store):
    queue = create_queue(store, "q")
    add_tasks(store, queue, waiting_task("a", 10), waiting_task("b", 20))
    before = store.counters(queue)
    assert promote(store, queue, 15, limit=0) is False
    after = store.counters(queue)
    assert tally(after) == tally(before) == (2, 0, 0, 0)
    assert ready_ids(store, queue) == []
    assert_counters_match_tasks(store, queue)
    assert 0 < store.counters(queue).next_promotion_us <= 15
    assert promote(store, queue, 15, limit=1) is True
    assert tally(store.counters(queue)) == (1, 1, 0, 0)


# The promotion index ----------------------------------------------------------------------


def test_the_first_scheduled_task_puts_its_queue_in_the_promotion_index(store):
    queue = create_queue(store, "q", create_time_us=50)
    assert store.promotions(FOREVER, ALL) == [] and store.next_promotion() is None
    # Counted as ready at once (before the boundary; written after a promote): no entry.
    commit(store, lambda txn: txn.promote(queue, 50, ALL), lambda txn: txn.put_task(queue, waiting_task("ready", 40), None))
    assert store.counters(queue).next_promotion_us == 0
    assert store.promotions(FOREVER, ALL) == [] and store.next_promotion() is None
    add_tasks(store, queue, waiting_task("later", 80))
    assert store.counters(queue).next_promotion_us == 80
    assert store.promotions(FOREVER, ALL) == [Promotion(80, queue.storage_id)]
    assert store.promotions(80, ALL) == [Promotion(80, queue.storage_id)]
    assert store.promotions(79, ALL) == []
    assert store.next_promotion() == 80
    # Leased and failed tasks are not waiting: they bring nothing forward.
    add_tasks(store, queue, as_leased(waiting_task("l", 60), 70), as_failed(waiting_task("f", 60), 70))
    assert store.next_promotion() == 80


def test_an_earlier_scheduled_task_moves_the_entry_earlier_and_a_later_one_does_not(store):
    queue = create_queue(store, "q")
    (later,) = add_tasks(store, queue, waiting_task("later", 80))
    add_tasks(store, queue, waiting_task("latest", 90))
    assert store.counters(queue).next_promotion_us == 80
    add_tasks(store, queue, waiting_task("earlier", 30))
    assert store.counters(queue).next_promotion_us == 30
    assert store.promotions(FOREVER, ALL) == [Promotion(30, queue.storage_id)]
    # A rescheduled task counts as put at its new time.
    replace(store, queue, later, as_waiting(later, 20))
    assert store.promotions(FOREVER, ALL) == [Promotion(20, queue.storage_id)]
    assert store.next_promotion() == 20
    assert_promotion_entry_covers_scheduled_tasks(store, queue)


def test_promote_moves_the_entry_to_the_next_scheduled_time_or_removes_it(store):
    queue = create_queue(store, "q")
    add_tasks(store, queue, waiting_task("a", 10), waiting_task("b", 20), waiting_task("c", 30))
    promote(store, queue, 10)
    assert store.counters(queue).next_promotion_us == 20
    assert store.promotions(FOREVER, ALL) == [Promotion(20, queue.storage_id)]
    promote(store, queue, 25)
    assert store.promotions(FOREVER, ALL) == [Promotion(30, queue.storage_id)]
    promote(store, queue, 30)
    assert store.counters(queue).next_promotion_us == 0
    assert store.promotions(FOREVER, ALL) == [] and store.next_promotion() is None
    # Ready at once: before the boundary, written after a promote.
    commit(store, lambda txn: txn.promote(queue, 30, ALL), lambda txn: txn.put_task(queue, waiting_task("d", 5), None))
    assert store.next_promotion() is None
    add_tasks(store, queue, waiting_task("e", 31))
    assert store.promotions(FOREVER, ALL) == [Promotion(31, queue.storage_id)]


def test_promotions_are_listed_earliest_first_across_queues_up_to_the_limit(store):
    first, second, third = create_queue(store, "a"), create_queue(store, "b"), create_queue(store, "c")
    add_tasks(store, first, waiting_task("t", 30))
    add_tasks(store, second, waiting_task("t", 10), waiting_task("u", 40))
    add_tasks(store, third, waiting_task("t", 20))
    every = [Promotion(10, second.storage_id), Promotion(20, third.storage_id), Promotion(30, first.storage_id)]
    assert store.promotions(FOREVER, ALL) == every
    assert store.promotions(20, ALL) == every[:2]
    assert store.promotions(FOREVER, 1) == every[:1]
    assert store.promotions(9, ALL) == []
    assert store.promotions(FOREVER, 0) == []
    assert store.next_promotion() == 10
    promote(store, second, 15)
    assert store.promotions(FOREVER, ALL) == [every[1], every[2], Promotion(40, second.storage_id)]


def test_promotion_entries_due_at_one_time_are_ordered_by_storage_id(store):
    queues = [create_queue(store, f"q{i}") for i in range(4)]
    for queue in reversed(queues):
        add_tasks(store, queue, waiting_task("t", 10), waiting_task("u", 20))
    every = [Promotion(10, queue.storage_id) for queue in queues]
    assert store.promotions(FOREVER, ALL) == every
    assert store.promotions(10, 2) == every[:2]
    assert store.next_promotion() == 10


def test_a_queue_with_many_due_tasks_does_not_hide_other_queues_entries(store):
    busy, quiet = create_queue(store, "busy"), create_queue(store, "quiet")
    add_tasks(store, busy, *[waiting_task(f"t{i:04d}", 1 + i) for i in range(600)])
    add_tasks(store, quiet, waiting_task("t", 700))
    every = [Promotion(1, busy.storage_id), Promotion(700, quiet.storage_id)]
    assert store.promotions(FOREVER, 2) == every
    assert store.promotions(FOREVER, 1) == every[:1]
    assert store.promotions(FOREVER, ALL) == every
    assert store.promotions(699, ALL) == every[:1]


def test_an_entry_left_by_a_task_no_longer_scheduled_is_moved_on_by_promote(store):
    queue = create_queue(store, "q")
    a, b = add_tasks(store, queue, waiting_task("a", 10), waiting_task("b", 30))
    replace(store, queue, a, as_leased(a, 100))
    # The entry may stay at 10 (a stale entry), or have moved on to 30: never later.
    assert store.counters(queue).next_promotion_us in (10, 30)
    assert_promotion_entry_covers_scheduled_tasks(store, queue)
    promote(store, queue, 15)
    assert store.counters(queue).next_promotion_us == 30
    assert store.promotions(FOREVER, ALL) == [Promotion(30, queue.storage_id)]
    remove(store, queue, b)
    promote(store, queue, 40)
    assert store.counters(queue).next_promotion_us == 0
    assert store.promotions(FOREVER, ALL) == []


def test_forget_promotion_deletes_the_entry_and_the_queues_note_of_it(boundary_store):
    """A boundary engine's index has entries of its own (PostgreSQL derives its index from the
    tasks: see test_store_postgres.py)."""
    store = boundary_store
    queue, other = create_queue(store, "q"), create_queue(store, "other")
    add_tasks(store, queue, waiting_task("a", 10))
    add_tasks(store, other, waiting_task("b", 20))
    (entry, kept) = store.promotions(FOREVER, ALL)
    assert entry == Promotion(10, queue.storage_id)
    commit(store, lambda txn: txn.forget_promotion(entry))
    assert store.promotions(FOREVER, ALL) == [kept]
    assert store.counters(queue).next_promotion_us == 0
    assert store.counters(other).next_promotion_us == 20
    assert tally(store.counters(queue)) == (1, 0, 0, 0)
    # A task scheduled later puts the queue back in the index.
    add_tasks(store, queue, waiting_task("c", 50))
    assert store.counters(queue).next_promotion_us == 50
    assert store.promotions(FOREVER, ALL) == [kept, Promotion(50, queue.storage_id)]


def test_forgetting_an_entry_the_queue_has_moved_away_from_keeps_its_current_one(store):
    queue = create_queue(store, "q")
    add_tasks(store, queue, waiting_task("a", 50))
    (old,) = store.promotions(FOREVER, ALL)
    add_tasks(store, queue, waiting_task("b", 20))
    assert store.counters(queue).next_promotion_us == 20
    commit(store, lambda txn: txn.forget_promotion(old))
    assert store.counters(queue).next_promotion_us == 20
    assert store.promotions(FOREVER, ALL) == [Promotion(20, queue.storage_id)]


def test_a_deleted_queues_promotion_entry_can_be_forgotten(store):
    doomed, kept = create_queue(store, "doomed"), create_queue(store, "kept")
    add_tasks(store, doomed, waiting_task("a", 10))
    add_tasks(store, kept, waiting_task("b", 20))
    commit(store, lambda txn: txn.delete_queue(doomed))
    entries = store.promotions(FOREVER, ALL)
    # The deleted queue's entry may stay until a reader drops it; the kept one stays.
    kept_entry, stale = Promotion(20, kept.storage_id), Promotion(10, doomed.storage_id)
    assert entries in ([kept_entry], [stale, kept_entry])
    for entry in entries:
        if store.queue_by_storage_id(entry.storage_id) is None:
            commit(store, lambda txn, entry=entry: txn.forget_promotion(entry))
    assert store.promotions(FOREVER, ALL) == [Promotion(20, kept.storage_id)]
    assert store.next_promotion() == 20
    assert store.counters(kept).next_promotion_us == 20


def test_a_promotion_pass_leaves_no_entry_due(store):
    """What the janitor does (core/janitor.py): promote each due queue, forget stale entries."""
    queues = [create_queue(store, f"q{i}", QueueType.PUSH if i % 2 else QueueType.PULL) for i in range(4)]
    for i, queue in enumerate(queues):
        add_tasks(store, queue, *[waiting_task(f"t{j}", 10 * i + j + 1) for j in range(5)])
        add_tasks(store, queue, waiting_task("later", 1000 + i))
    commit(store, lambda txn: txn.delete_queue(queues[3]))
    now = 35
    while entries := store.promotions(now, ALL):
        txn = store.begin()
        for entry in entries:
            queue = txn.queue_by_storage_id(entry.storage_id)
            if queue is None or txn.counters(queue).next_promotion_us != entry.due_us:
                txn.forget_promotion(entry)
            else:
                txn.promote(queue, now, 2)
        store.apply(txn)
    for queue in queues[:3]:
        counters = store.counters(queue)
        if boundary_engine(store):
            assert boundary(counters) == (35, "")
        assert ready_ids(store, queue) == [f"t{j}" for j in range(5) if 10 * queues.index(queue) + j + 1 <= 35]
        assert counters.next_promotion_us == 1000 + queues.index(queue)
        assert_counters_match_tasks(store, queue)
    assert store.next_promotion() == 1000
    assert [entry.storage_id for entry in store.promotions(FOREVER, ALL)] == [q.storage_id for q in queues[:3]]
