"""The storage contract (store/base.py), part 3: what background work reads and cleans up.
The global lease index (expired_leases, leases, next_lease_expiry, forget_lease), name
tombstones and the expiry index, request ids and acknowledgements kept by the hour
(request_hours, first_request_hour, forget_hour), token buckets and the page-token key.
"""

from __future__ import annotations

from store_helpers import (
    ALL,
    FOREVER,
    HOUR_US,
    REQUEST_NOW,
    add_tasks,
    as_failed,
    as_leased,
    as_waiting,
    boundary_engine,
    commit,
    create_queue,
    remove,
    replace,
    request_record,
    tally,
    waiting_task,
)

from taskq.core.model import Expiry, ExpiryKind, LeaseEntry, QueueType, RequestRecord, TokenState

# Leases -----------------------------------------------------------------------------------


def test_expired_leases_come_out_earliest_first_across_queues_up_to_the_limit(store):
    first, second = create_queue(store, "first"), create_queue(store, "second", QueueType.PUSH)
    add_tasks(store, first, as_leased(waiting_task("a", 1), 30), as_leased(waiting_task("b", 1), 10))
    add_tasks(store, second, as_leased(waiting_task("c", 1), 20), as_leased(waiting_task("d", 1), 40))
    add_tasks(store, first, waiting_task("w", 1), as_failed(waiting_task("f", 1), 5))
    one, two = first.storage_id, second.storage_id
    assert store.expired_leases(FOREVER, ALL) == [
        LeaseEntry(10, one, "b"),
        LeaseEntry(20, two, "c"),
        LeaseEntry(30, one, "a"),
        LeaseEntry(40, two, "d"),
    ]
    assert store.expired_leases(29, ALL) == [LeaseEntry(10, one, "b"), LeaseEntry(20, two, "c")]
    assert store.expired_leases(30, 1) == [LeaseEntry(10, one, "b")]
    assert store.expired_leases(9, ALL) == []
    assert store.expired_leases(FOREVER, 0) == []
    assert store.next_lease_expiry() == 10


def test_leases_at_one_expiry_are_ordered_by_queue_then_task_id(store):
    first, second = create_queue(store, "first"), create_queue(store, "second")
    add_tasks(store, second, as_leased(waiting_task("a", 1), 10), as_leased(waiting_task("b", 1), 10))
    add_tasks(store, first, as_leased(waiting_task("c", 1), 10), as_leased(waiting_task("a", 1), 10))
    assert first.storage_id < second.storage_id
    one, two = first.storage_id, second.storage_id
    every = [LeaseEntry(10, one, "a"), LeaseEntry(10, one, "c"), LeaseEntry(10, two, "a"), LeaseEntry(10, two, "b")]
    assert store.expired_leases(10, ALL) == every
    assert store.leases(None, ALL) == every


def test_next_lease_expiry_follows_the_leases(store):
    queue = create_queue(store, "q")
    assert store.next_lease_expiry() is None
    a, b = add_tasks(store, queue, as_leased(waiting_task("a", 1), 10), as_leased(waiting_task("b", 1), 20))
    assert store.next_lease_expiry() == 10
    replace(store, queue, a, as_waiting(a, 5))
    assert store.next_lease_expiry() == 20
    assert store.expired_leases(FOREVER, ALL) == [LeaseEntry(20, queue.storage_id, "b")]
    renewed = replace(store, queue, b, as_leased(b, 25))
    assert store.expired_leases(FOREVER, ALL) == [LeaseEntry(25, queue.storage_id, "b")]
    replace(store, queue, renewed, as_failed(renewed, 100))
    assert store.next_lease_expiry() is None
    assert store.expired_leases(FOREVER, ALL) == []


def test_a_lease_earlier_than_the_scanned_ones_comes_out_first(store):
    queue = create_queue(store, "q")
    add_tasks(store, queue, as_leased(waiting_task("b", 1), 20))
    assert store.next_lease_expiry() == 20
    assert store.expired_leases(FOREVER, ALL) == [LeaseEntry(20, queue.storage_id, "b")]
    add_tasks(store, queue, as_leased(waiting_task("a", 1), 10))
    assert store.next_lease_expiry() == 10
    assert [e.task_id for e in store.expired_leases(FOREVER, ALL)] == ["a", "b"]
    assert [e.task_id for e in store.leases(None, ALL)] == ["a", "b"]


def test_leases_walk_every_lease_of_every_queue_in_order(store):
    first, second = create_queue(store, "first"), create_queue(store, "second", QueueType.PUSH)
    add_tasks(store, first, as_leased(waiting_task("late", 1), 300), as_leased(waiting_task("early", 1), 10))
    add_tasks(store, first, waiting_task("waiting", 1), as_failed(waiting_task("failed", 1), 5))
    add_tasks(store, second, as_leased(waiting_task("b", 1), 10), as_leased(waiting_task("a", 1), FOREVER - 1))
    add_tasks(store, second, as_leased(waiting_task("c", 1), 200))
    one, two = first.storage_id, second.storage_id
    every = [
        LeaseEntry(10, one, "early"),
        LeaseEntry(10, two, "b"),
        LeaseEntry(200, two, "c"),
        LeaseEntry(300, one, "late"),
        LeaseEntry(FOREVER - 1, two, "a"),
    ]
    assert store.leases(None, ALL) == every
    assert store.leases(None, 0) == []
    walked, after = [], None
    while page := store.leases(after, 2):
        assert len(page) <= 2
        walked.append(page)
        after = page[-1]
    assert walked == [every[0:2], every[2:4], every[4:]]
    # Any position works as a cursor, not only an entry that exists: a walk goes on after the
    # entry it stopped at was released meanwhile (as push recovery does between pages).
    assert store.leases(LeaseEntry(10, one, "zzz"), ALL) == every[1:]
    assert store.leases(LeaseEntry(150, 0, ""), 1) == [every[2]]
    assert store.leases(every[-1], ALL) == []


def test_a_deleted_queues_lease_entries_can_be_forgotten(store):
    doomed, kept = create_queue(store, "doomed"), create_queue(store, "kept")
    add_tasks(store, doomed, as_leased(waiting_task("a", 1), 10), waiting_task("w", 1))
    add_tasks(store, kept, as_leased(waiting_task("b", 1), 20))
    commit(store, lambda txn: txn.delete_queue(doomed))
    kept_entry = LeaseEntry(20, kept.storage_id, "b")
    stale = LeaseEntry(10, doomed.storage_id, "a")
    # The deleted queue's entry may stay in the index until a reader drops it.
    assert store.expired_leases(FOREVER, ALL) in ([kept_entry], [stale, kept_entry])
    assert store.leases(None, ALL) in ([kept_entry], [stale, kept_entry])
    for entry in store.leases(None, ALL):
        if store.queue_by_storage_id(entry.storage_id) is None:
            commit(store, lambda txn, entry=entry: txn.forget_lease(entry))
    assert store.expired_leases(FOREVER, ALL) == [kept_entry]
    assert store.leases(None, ALL) == [kept_entry]
    assert store.next_lease_expiry() == 20


# Tombstones and the expiry index ----------------------------------------------------------


def test_a_tombstone_reserves_a_name_until_its_expiry(store):
    queue = create_queue(store, "q")
    assert store.tombstone(queue, "name") is None
    commit(store, lambda txn: txn.put_tombstone(queue, "name", 70))
    assert store.tombstone(queue, "name") == 70
    assert store.tombstone(queue, "other") is None
    assert store.expiries(FOREVER, ALL) == [Expiry(70, ExpiryKind.TOMBSTONE, queue.storage_id, "name")]
    assert store.next_expiry() == 70


def test_the_expiry_index_holds_tombstones_and_failed_tasks_earliest_first(store):
    first, second = create_queue(store, "first"), create_queue(store, "second")
    commit(
        store,
        lambda txn: txn.put_tombstone(first, "t", 40),
        lambda txn: txn.put_tombstone(second, "r", 10),
        lambda txn: txn.put_task(first, as_failed(waiting_task("f", 1), 30), None),
        lambda txn: txn.put_task(second, as_failed(waiting_task("g", 1), 20), None),
        lambda txn: txn.put_task(second, as_leased(waiting_task("l", 1), 5), None),
    )
    one, two = first.storage_id, second.storage_id
    every = [
        Expiry(10, ExpiryKind.TOMBSTONE, two, "r"),
        Expiry(20, ExpiryKind.FAILED_TASK, two, "g"),
        Expiry(30, ExpiryKind.FAILED_TASK, one, "f"),
        Expiry(40, ExpiryKind.TOMBSTONE, one, "t"),
    ]
    assert store.expiries(FOREVER, ALL) == every
    assert store.expiries(30, ALL) == every[:3]
    assert store.expiries(FOREVER, 2) == every[:2]
    assert store.expiries(9, ALL) == []
    assert store.expiries(FOREVER, 0) == []
    assert store.next_expiry() == 10


def test_entries_due_at_one_time_are_ordered_by_kind_then_queue_then_key(store):
    first, second = create_queue(store, "first"), create_queue(store, "second")
    commit(
        store,
        lambda txn: txn.put_tombstone(second, "b", 10),
        lambda txn: txn.put_tombstone(first, "b", 10),
        lambda txn: txn.put_tombstone(first, "a", 10),
        lambda txn: txn.put_task(first, as_failed(waiting_task("a", 1), 10), None),
    )
    assert first.storage_id < second.storage_id
    assert [(e.kind, e.storage_id, e.key) for e in store.expiries(10, ALL)] == [
        (ExpiryKind.TOMBSTONE, first.storage_id, "a"),
        (ExpiryKind.TOMBSTONE, first.storage_id, "b"),
        (ExpiryKind.TOMBSTONE, second.storage_id, "b"),
        (ExpiryKind.FAILED_TASK, first.storage_id, "a"),
    ]


def test_replacing_a_tombstone_leaves_one_expiry_entry(store):
    queue = create_queue(store, "q")
    commit(store, lambda txn: txn.put_tombstone(queue, "name", 70))
    assert store.next_expiry() == 70
    commit(store, lambda txn: txn.put_tombstone(queue, "name", 90))
    assert store.tombstone(queue, "name") == 90
    assert store.expiries(FOREVER, ALL) == [Expiry(90, ExpiryKind.TOMBSTONE, queue.storage_id, "name")]
    commit(store, lambda txn: txn.put_tombstone(queue, "name", 50))
    assert store.tombstone(queue, "name") == 50
    assert store.expiries(FOREVER, ALL) == [Expiry(50, ExpiryKind.TOMBSTONE, queue.storage_id, "name")]
    assert store.next_expiry() == 50


def test_replacing_a_tombstone_twice_in_one_transaction_leaves_one_expiry_entry(store):
    queue = create_queue(store, "q")
    commit(store, lambda txn: txn.put_tombstone(queue, "name", 70))
    commit(
        store,
        lambda txn: txn.put_tombstone(queue, "name", 80),
        lambda txn: txn.put_tombstone(queue, "name", 60),
    )
    assert store.tombstone(queue, "name") == 60
    assert store.expiries(FOREVER, ALL) == [Expiry(60, ExpiryKind.TOMBSTONE, queue.storage_id, "name")]


def test_renewing_a_tombstone_with_its_own_expiry_keeps_its_entry(store):
    queue = create_queue(store, "q")
    commit(store, lambda txn: txn.put_tombstone(queue, "name", 70))
    entry = Expiry(70, ExpiryKind.TOMBSTONE, queue.storage_id, "name")
    assert store.expiries(FOREVER, ALL) == [entry]  # the scan position now rests on the entry
    commit(store, lambda txn: txn.put_tombstone(queue, "name", 70))
    assert store.tombstone(queue, "name") == 70
    assert store.next_expiry() == 70
    assert store.expiries(FOREVER, ALL) == [entry]


def test_delete_expiry_removes_the_tombstone_it_guards(store):
    queue = create_queue(store, "q")
    commit(
        store, lambda txn: txn.put_tombstone(queue, "name", 70), lambda txn: txn.put_tombstone(queue, "other", 75)
    )
    (entry,) = store.expiries(70, ALL)
    commit(store, lambda txn: txn.delete_expiry(entry))
    assert store.tombstone(queue, "name") is None
    assert store.tombstone(queue, "other") == 75
    assert store.expiries(FOREVER, ALL) == [Expiry(75, ExpiryKind.TOMBSTONE, queue.storage_id, "other")]


def test_delete_expiry_keeps_a_tombstone_renewed_since(store):
    queue = create_queue(store, "q")
    commit(store, lambda txn: txn.put_tombstone(queue, "name", 70))
    (stale,) = store.expiries(FOREVER, ALL)
    commit(store, lambda txn: txn.put_tombstone(queue, "name", 90))
    commit(store, lambda txn: txn.delete_expiry(stale))
    assert store.tombstone(queue, "name") == 90
    assert store.expiries(FOREVER, ALL) == [Expiry(90, ExpiryKind.TOMBSTONE, queue.storage_id, "name")]


def test_a_tombstone_and_a_request_id_with_one_key_are_separate(store):
    queue = create_queue(store, "q")
    commit(
        store,
        lambda txn: txn.put_tombstone(queue, "k", 70),
        lambda txn: txn.put_request(queue, "k", request_record("k")),
        lambda txn: txn.put_ack(queue, "k", "token", REQUEST_NOW),
    )
    tombstone_entry = Expiry(70, ExpiryKind.TOMBSTONE, queue.storage_id, "k")
    commit(store, lambda txn: txn.delete_expiry(tombstone_entry))
    assert store.tombstone(queue, "k") is None
    assert store.request(queue, "k", REQUEST_NOW) == request_record("k")
    assert store.acked(queue, "k", REQUEST_NOW) == "token"


def test_a_failed_tasks_expiry_entry_follows_the_task(store):
    queue = create_queue(store, "q")
    (task,) = add_tasks(store, queue, as_failed(waiting_task("f", 1), 30))
    entry = Expiry(30, ExpiryKind.FAILED_TASK, queue.storage_id, "f")
    assert store.expiries(FOREVER, ALL) == [entry]
    retained = replace(store, queue, task, as_failed(task, 60))
    assert store.expiries(FOREVER, ALL) == [Expiry(60, ExpiryKind.FAILED_TASK, queue.storage_id, "f")]
    rerun = replace(store, queue, retained, as_waiting(retained, 5))
    assert store.expiries(FOREVER, ALL) == [] and store.next_expiry() is None
    leased = replace(store, queue, rerun, as_leased(rerun, 10))
    failed = replace(store, queue, leased, as_failed(leased, 40))
    assert store.expiries(FOREVER, ALL) == [Expiry(40, ExpiryKind.FAILED_TASK, queue.storage_id, "f")]
    remove(store, queue, failed)
    assert store.expiries(FOREVER, ALL) == []


def test_a_deleted_queues_failed_tasks_leave_expiry_entries_until_deleted(store):
    doomed, kept = create_queue(store, "doomed"), create_queue(store, "kept")
    add_tasks(store, doomed, as_failed(waiting_task("f", 1), 30))
    add_tasks(store, kept, as_failed(waiting_task("g", 1), 40))
    commit(store, lambda txn: txn.delete_queue(doomed))
    orphan = Expiry(30, ExpiryKind.FAILED_TASK, doomed.storage_id, "f")
    kept_entry = Expiry(40, ExpiryKind.FAILED_TASK, kept.storage_id, "g")
    # The deleted queue's entry may stay in the index until a reader drops it: it does on the
    # memory and RocksDB engines; PostgreSQL deletes the queue's rows, its entries with them.
    assert store.expiries(FOREVER, ALL) == ([orphan, kept_entry] if boundary_engine(store) else [kept_entry])
    commit(store, lambda txn: txn.delete_expiry(orphan))
    assert store.expiries(FOREVER, ALL) == [Expiry(40, ExpiryKind.FAILED_TASK, kept.storage_id, "g")]
    assert store.next_expiry() == 40


def test_a_deleted_queues_tombstones_leave_expiry_entries_until_deleted(store):
    doomed = create_queue(store, "doomed")
    commit(
        store,
        lambda txn: txn.put_tombstone(doomed, "t", 10),
        lambda txn: txn.put_request(doomed, "r", request_record("r")),
    )
    commit(store, lambda txn: txn.delete_queue(doomed))
    entries = store.expiries(FOREVER, ALL)
    # The deleted queue's entry may stay in the index until a reader drops it (as for failed
    # tasks above).
    assert entries == ([Expiry(10, ExpiryKind.TOMBSTONE, doomed.storage_id, "t")] if boundary_engine(store) else [])
    assert store.request(doomed, "r", REQUEST_NOW) is None
    commit(store, *[lambda txn, entry=entry: txn.delete_expiry(entry) for entry in entries])
    assert store.expiries(FOREVER, ALL) == [] and store.next_expiry() is None


# Request ids, acknowledgements and their hours ----------------------------------------------


def test_a_request_id_is_remembered_for_at_least_an_hour_and_at_most_two(store):
    queue = create_queue(store, "q")
    made_us = 10 * HOUR_US + 5  # early in an hour: the longest it can be remembered
    record = RequestRecord(task_id="t", tag="x", schedule_time_us=made_us + 9, create_time_us=made_us)
    assert store.request(queue, "req", made_us) is None
    commit(store, lambda txn: txn.put_request(queue, "req", record))
    assert store.request(queue, "req", made_us) == record
    assert store.request(queue, "req", made_us + HOUR_US) == record
    assert store.request(queue, "req", 12 * HOUR_US) is None
    assert store.expiries(FOREVER, ALL) == []  # no per-id expiry entry to process


def test_an_acknowledgement_is_remembered_for_at_least_an_hour_and_at_most_two(store):
    queue, other = create_queue(store, "q"), create_queue(store, "other")
    made_us = 10 * HOUR_US + 5
    assert store.acked(queue, "t", made_us) is None
    commit(store, lambda txn: txn.put_ack(queue, "t", "token-1", made_us))
    assert store.acked(queue, "t", made_us) == "token-1"
    assert store.acked(queue, "t", made_us + HOUR_US) == "token-1"
    assert store.acked(queue, "t", 12 * HOUR_US) is None
    assert store.acked(queue, "u", made_us) is None
    assert store.acked(other, "t", made_us) is None
    assert store.expiries(FOREVER, ALL) == []


def test_replacing_a_request_record_or_an_acknowledgement_keeps_the_latest(store):
    queue = create_queue(store, "q")
    commit(store, lambda txn: txn.put_request(queue, "req", request_record("a")))
    commit(store, lambda txn: txn.put_request(queue, "req", request_record("b")))
    assert store.request(queue, "req", REQUEST_NOW) == request_record("b")
    commit(store, lambda txn: txn.put_ack(queue, "t", "first", REQUEST_NOW))
    commit(store, lambda txn: txn.put_ack(queue, "t", "second", REQUEST_NOW))
    assert store.acked(queue, "t", REQUEST_NOW) == "second"


def record_at(task_id: str, hour: int) -> RequestRecord:
    made_us = hour * HOUR_US + 1
    return RequestRecord(task_id=task_id, tag="", schedule_time_us=made_us, create_time_us=made_us)


def test_request_hours_lists_the_hours_holding_request_ids_or_acks_oldest_first(store):
    first, second = create_queue(store, "first"), create_queue(store, "second")
    assert store.request_hours(2**31, ALL) == [] and store.first_request_hour() is None
    commit(
        store,
        lambda txn: txn.put_request(second, "r1", record_at("t", 3)),
        lambda txn: txn.put_request(second, "r2", record_at("t", 3)),
        lambda txn: txn.put_request(first, "r1", record_at("t", 5)),
        lambda txn: txn.put_ack(first, "t", "token", 3 * HOUR_US + 7),
        lambda txn: txn.put_ack(second, "t", "token", 7 * HOUR_US),
    )
    one, two = first.storage_id, second.storage_id
    assert one < two
    every = [(3, one), (3, two), (5, one), (7, two)]
    assert store.request_hours(2**31, ALL) == every
    assert store.request_hours(7, ALL) == every[:3]
    assert store.request_hours(4, ALL) == every[:2]
    assert store.request_hours(3, ALL) == []
    assert store.request_hours(2**31, 1) == every[:1]
    assert store.request_hours(2**31, 0) == []
    assert store.first_request_hour() == 3


def test_forget_hour_forgets_the_request_ids_and_acks_of_one_queue_and_hour(store):
    queue, other = create_queue(store, "q"), create_queue(store, "other")
    commit(
        store,
        lambda txn: txn.put_request(queue, "old", record_at("old", 1)),
        lambda txn: txn.put_ack(queue, "old-task", "old-token", HOUR_US + 2),
        lambda txn: txn.put_request(queue, "new", record_at("new", 3)),
        lambda txn: txn.put_ack(queue, "new-task", "new-token", 3 * HOUR_US + 2),
        lambda txn: txn.put_request(other, "old", record_at("old", 1)),
        lambda txn: txn.put_ack(other, "old-task", "other-token", HOUR_US + 2),
    )
    assert store.request_hours(3, ALL) == [(1, queue.storage_id), (1, other.storage_id)]
    commit(store, lambda txn: txn.forget_hour(1, queue.storage_id))
    commit(store, lambda txn: txn.forget_hour(1, queue.storage_id))  # a repeat changes nothing
    now_us = 3 * HOUR_US + 1
    assert store.request(queue, "new", now_us) == record_at("new", 3)
    assert store.acked(queue, "new-task", now_us) == "new-token"
    # Seen with a clock from their own hour: forgetting removed them, not just the window.
    assert store.request(queue, "old", HOUR_US + 5) is None
    assert store.acked(queue, "old-task", HOUR_US + 5) is None
    assert store.request(other, "old", HOUR_US + 5) == record_at("old", 1)
    assert store.acked(other, "old-task", HOUR_US + 5) == "other-token"
    assert store.request_hours(2**31, ALL) == [(1, other.storage_id), (3, queue.storage_id)]
    assert store.first_request_hour() == 1
    commit(store, lambda txn: txn.forget_hour(1, other.storage_id))
    assert store.first_request_hour() == 3


def test_an_hour_noted_after_the_hours_were_scanned_is_listed(store):
    first, second = create_queue(store, "first"), create_queue(store, "second")
    commit(store, lambda txn: txn.put_request(second, "r", record_at("t", 5)))
    assert store.first_request_hour() == 5  # the scan position now rests on (5, second)
    assert store.request_hours(2**31, ALL) == [(5, second.storage_id)]
    commit(store, lambda txn: txn.put_request(first, "r", record_at("t", 5)))
    assert store.request_hours(2**31, ALL) == [(5, first.storage_id), (5, second.storage_id)]
    commit(store, lambda txn: txn.put_ack(second, "t", "token", 4 * HOUR_US))
    assert store.first_request_hour() == 4
    assert store.request_hours(2**31, ALL) == [(4, second.storage_id), (5, first.storage_id), (5, second.storage_id)]
    for hour, storage_id in store.request_hours(2**31, ALL):
        commit(store, lambda txn, hour=hour, storage_id=storage_id: txn.forget_hour(hour, storage_id))
    assert store.request_hours(2**31, ALL) == [] and store.first_request_hour() is None
    assert store.request(first, "r", 5 * HOUR_US) is None


def test_an_hour_forgotten_and_used_again_is_listed_again(store):
    queue = create_queue(store, "q")
    commit(store, lambda txn: txn.put_request(queue, "a", record_at("a", 2)))
    commit(store, lambda txn: txn.forget_hour(2, queue.storage_id))
    assert store.request_hours(2**31, ALL) == []
    commit(store, lambda txn: txn.put_request(queue, "b", record_at("b", 2)))
    assert store.request_hours(2**31, ALL) == [(2, queue.storage_id)]
    assert store.request(queue, "b", 2 * HOUR_US + 5) == record_at("b", 2)


def test_a_deleted_queues_hours_can_be_forgotten(store):
    doomed, kept = create_queue(store, "doomed"), create_queue(store, "kept")
    commit(
        store,
        lambda txn: txn.put_request(doomed, "r", record_at("r", 1)),
        lambda txn: txn.put_ack(doomed, "t", "token", 2 * HOUR_US),
        lambda txn: txn.put_request(kept, "r", record_at("r", 2)),
    )
    commit(store, lambda txn: txn.delete_queue(doomed))
    assert store.request(doomed, "r", HOUR_US + 5) is None
    assert store.acked(doomed, "t", 2 * HOUR_US) is None
    hours = store.request_hours(2**31, ALL)
    # The deleted queue's hours may stay listed until they are forgotten.
    assert (2, kept.storage_id) in hours
    assert set(hours) <= {(1, doomed.storage_id), (2, doomed.storage_id), (2, kept.storage_id)}
    for hour, storage_id in hours:
        if storage_id == doomed.storage_id:
            commit(store, lambda txn, hour=hour: txn.forget_hour(hour, doomed.storage_id))
    assert store.request_hours(2**31, ALL) == [(2, kept.storage_id)]
    assert store.first_request_hour() == 2
    assert store.request(kept, "r", 2 * HOUR_US + 5) == record_at("r", 2)


# Token buckets ----------------------------------------------------------------------------


def test_a_push_queues_token_bucket_is_kept_per_queue(store):
    queue, other = create_queue(store, "q", QueueType.PUSH), create_queue(store, "other", QueueType.PUSH)
    add_tasks(store, queue, waiting_task("t", 5), as_leased(waiting_task("l", 1), 9))
    counters = store.counters(queue)
    assert store.bucket(queue) is None
    commit(store, lambda txn: txn.put_bucket(queue, TokenState(2.75, 100)))
    assert store.bucket(queue) == TokenState(2.75, 100)
    assert store.bucket(other) is None
    assert store.counters(queue) == counters  # the bucket changes no count
    commit(store, lambda txn: txn.put_bucket(queue, TokenState(0.125, 200)))
    assert store.bucket(queue) == TokenState(0.125, 200)
    found = store.bucket(queue)
    found.tokens = 99.0
    assert store.bucket(queue) == TokenState(0.125, 200)  # a copy
    add_tasks(store, queue, waiting_task("u", 6))
    assert store.bucket(queue) == TokenState(0.125, 200)  # counter updates keep the bucket
    assert tally(store.counters(queue)) == (2, 0, 1, 0)


# The page-token key -----------------------------------------------------------------------


def test_the_page_token_key_is_32_bytes_and_does_not_change(store):
    key = store.page_token_key()
    assert isinstance(key, bytes) and len(key) == 32
    assert key != bytes(32)
    create_queue(store, "q")
    assert store.page_token_key() == key
    assert store.begin().page_token_key() == key
