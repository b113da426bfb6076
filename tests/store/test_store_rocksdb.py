"""What only the persistent engine promises: everything survives closing and reopening
(token buckets, the page-token key, the due-time indexes), one process per directory, the
key schema version (a version 1 directory is migrated, unknown versions are refused), a
failed write, and scans that stay right after heavy deletes and compaction.
"""

from __future__ import annotations

import itertools
import threading

import pytest
import rocksdict
from store_helpers import (
    ALL,
    FOREVER,
    HOUR_US,
    REQUEST_NOW,
    add_tasks,
    as_failed,
    as_leased,
    assert_counters_match_tasks,
    commit,
    create_queue,
    ids,
    listed,
    new_queue,
    promote,
    replace,
    request_record,
    snapshot,
    tally,
    waiting_ids,
    waiting_task,
)

from taskq.core.model import (
    Counters,
    Expiry,
    ExpiryKind,
    LeaseEntry,
    Promotion,
    Queue,
    QueueType,
    RequestRecord,
    TokenState,
)
from taskq.store import keys, rocksdb, rocksdb_migrate
from taskq.store.base import Store, StoreError, StoreLocked
from taskq.store.records import encode_counters, encode_queue, encode_request
from taskq.store.rocksdb import RocksStore
from taskq.store.task_record import encode_task


def raw(path: str) -> rocksdict.Rdict:
    """The directory opened without the engine, to write or read keys by hand."""
    return rocksdict.Rdict(path, rocksdict.Options(raw_mode=True))


def stored_schema_version(path: str) -> int:
    db = raw(path)
    try:
        return keys.read_u64(db.get(keys.META_SCHEMA_VERSION))
    finally:
        db.close()


# Reopening --------------------------------------------------------------------------------


def test_everything_survives_closing_and_reopening(rocks_path):
    store = RocksStore(rocks_path)
    pull = create_queue(store, "pull", QueueType.PULL, create_time_us=5, dead_letter_queue="push")
    push = create_queue(store, "push", QueueType.PUSH, max_dispatches_per_second=3.5, purging=True)
    doomed = create_queue(store, "doomed")
    for queue in (pull, push, doomed):
        commit(
            store,
            lambda txn, q=queue: txn.put_task(q, waiting_task("w1", 3, tag="x", attributes={"a": "b"}), None),
            lambda txn, q=queue: txn.put_task(q, waiting_task("w2", 30, tag="y"), None),
            lambda txn, q=queue: txn.put_task(q, waiting_task("w3", 300), None),
            lambda txn, q=queue: txn.put_task(q, waiting_task("w4", 300), None),
            lambda txn, q=queue: txn.put_task(q, as_leased(waiting_task("l", 3), 40 + q.storage_id), None),
            lambda txn, q=queue: txn.put_task(q, as_failed(waiting_task("f", 3), 60 + q.storage_id), None),
            lambda txn, q=queue: txn.put_tombstone(q, "gone", 70 + q.storage_id),
            lambda txn, q=queue: txn.put_request(q, "req", request_record("w1")),
            lambda txn, q=queue: txn.put_ack(q, "w1", f"token-{q.queue_id}", REQUEST_NOW),
            lambda txn, q=queue: txn.put_request(q, "old", RequestRecord("w2", "", 3, 2 * HOUR_US)),
        )
    commit(store, lambda txn: txn.put_bucket(push, TokenState(1.75, 123)))
    promote(store, pull, 30)
    assert promote(store, push, 300, limit=3) is False  # stops between w3 and w4, both at 300
    commit(store, lambda txn: txn.delete_queue(doomed))
    names = ["gone", "req", "w1", "missing"]
    before = snapshot(store, names)
    store.sync()
    store.close()

    reopened = RocksStore(rocks_path)
    try:
        assert snapshot(reopened, names) == before
        assert before["pull"]["counters"] == Counters(
            ready=2, scheduled=2, leased=1, failed=1, promoted_through_us=30, next_promotion_us=300
        )
        assert before["push"]["counters"].promoted_through_id == "w3"
        assert before["push"]["bucket"] == TokenState(1.75, 123)
        assert before["push"]["acks"]["w1"] == "token-push"
        assert before["pull"]["referrers"] == [] and before["push"]["referrers"] == ["pull"]
        assert before["purging"] == ["push"]
        later = create_queue(reopened, "later")
        assert later.storage_id > max(pull.storage_id, push.storage_id, doomed.storage_id)
        # and the reopened store keeps working as before
        (w1,) = [t for t in listed(reopened, pull) if t.task_id == "w1"]
        replace(reopened, pull, w1, as_leased(w1, 45))
        assert waiting_ids(reopened, pull) == ["w2", "w3", "w4"]
        assert_counters_match_tasks(reopened, pull)
        assert promote(reopened, push, 300, limit=5) is True
        assert tally(reopened.counters(push)) == (0, 4, 1, 1)
        for hour, storage_id in reopened.request_hours(2**31, ALL):
            commit(reopened, lambda txn, hour=hour, storage_id=storage_id: txn.forget_hour(hour, storage_id))
        assert reopened.request(pull, "req", REQUEST_NOW) is None
        assert reopened.acked(push, "w1", REQUEST_NOW) is None
        assert reopened.request_hours(2**31, ALL) == []
    finally:
        reopened.close()


def test_a_token_bucket_survives_reopening_and_leaves_the_counters_alone(rocks_path):
    store = RocksStore(rocks_path)
    queue = create_queue(store, "q", QueueType.PUSH)
    add_tasks(store, queue, waiting_task("a", 5), as_leased(waiting_task("b", 1), 9))
    counters = store.counters(queue)
    commit(store, lambda txn: txn.put_bucket(queue, TokenState(0.5, 77)))  # the bucket alone
    store.close()
    store = RocksStore(rocks_path)
    try:
        assert store.bucket(queue) == TokenState(0.5, 77)
        assert store.counters(queue) == counters
        add_tasks(store, queue, waiting_task("c", 6))  # a counters write keeps the bucket
        commit(store, lambda txn: txn.put_bucket(store.queue("q"), TokenState(2.0, 88)))
    finally:
        store.close()
    store = RocksStore(rocks_path)
    try:
        assert store.bucket(queue) == TokenState(2.0, 88)
        assert tally(store.counters(queue)) == (2, 0, 1, 0)
    finally:
        store.close()


def test_the_page_token_key_is_kept_across_reopening_and_differs_between_directories(tmp_path):
    first = RocksStore(str(tmp_path / "first"))
    key = first.page_token_key()
    first.close()
    first = RocksStore(str(tmp_path / "first"))
    second = RocksStore(str(tmp_path / "second"))
    try:
        assert first.page_token_key() == key and len(key) == 32
        assert second.page_token_key() != key
    finally:
        first.close()
        second.close()


def test_a_storage_id_assigned_before_a_restart_is_never_assigned_again(rocks_path):
    store = RocksStore(rocks_path)
    first = create_queue(store, "first")
    commit(store, lambda txn: txn.delete_queue(first))
    store.close()
    store = RocksStore(rocks_path)
    try:
        again = create_queue(store, "first")
        assert again.storage_id > first.storage_id
    finally:
        store.close()


def test_a_second_store_on_an_open_directory_is_refused(rocks_path):
    store = RocksStore(rocks_path)
    try:
        with pytest.raises(StoreLocked):
            RocksStore(rocks_path)
        create_queue(store, "still-works")
        assert store.queue("still-works") is not None
    finally:
        store.close()
    RocksStore(rocks_path).close()  # free again once closed


def test_a_failed_write_leaves_nothing_of_the_transaction_visible(rocks_path):
    store = RocksStore(rocks_path)
    try:
        queue = create_queue(store, "q")
        (task,) = add_tasks(store, queue, waiting_task("t", 5))
        before = snapshot(store, ["t", "name"])

        class FailingWrites:
            def __init__(self, db) -> None:
                self._db = db

            def write(self, batch) -> None:
                raise OSError("disk full")

            def __getattr__(self, name):
                return getattr(self._db, name)

        real = store._db
        store._db = FailingWrites(real)
        txn = store.begin()
        txn.put_queue(new_queue("new"))
        txn.promote(queue, 10, ALL)
        txn.put_task(queue, as_leased(task, 50), task)
        txn.put_tombstone(queue, "name", 70)
        txn.put_request(queue, "name", request_record("t"))
        txn.put_bucket(queue, TokenState(1.0, 2))
        with pytest.raises(StoreError):
            store.apply(txn)
        store._db = real
        assert snapshot(store, ["t", "name"]) == before
    finally:
        store.close()


# The key schema ---------------------------------------------------------------------------


def test_a_new_directory_records_the_current_key_schema_version(rocks_path):
    RocksStore(rocks_path).close()
    assert stored_schema_version(rocks_path) == keys.KEY_SCHEMA_VERSION == 2


def test_a_directory_with_an_unknown_key_schema_version_is_refused(rocks_path):
    RocksStore(rocks_path).close()
    db = raw(rocks_path)
    db.put(keys.META_SCHEMA_VERSION, keys.u64(99))
    db.close()

    with pytest.raises(StoreError) as refused:
        RocksStore(rocks_path)
    assert not isinstance(refused.value, StoreLocked)
    message = str(refused.value)
    assert "99" in message and str(keys.KEY_SCHEMA_VERSION) in message and rocks_path in message
    assert stored_schema_version(rocks_path) == 99  # left as it was

    # Refusing the directory released it: it can be repaired and opened.
    db = raw(rocks_path)
    db.put(keys.META_SCHEMA_VERSION, keys.u64(keys.KEY_SCHEMA_VERSION))
    db.close()
    RocksStore(rocks_path).close()


def test_a_directory_with_data_but_no_schema_version_is_refused(rocks_path):
    db = raw(rocks_path)
    db.put(keys.META_NEXT_STORAGE_ID, keys.u64(5))
    db.close()
    with pytest.raises(StoreError, match="no schema version"):
        RocksStore(rocks_path)


#: A version 1 directory, written by hand below. Two queues: "pull" (storage id 1) and "push"
#: (storage id 2), both counted as ready through time 10.
V1_PULL = new_queue("pull", QueueType.PULL, create_time_us=0, storage_id=1)
V1_PUSH = new_queue("push", QueueType.PUSH, create_time_us=0, storage_id=2, dead_letter_queue="pull")
V1_TASKS = {
    1: [
        waiting_task("ready", 5, tag="x", payload=b"r"),
        waiting_task("sched-b", 50),
        waiting_task("sched-a", 40, tag="x"),
        as_leased(waiting_task("lease-late", 1), 300),
        as_leased(waiting_task("lease-early", 1, payload=b"e"), 100),
    ],
    2: [
        waiting_task("waiting", 7),
        as_leased(waiting_task("lease-tie", 1), 100),
        as_leased(waiting_task("lease-mid", 1), 200),
        as_failed(waiting_task("failed", 1), 500),
    ],
}
V1_COUNTERS = {
    1: Counters(scheduled=2, ready=1, leased=2, promoted_through_us=10),
    2: Counters(ready=1, leased=2, failed=1, promoted_through_us=10),
}
V1_REQUESTS = {
    (1, 0, "req-a"): RequestRecord("ready", "x", 5, 7),
    (1, 3, "req-c"): RequestRecord("sched-b", "", 50, 3 * HOUR_US + 1),
    (2, 3, "req-b"): RequestRecord("waiting", "", 7, 3 * HOUR_US + 2),
}
#: Leases in the version 2 order: (expiry, storage id, task id); version 1 kept them by queue.
V2_LEASES = [
    LeaseEntry(100, 1, "lease-early"),
    LeaseEntry(100, 2, "lease-tie"),
    LeaseEntry(200, 2, "lease-mid"),
    LeaseEntry(300, 1, "lease-late"),
]


def write_version_1_directory(path: str) -> None:
    db = raw(path)
    try:
        db.put(keys.META_SCHEMA_VERSION, keys.u64(1))
        db.put(keys.META_NEXT_STORAGE_ID, keys.u64(3))
        for queue in (V1_PULL, V1_PUSH):
            sid = queue.storage_id
            db.put(keys.queue_key(queue.queue_id), encode_queue(queue))
            db.put(keys.counters_key(sid), encode_counters(V1_COUNTERS[sid], None))
            for task in V1_TASKS[sid]:
                db.put(keys.record_key(sid, task.task_id), encode_task(task))
                if task.lease_expire_us:  # leased: version 1 keyed the lease index by queue first
                    db.put(keys.LEASE + keys.sid(sid) + keys.u64(task.lease_expire_us) + task.task_id.encode(), b"")
                elif task.retain_until_us:
                    db.put(keys.expiry_key(task.retain_until_us, ExpiryKind.FAILED_TASK, sid, task.task_id), b"")
                else:
                    db.put(keys.eta_key(sid, task.schedule_time_us, task.task_id), task.tag.encode())
                    if queue.type is QueueType.PULL:
                        db.put(keys.tag_key(sid, task.tag, task.schedule_time_us, task.task_id), b"")
        db.put(keys.tombstone_key(1, "gone"), keys.u64(70))
        db.put(keys.expiry_key(70, ExpiryKind.TOMBSTONE, 1, "gone"), b"")
        for (sid, hour, request_id), record in V1_REQUESTS.items():
            db.put(keys.request_key(sid, hour, request_id), encode_request(record))
        db.flush_wal(True)
    finally:
        db.close()


def assert_migrated(store: Store) -> None:
    pull, push = store.queue("pull"), store.queue("push")
    assert pull == V1_PULL and push == V1_PUSH
    for queue in (pull, push):
        assert listed(store, queue) == sorted(V1_TASKS[queue.storage_id], key=lambda t: t.task_id)
        assert_counters_match_tasks(store, queue)
    assert store.expired_leases(FOREVER, ALL) == V2_LEASES
    assert store.expired_leases(150, ALL) == V2_LEASES[:2]
    assert store.leases(None, 3) == V2_LEASES[:3]
    assert store.leases(V2_LEASES[2], ALL) == V2_LEASES[3:]
    assert store.next_lease_expiry() == 100
    assert store.request_hours(2**31, ALL) == [(0, 1), (3, 1), (3, 2)]
    assert store.request_hours(3, ALL) == [(0, 1)]
    assert store.first_request_hour() == 0
    for (sid, _hour, request_id), record in V1_REQUESTS.items():
        queue = store.queue_by_storage_id(sid)
        assert store.request(queue, request_id, record.create_time_us) == record
    # The promotion index holds each queue's first task counted as scheduled.
    assert store.promotions(FOREVER, ALL) == [Promotion(40, 1)]
    assert store.counters(pull) == Counters(
        scheduled=2, ready=1, leased=2, promoted_through_us=10, next_promotion_us=40
    )
    assert store.counters(push) == V1_COUNTERS[2]
    assert store.expiries(FOREVER, ALL) == [
        Expiry(70, ExpiryKind.TOMBSTONE, 1, "gone"),
        Expiry(500, ExpiryKind.FAILED_TASK, 2, "failed"),
    ]
    assert store.tombstone(pull, "gone") == 70
    assert waiting_ids(store, pull, tag="x") == ["ready", "sched-a"]
    assert waiting_ids(store, push) == ["waiting"]
    assert store.dead_letter_referrers("pull") == ["push"]
    assert len(store.page_token_key()) == 32


def meta_keys(path: str) -> set[bytes]:
    db = raw(path)
    try:
        return {key for key, _ in db.items(from_key=keys.META) if key.startswith(keys.META)}
    finally:
        db.close()


def test_a_version_1_directory_is_migrated_to_version_2(rocks_path, tmp_path):
    write_version_1_directory(rocks_path)
    store = RocksStore(rocks_path)
    try:
        assert_migrated(store)
        key = store.page_token_key()
    finally:
        store.close()
    assert stored_schema_version(rocks_path) == 2
    # Nothing of the migration is left behind: the meta keys are those of a new directory.
    fresh = RocksStore(str(tmp_path / "new"))
    create_queue(fresh, "q")
    fresh.close()
    assert meta_keys(rocks_path) == meta_keys(str(tmp_path / "new"))

    # A second open finds version 2 and changes nothing.
    store = RocksStore(rocks_path)
    try:
        assert_migrated(store)
        assert store.page_token_key() == key
        # The migrated store works as a new one: the lease keys are the ones it maintains.
        pull = store.queue("pull")
        early = store.task(pull, "lease-early")
        commit(store, lambda txn: txn.delete_task(pull, early))
        assert store.expired_leases(FOREVER, ALL) == V2_LEASES[1:]
        late = store.task(pull, "lease-late")
        replace(store, pull, late, as_leased(late, 50))
        assert store.leases(None, 1) == [LeaseEntry(50, 1, "lease-late")]
        assert promote(store, pull, 45) is True
        assert store.counters(pull).next_promotion_us == 50
        assert store.promotions(FOREVER, ALL) == [Promotion(50, 1)]
        assert create_queue(store, "new").storage_id == 3
        for hour, storage_id in store.request_hours(3, ALL):
            commit(store, lambda txn, hour=hour, storage_id=storage_id: txn.forget_hour(hour, storage_id))
        assert store.request(pull, "req-a", 7) is None
        assert store.first_request_hour() == 3
    finally:
        store.close()


def test_a_migration_interrupted_by_a_crash_is_run_again_from_the_start(rocks_path, monkeypatch):
    write_version_1_directory(rocks_path)

    def crash(*args, **kwargs):
        raise RuntimeError("killed during the migration")

    # The lease keys are rewritten first; the crash comes after that, before the version.
    monkeypatch.setattr(rocksdb_migrate, "items", crash)
    with pytest.raises(RuntimeError):
        RocksStore(rocks_path)
    monkeypatch.undo()
    assert stored_schema_version(rocks_path) == 1

    store = RocksStore(rocks_path)
    try:
        assert_migrated(store)
    finally:
        store.close()
    assert stored_schema_version(rocks_path) == 2


# Scans over long-lived indexes ------------------------------------------------------------


def lease_in_order(store: Store, queue: Queue, count: int, batch: int, tag: str | None = None) -> list[str]:
    """Leases the `batch` oldest waiting tasks (of `tag`), `count` times; returns their ids."""
    leased = []
    for _ in range(count):
        taken = list(itertools.islice(store.waiting(queue, FOREVER, tag), batch))
        commit(
            store,
            lambda txn: txn.promote(queue, FOREVER, ALL),
            *[lambda txn, t=t: txn.put_task(queue, as_leased(t, 10_000 + int(t.task_id[1:])), t) for t in taken],
        )
        leased += ids(taken)
    return leased


def test_scans_stay_right_after_many_deletes_at_the_head_of_an_index(rocks_path, monkeypatch):
    # Compaction is triggered by deletions; make it happen within this test's deletions.
    monkeypatch.setattr(rocksdb, "COMPACT_AFTER_DELETES", 1000)
    store = RocksStore(rocks_path)
    try:
        queue = create_queue(store, "q", QueueType.PULL)
        total = 5000
        everything = [waiting_task(f"t{i:05d}", 1000 + i, tag="x" if i % 2 else "") for i in range(total)]
        for start in range(0, total, 1000):
            add_tasks(store, queue, *everything[start : start + 1000])
        expected = ids(everything)
        assert waiting_ids(store, queue) == expected

        # Lease from the head in batches: each scan must start where the live tasks begin.
        leased: list[str] = []
        for round_number in range(25):
            leased += lease_in_order(store, queue, 1, 100)
            assert leased == expected[: len(leased)]
            next_ten = expected[len(leased) : len(leased) + 10]
            assert waiting_ids(store, queue, 1000 + len(leased) + 9) == next_ten
            assert store.oldest_waiting(queue) == (1000 + len(leased), "x" if len(leased) % 2 else "")
            if round_number % 5 == 4:
                assert waiting_ids(store, queue) == expected[len(leased) :]
                assert_counters_match_tasks(store, queue)
        # The tag indexes have their own heads.
        tagged = lease_in_order(store, queue, 5, 100, tag="x")
        remaining_x = [t for t in expected[len(leased) :] if int(t[1:]) % 2][500:]
        assert tagged == [t for t in expected[len(leased) :] if int(t[1:]) % 2][:500]
        assert waiting_ids(store, queue, tag="x") == remaining_x
        assert waiting_ids(store, queue, tag="") == [t for t in expected[len(leased) :] if not int(t[1:]) % 2]
        leased += tagged

        # Ack the leases in expiry order: the lease index is consumed from its head too.
        by_expiry = sorted(leased, key=lambda task_id: int(task_id[1:]))
        acked = 0
        while entries := store.expired_leases(FOREVER, 250):
            tasks = [store.task(queue, entry.task_id) for entry in entries]
            commit(
                store,
                *[lambda txn, t=t: txn.delete_task(queue, t) for t in tasks],
                *[lambda txn, t=t, at=50_000 + acked: txn.put_tombstone(queue, t.task_id, at) for t in tasks],
            )
            acked += len(entries)
            remaining = store.expired_leases(FOREVER, ALL)
            assert len(remaining) == len(leased) - acked
            assert [e.task_id for e in remaining] == by_expiry[acked:]
            assert store.leases(None, ALL) == remaining
        assert acked == len(leased)
        assert store.next_lease_expiry() is None

        # Expire the tombstones from the head of the expiry index.
        expired = 0
        while entries := store.expiries(FOREVER, 300):
            commit(store, *[lambda txn, e=e: txn.delete_expiry(e) for e in entries])
            expired += len(entries)
        assert expired == len(leased)
        assert store.next_expiry() is None
        assert store.tombstone(queue, leased[0]) is None

        pending_compactions = list(store._compact_ranges)
        assert pending_compactions, "the deletions should have asked for compaction"
        store.maintain()
        assert store._compact_ranges == []

        left = [t for t in expected if t not in set(leased)]
        assert waiting_ids(store, queue) == left
        assert waiting_ids(store, queue, tag="x") == [t for t in left if int(t[1:]) % 2]
        assert waiting_ids(store, queue, tag="") == [t for t in left if not int(t[1:]) % 2]
        assert_counters_match_tasks(store, queue)
        assert store.counters(queue) == Counters(ready=len(left), promoted_through_us=FOREVER)

        # New work before, among and after the consumed range is found again.
        add_tasks(
            store,
            queue,
            waiting_task("early", 1, tag="x"),
            waiting_task("middle", 1000 + 10, tag="x"),
            waiting_task("late", 10**9),
        )
        assert waiting_ids(store, queue)[:2] == ["early", "middle"]
        assert waiting_ids(store, queue)[-1] == "late"
        assert waiting_ids(store, queue, tag="x")[:2] == ["early", "middle"]
        add_tasks(store, queue, as_leased(waiting_task("lease", 1), 5))
        assert store.expired_leases(FOREVER, ALL) == [LeaseEntry(5, queue.storage_id, "lease")]
        commit(store, lambda txn: txn.put_tombstone(queue, "stone", 6))
        assert store.expiries(FOREVER, ALL) == [Expiry(6, ExpiryKind.TOMBSTONE, queue.storage_id, "stone")]
    finally:
        store.close()

    # After a restart (no remembered heads) the same answers come back.
    store = RocksStore(rocks_path)
    try:
        queue = store.queue("q")
        assert waiting_ids(store, queue)[:2] == ["early", "middle"]
        assert len(waiting_ids(store, queue)) == len(left) + 3
        assert store.next_lease_expiry() == 5
        assert store.next_expiry() == 6
        assert_counters_match_tasks(store, queue)
    finally:
        store.close()


def test_bounded_promotions_stay_right_after_many_deletes_at_the_head_of_the_index(rocks_path):
    store = RocksStore(rocks_path)
    try:
        queue = create_queue(store, "q")
        add_tasks(store, queue, *[waiting_task(f"t{i:04d}", 10 + i // 10) for i in range(2000)])
        done = False
        while not done:
            # Lease the head (as dispatch does), then promote in small steps (as the janitor does).
            head = list(itertools.islice(store.waiting(queue, FOREVER), 7))
            commit(store, *[lambda txn, t=t: txn.put_task(queue, as_leased(t, 99_999), t) for t in head])
            done = promote(store, queue, 150, limit=13)
            assert_counters_match_tasks(store, queue)
        counters = store.counters(queue)
        assert counters.scheduled + counters.ready + counters.leased == 2000
        assert counters.ready == sum(
            1 for t in listed(store, queue) if t.lease_expire_us == 0 and t.schedule_time_us <= 150
        )
        assert counters.next_promotion_us == min(
            t.schedule_time_us for t in listed(store, queue) if t.lease_expire_us == 0 and t.schedule_time_us > 150
        )
    finally:
        store.close()


def test_maintain_may_run_in_another_thread_while_the_owner_reads_and_writes(rocks_path, monkeypatch):
    monkeypatch.setattr(rocksdb, "COMPACT_AFTER_DELETES", 50)
    store = RocksStore(rocks_path)
    try:
        queue = create_queue(store, "q")
        add_tasks(store, queue, *[waiting_task(f"t{i:04d}", i) for i in range(1000)])
        stop = threading.Event()

        def keep_maintaining() -> None:
            while not stop.is_set():
                store.maintain()

        worker = threading.Thread(target=keep_maintaining)
        worker.start()
        try:
            leased = lease_in_order(store, queue, 20, 40)
        finally:
            stop.set()
            worker.join()
        store.maintain()
        assert waiting_ids(store, queue) == [f"t{i:04d}" for i in range(len(leased), 1000)]
        assert_counters_match_tasks(store, queue)
    finally:
        store.close()
