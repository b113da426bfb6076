"""The storage contract of store/base.py as tests, run against every engine.

Each test names one promise of the `Store` / `Txn` protocols. The suite runs once per engine
(the `store` fixture); the last section holds what only a persistent engine can promise
(reopening, locking, the schema version, scans after heavy deletes and compaction).

Times are small integers (microseconds): the store compares them, it never reads a clock.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable, Iterable

import pytest

from taskq.core.model import (
    Attempt,
    Counters,
    Expiry,
    ExpiryKind,
    LeaseEntry,
    Queue,
    QueueState,
    QueueType,
    RequestRecord,
    RetryPolicy,
    Stage,
    Task,
)
from taskq.store import keys, rocksdb
from taskq.store.base import Store, StoreError, StoreLocked, Txn
from taskq.store.memory import MemoryStore
from taskq.store.rocksdb import RocksStore

#: Later than every time the tests use, and still far from the 64-bit key limit.
FOREVER = 2**62
#: A limit larger than any listing the tests make.
ALL = 1_000_000

# Engines ----------------------------------------------------------------------------------


#: Every engine the suite runs against; a new engine adds itself here.
ENGINES = {
    "memory": lambda tmp_path: MemoryStore(),
    "rocksdb": lambda tmp_path: RocksStore(str(tmp_path / "data")),
}


@pytest.fixture(params=sorted(ENGINES))
def store(request, tmp_path):
    opened = ENGINES[request.param](tmp_path)
    yield opened
    opened.close()


@pytest.fixture
def rocks_path(tmp_path) -> str:
    return str(tmp_path / "data")


# Builders ---------------------------------------------------------------------------------


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


def ids(tasks: Iterable[Task]) -> list[str]:
    return [task.task_id for task in tasks]


def waiting_ids(store: Store, queue: Queue, until_us: int = FOREVER, tag: str | None = None) -> list[str]:
    return ids(store.waiting(queue, until_us, tag))


def recount(store: Store, queue: Queue) -> Counters:
    """The counters as they follow from the stored tasks and the stored promotion boundary."""
    through = store.counters(queue).promoted_through_us
    counted = Counters(promoted_through_us=through)
    for task in store.tasks(queue, "", ALL):
        if task.stage is Stage.WAITING:
            if task.schedule_time_us <= through:
                counted.ready += 1
            else:
                counted.scheduled += 1
        elif task.stage is Stage.LEASED:
            counted.leased += 1
        else:
            counted.failed += 1
    return counted


def assert_counters_match_tasks(store: Store, queue: Queue) -> None:
    assert store.counters(queue) == recount(store, queue)


#: Request records below are made at time 7 and looked up at REQUEST_NOW, in the same hour.
REQUEST_NOW = 8


def request_record(task_id: str) -> RequestRecord:
    return RequestRecord(task_id=task_id, tag="", schedule_time_us=7, create_time_us=7)


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
    assert ids(store.tasks(stored, "", ALL)) == ["t"]


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
    )
    queue.update_time_us = 12
    commit(store, lambda txn: txn.put_queue(queue))
    assert store.queue("full") == queue
    assert store.queue_by_storage_id(queue.storage_id) == queue
    unlimited = new_queue("unlimited", max_dispatches_per_second=None)
    commit(store, lambda txn: txn.put_queue(unlimited))
    assert store.queue("unlimited").max_dispatches_per_second is None


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
    queue = create_queue(store, "q")
    queue.max_concurrent_dispatches = 77  # the caller's object, after apply
    queue.retry.max_attempts = 77
    for found in (store.queue("q"), store.queue_by_storage_id(queue.storage_id), store.queues("", 1)[0]):
        assert found.max_concurrent_dispatches == 1000
        assert found.retry.max_attempts == 5
        found.max_concurrent_dispatches = 99
        found.retry.max_attempts = 99
    assert store.queue("q").max_concurrent_dispatches == 1000
    assert store.queue("q").retry.max_attempts == 5


def test_a_recreated_queue_gets_a_new_storage_id_and_nothing_of_the_old_one(store):
    old = create_queue(store, "q", create_time_us=0)
    commit(
        store,
        lambda txn: txn.put_task(old, waiting_task("a", 5, tag="x"), None),
        lambda txn: txn.put_task(old, as_leased(waiting_task("b", 5), 50), None),
        lambda txn: txn.put_task(old, as_failed(waiting_task("c", 5), 60), None),
        lambda txn: txn.put_task(old, waiting_task("d", 500), None),
        lambda txn: txn.put_tombstone(old, "gone", 70),
        lambda txn: txn.put_request(old, "req", request_record("a")),
    )
    commit(store, lambda txn: txn.promote(old, 10))
    assert store.counters(old).ready == 1

    commit(store, lambda txn: txn.delete_queue(old))
    fresh = create_queue(store, "q", create_time_us=100)

    assert fresh.storage_id != old.storage_id
    assert store.queue("q").storage_id == fresh.storage_id
    assert store.queue_by_storage_id(old.storage_id) is None
    assert store.queue_by_storage_id(fresh.storage_id).queue_id == "q"
    assert store.tasks(fresh, "", ALL) == []
    for task_id in "abcd":
        assert store.task(fresh, task_id) is None
    assert waiting_ids(store, fresh) == []
    assert waiting_ids(store, fresh, tag="x") == []
    assert waiting_ids(store, fresh, tag="") == []
    assert store.oldest_waiting(fresh) is None
    assert store.first_scheduled(fresh) is None
    assert store.tombstone(fresh, "gone") is None
    assert store.request(fresh, "req", REQUEST_NOW) is None
    assert store.counters(fresh) == Counters(promoted_through_us=100)


def test_a_queue_can_be_deleted_and_recreated_in_one_transaction(store):
    old = create_queue(store, "q")
    add_tasks(store, old, waiting_task("a", 5))
    fresh = new_queue("q", create_time_us=3)
    commit(store, lambda txn: txn.delete_queue(old), lambda txn: txn.put_queue(fresh))
    assert fresh.storage_id != old.storage_id
    assert store.queue("q").storage_id == fresh.storage_id
    assert store.tasks(fresh, "", ALL) == []
    assert store.counters(fresh) == Counters(promoted_through_us=3)


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
    )
    add_tasks(store, queue, task)
    assert store.task(queue, "full") == task
    assert store.tasks(queue, "", ALL) == [task]
    plain = waiting_task("plain", 1)
    add_tasks(store, queue, plain)
    assert store.task(queue, "plain") == plain
    assert store.task(queue, "plain").retry is None and store.task(queue, "plain").last_attempt is None


def test_an_unknown_task_is_none(store):
    queue = create_queue(store, "q")
    assert store.task(queue, "missing") is None


def test_tasks_are_listed_in_id_order_after_the_cursor_up_to_the_limit(store):
    queue = create_queue(store, "q")
    for i, task_id in enumerate(["m", "b", "z", "a", "ba", "c"]):
        add_tasks(store, queue, waiting_task(task_id, 100 - i))
    assert ids(store.tasks(queue, "", ALL)) == ["a", "b", "ba", "c", "m", "z"]
    assert ids(store.tasks(queue, "", 2)) == ["a", "b"]
    assert ids(store.tasks(queue, "b", 2)) == ["ba", "c"]
    assert ids(store.tasks(queue, "bb", 10)) == ["c", "m", "z"]
    assert store.tasks(queue, "z", 10) == []
    assert store.tasks(queue, "", 0) == []


def test_tasks_of_one_queue_are_invisible_in_another(store):
    first, second = create_queue(store, "a"), create_queue(store, "ab")
    add_tasks(store, first, waiting_task("t1", 5, tag="x"))
    add_tasks(store, second, waiting_task("t2", 5, tag="x"), as_leased(waiting_task("t3", 5), 9))
    assert ids(store.tasks(first, "", ALL)) == ["t1"]
    assert ids(store.tasks(second, "", ALL)) == ["t2", "t3"]
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
    for found in (store.task(queue, "t"), store.tasks(queue, "", 1)[0], next(store.waiting(queue, FOREVER))):
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
    assert store.tasks(queue, "", ALL) == []
    assert waiting_ids(store, queue) == [] and waiting_ids(store, queue, tag="x") == []
    assert store.expired_leases(FOREVER, ALL) == []
    assert store.expiries(FOREVER, ALL) == []
    assert store.counters(queue).total == 0


# Transactions -----------------------------------------------------------------------------


def test_a_transactions_writes_are_invisible_until_it_is_applied(store):
    queue = create_queue(store, "q")
    txn = store.begin()
    txn.promote(queue, 10)
    fresh = new_queue("fresh")
    txn.put_queue(fresh)
    txn.put_task(queue, waiting_task("w", 5, tag="x"), None)
    txn.put_task(queue, as_leased(waiting_task("l", 5), 50), None)
    txn.put_tombstone(queue, "name", 70)
    txn.put_request(queue, "req", request_record("w"))

    def assert_nothing_visible() -> None:
        assert store.queue("fresh") is None and store.queue_by_storage_id(fresh.storage_id) is None
        assert [q.queue_id for q in store.queues("", ALL)] == ["q"]
        assert store.task(queue, "w") is None and store.tasks(queue, "", ALL) == []
        assert waiting_ids(store, queue) == [] and waiting_ids(store, queue, tag="x") == []
        assert store.oldest_waiting(queue) is None and store.first_scheduled(queue) is None
        assert store.expired_leases(FOREVER, ALL) == [] and store.next_lease_expiry() is None
        assert store.expiries(FOREVER, ALL) == [] and store.next_expiry() is None
        assert store.tombstone(queue, "name") is None and store.request(queue, "req", REQUEST_NOW) is None
        assert store.counters(queue) == Counters()

    assert_nothing_visible()
    store.apply(txn)
    assert store.queue("fresh") is not None
    assert ids(store.tasks(queue, "", ALL)) == ["l", "w"]
    assert waiting_ids(store, queue, tag="x") == ["w"]
    assert store.next_lease_expiry() == 50
    assert store.tombstone(queue, "name") == 70
    assert store.request(queue, "req", REQUEST_NOW) == request_record("w")
    assert store.counters(queue) == Counters(ready=1, leased=1, promoted_through_us=10)


def test_reads_while_building_a_transaction_do_not_see_its_own_writes(store):
    queue = create_queue(store, "q")
    (old,) = add_tasks(store, queue, waiting_task("old", 5))
    txn = store.begin()
    txn.put_task(queue, waiting_task("new", 1), None)
    txn.put_task(queue, as_leased(old, 50), old)
    assert waiting_ids(store, queue) == ["old"]
    assert store.task(queue, "new") is None
    assert store.task(queue, "old").stage is Stage.WAITING
    assert store.counters(queue) == Counters(scheduled=1)
    store.apply(txn)
    assert waiting_ids(store, queue) == ["new"]


def test_an_abandoned_transaction_changes_nothing(store):
    queue = create_queue(store, "q")
    txn = store.begin()
    txn.put_task(queue, waiting_task("t", 5), None)
    txn.put_queue(new_queue("other"))
    del txn
    commit(store, lambda txn: txn.put_task(queue, waiting_task("u", 5), None))
    assert ids(store.tasks(queue, "", ALL)) == ["u"]
    assert store.queue("other") is None


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
    assert store.counters(queue) == Counters(leased=1)
    assert store.counters(other) == Counters(scheduled=1)


def test_an_empty_transaction_changes_nothing(store):
    queue = create_queue(store, "q")
    add_tasks(store, queue, waiting_task("t", 5))
    before = (store.tasks(queue, "", ALL), store.counters(queue))
    store.apply(store.begin())
    assert (store.tasks(queue, "", ALL), store.counters(queue)) == before


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


def test_first_scheduled_is_the_earliest_waiting_time_after_the_promotion_boundary(store):
    queue = create_queue(store, "q", create_time_us=0)
    assert store.first_scheduled(queue) is None
    add_tasks(store, queue, waiting_task("a", 10), waiting_task("b", 20), waiting_task("c", 30))
    add_tasks(store, queue, as_leased(waiting_task("l", 15), 16))
    assert store.first_scheduled(queue) == 10
    commit(store, lambda txn: txn.promote(queue, 10))
    assert store.first_scheduled(queue) == 20
    commit(store, lambda txn: txn.promote(queue, 25))
    assert store.first_scheduled(queue) == 30
    commit(store, lambda txn: txn.promote(queue, 30))
    assert store.first_scheduled(queue) is None
    add_tasks(store, queue, waiting_task("d", 5))  # ready at once: before the boundary
    assert store.first_scheduled(queue) is None
    add_tasks(store, queue, waiting_task("e", 31))
    assert store.first_scheduled(queue) == 31


def test_waiting_tasks_of_other_queues_do_not_leak_into_a_scan(store):
    queues = [create_queue(store, f"q{i}") for i in range(3)]
    for i, queue in enumerate(queues):
        add_tasks(store, queue, waiting_task(f"t{i}", 10 * i + 1), waiting_task(f"u{i}", 100 - i))
    for i, queue in enumerate(queues):
        assert waiting_ids(store, queue) == [f"t{i}", f"u{i}"]
        assert waiting_ids(store, queue, tag="") == [f"t{i}", f"u{i}"]


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


def test_a_deleted_queues_leases_go_with_it(store):
    doomed, kept = create_queue(store, "doomed"), create_queue(store, "kept")
    add_tasks(store, doomed, as_leased(waiting_task("a", 1), 10), waiting_task("w", 1))
    add_tasks(store, kept, as_leased(waiting_task("b", 1), 20))
    commit(store, lambda txn: txn.delete_queue(doomed))
    assert store.expired_leases(FOREVER, ALL) == [LeaseEntry(20, kept.storage_id, "b")]
    assert store.next_lease_expiry() == 20


def test_leases_lists_one_queues_leased_tasks_in_expiry_order(store):
    first, second = create_queue(store, "first"), create_queue(store, "second")
    add_tasks(store, first, as_leased(waiting_task("late", 1), 30), as_leased(waiting_task("early", 1), 10))
    add_tasks(store, first, waiting_task("waiting", 1))
    add_tasks(store, second, as_leased(waiting_task("other", 1), 5))
    assert [e.task_id for e in store.leases(first, ALL)] == ["early", "late"]
    assert [e.task_id for e in store.leases(first, 1)] == ["early"]
    assert store.leases(first, 0) == []


# Tombstones, request ids and the expiry index ---------------------------------------------


def test_a_tombstone_reserves_a_name_until_its_expiry(store):
    queue = create_queue(store, "q")
    assert store.tombstone(queue, "name") is None
    commit(store, lambda txn: txn.put_tombstone(queue, "name", 70))
    assert store.tombstone(queue, "name") == 70
    assert store.tombstone(queue, "other") is None
    assert store.expiries(FOREVER, ALL) == [Expiry(70, ExpiryKind.TOMBSTONE, queue.storage_id, "name")]
    assert store.next_expiry() == 70


HOUR_US = 3_600_000_000


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


def test_forgetting_request_ids_removes_those_of_past_hours_only(store):
    queue, other = create_queue(store, "q"), create_queue(store, "other")
    old = RequestRecord(task_id="old", tag="", schedule_time_us=HOUR_US, create_time_us=HOUR_US)
    recent = RequestRecord(task_id="new", tag="", schedule_time_us=3 * HOUR_US, create_time_us=3 * HOUR_US)
    commit(
        store,
        lambda txn: txn.put_request(queue, "old", old),
        lambda txn: txn.put_request(queue, "new", recent),
        lambda txn: txn.put_request(other, "old", old),
    )
    now_us = 3 * HOUR_US + 1
    commit(store, lambda txn: txn.forget_requests(queue, now_us))
    commit(store, lambda txn: txn.forget_requests(queue, now_us))  # a repeat changes nothing
    assert store.request(queue, "new", now_us) == recent
    # Seen with a clock from its own hour: forgetting removed it, not just the window.
    assert store.request(queue, "old", HOUR_US) is None
    assert store.request(other, "old", HOUR_US) == old


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


def test_renewing_a_tombstone_with_its_own_expiry_keeps_its_entry(store):
    queue = create_queue(store, "q")
    commit(store, lambda txn: txn.put_tombstone(queue, "name", 70))
    entry = Expiry(70, ExpiryKind.TOMBSTONE, queue.storage_id, "name")
    assert store.expiries(FOREVER, ALL) == [entry]  # the scan position now rests on the entry
    commit(store, lambda txn: txn.put_tombstone(queue, "name", 70))
    assert store.tombstone(queue, "name") == 70
    assert store.next_expiry() == 70
    assert store.expiries(FOREVER, ALL) == [entry]


def test_replacing_a_request_record_keeps_the_latest(store):
    queue = create_queue(store, "q")
    commit(store, lambda txn: txn.put_request(queue, "req", request_record("a")))
    commit(store, lambda txn: txn.put_request(queue, "req", request_record("b")))
    assert store.request(queue, "req", REQUEST_NOW) == request_record("b")


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
    )
    tombstone_entry = Expiry(70, ExpiryKind.TOMBSTONE, queue.storage_id, "k")
    commit(store, lambda txn: txn.delete_expiry(tombstone_entry))
    assert store.tombstone(queue, "k") is None
    assert store.request(queue, "k", REQUEST_NOW) == request_record("k")


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
    assert store.expiries(FOREVER, ALL) == [orphan, Expiry(40, ExpiryKind.FAILED_TASK, kept.storage_id, "g")]
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
    assert entries == [Expiry(10, ExpiryKind.TOMBSTONE, doomed.storage_id, "t")]
    assert store.request(doomed, "r", REQUEST_NOW) is None
    commit(store, *[lambda txn, entry=entry: txn.delete_expiry(entry) for entry in entries])
    assert store.expiries(FOREVER, ALL) == [] and store.next_expiry() is None

def test_an_unknown_queue_has_zero_counters(store):
    assert store.counters(new_queue("never-stored")) == Counters()


def test_a_new_queue_counts_from_its_creation_time(store):
    queue = create_queue(store, "q", create_time_us=100)
    assert store.counters(queue) == Counters(promoted_through_us=100)
    add_tasks(store, queue, waiting_task("due", 100), waiting_task("past", 1), waiting_task("later", 101))
    assert store.counters(queue) == Counters(scheduled=1, ready=2, promoted_through_us=100)


def test_counters_follow_every_stage_change(store):
    queue = create_queue(store, "q", create_time_us=10)
    (task,) = add_tasks(store, queue, waiting_task("t", 20))
    assert store.counters(queue) == Counters(scheduled=1, promoted_through_us=10)
    ready = replace(store, queue, task, as_waiting(task, 5))
    assert store.counters(queue) == Counters(ready=1, promoted_through_us=10)
    leased = replace(store, queue, ready, as_leased(ready, 50))
    assert store.counters(queue) == Counters(leased=1, promoted_through_us=10)
    renewed = replace(store, queue, leased, as_leased(leased, 60))
    assert store.counters(queue) == Counters(leased=1, promoted_through_us=10)
    failed = replace(store, queue, renewed, as_failed(renewed, 70))
    assert store.counters(queue) == Counters(failed=1, promoted_through_us=10)
    later = replace(store, queue, failed, as_waiting(failed, 30))
    assert store.counters(queue) == Counters(scheduled=1, promoted_through_us=10)
    remove(store, queue, later)
    assert store.counters(queue) == Counters(promoted_through_us=10)


def test_counters_are_kept_per_queue(store):
    first, second = create_queue(store, "first"), create_queue(store, "second")
    add_tasks(store, first, waiting_task("a", 1), waiting_task("b", 1))
    add_tasks(store, second, as_leased(waiting_task("a", 1), 5))
    assert store.counters(first) == Counters(scheduled=2)
    assert store.counters(second) == Counters(leased=1)


def test_returned_counters_are_copies(store):
    queue = create_queue(store, "q")
    add_tasks(store, queue, waiting_task("a", 1))
    counters = store.counters(queue)
    counters.scheduled = 99
    counters.promoted_through_us = 99
    assert store.counters(queue) == Counters(scheduled=1)


def test_promote_moves_exactly_the_due_tasks_and_returns_their_count(store):
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
    assert store.counters(queue) == Counters(scheduled=4, leased=1, failed=1)
    assert commit(store, lambda txn: txn.promote(queue, 9)) == [0]
    assert store.counters(queue) == Counters(scheduled=4, leased=1, failed=1, promoted_through_us=9)
    assert commit(store, lambda txn: txn.promote(queue, 20)) == [3]
    assert store.counters(queue) == Counters(scheduled=1, ready=3, leased=1, failed=1, promoted_through_us=20)
    assert commit(store, lambda txn: txn.promote(queue, FOREVER)) == [1]
    assert store.counters(queue) == Counters(ready=4, leased=1, failed=1, promoted_through_us=FOREVER)
    assert_counters_match_tasks(store, queue)


def test_promote_is_a_no_op_up_to_the_boundary(store):
    queue = create_queue(store, "q", create_time_us=50)
    add_tasks(store, queue, waiting_task("a", 10), waiting_task("b", 60))
    before = store.counters(queue)
    assert commit(store, lambda txn: txn.promote(queue, 50)) == [0]
    assert commit(store, lambda txn: txn.promote(queue, 40)) == [0]
    assert store.counters(queue) == before == Counters(scheduled=1, ready=1, promoted_through_us=50)


def test_promote_counts_only_the_stored_waiting_tasks_of_its_queue(store):
    queue, other = create_queue(store, "q"), create_queue(store, "other")
    add_tasks(store, queue, waiting_task("a", 10))
    add_tasks(store, other, waiting_task("b", 10), waiting_task("c", 10))
    assert commit(store, lambda txn: txn.promote(queue, 10)) == [1]
    assert store.counters(other) == Counters(scheduled=2)


def test_promote_twice_in_one_transaction_moves_each_task_once(store):
    queue = create_queue(store, "q")
    add_tasks(store, queue, waiting_task("a", 10), waiting_task("b", 20), waiting_task("c", 30))
    moved = commit(
        store,
        lambda txn: txn.promote(queue, 10),
        lambda txn: txn.promote(queue, 20),
        lambda txn: txn.promote(queue, 15),
    )
    assert moved == [1, 1, 0]
    assert store.counters(queue) == Counters(scheduled=1, ready=2, promoted_through_us=20)


def test_promote_then_writes_in_one_transaction_keep_the_counters_right(store):
    queue = create_queue(store, "q")
    a, b = add_tasks(store, queue, waiting_task("a", 10), waiting_task("b", 20))
    assert waiting_ids(store, queue) == ["a", "b"]
    moved = commit(
        store,
        lambda txn: txn.promote(queue, 15),
        lambda txn: txn.put_task(queue, as_leased(a, 100), a),
        lambda txn: txn.put_task(queue, waiting_task("c", 12), None),
        lambda txn: txn.put_task(queue, as_waiting(b, 14), b),
    )
    assert moved[0] == 1
    assert store.counters(queue) == Counters(ready=2, leased=1, promoted_through_us=15)
    assert_counters_match_tasks(store, queue)


def test_promote_after_a_scan_has_moved_past_consumed_tasks(store):
    queue = create_queue(store, "q")
    tasks = add_tasks(store, queue, *[waiting_task(f"t{i}", 10 + i) for i in range(5)])
    for task in tasks[:3]:
        assert waiting_ids(store, queue, 100)[0] == task.task_id
        replace(store, queue, task, as_leased(task, 1000))
    assert commit(store, lambda txn: txn.promote(queue, 100)) == [2]
    assert store.counters(queue) == Counters(ready=2, leased=3, promoted_through_us=100)


# Deleting a queue -------------------------------------------------------------------------


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
        )
        commit(store, lambda txn, q=queue: txn.promote(q, 10))
    kept_before = {
        "tasks": store.tasks(kept, "", ALL),
        "waiting": waiting_ids(store, kept),
        "tagged": waiting_ids(store, kept, tag="x"),
        "counters": store.counters(kept),
        "tombstone": store.tombstone(kept, "gone"),
        "request": store.request(kept, "req", REQUEST_NOW),
        "oldest": store.oldest_waiting(kept),
        "first": store.first_scheduled(kept),
    }

    commit(store, lambda txn: txn.delete_queue(doomed))

    assert store.queue("doomed") is None
    assert [q.queue_id for q in store.queues("", ALL)] == ["kept"]
    assert store.tasks(doomed, "", ALL) == []
    assert store.task(doomed, "w") is None
    assert waiting_ids(store, doomed) == [] and waiting_ids(store, doomed, tag="x") == []
    assert store.oldest_waiting(doomed) is None
    assert store.first_scheduled(doomed) is None
    assert store.tombstone(doomed, "gone") is None
    assert store.request(doomed, "req", REQUEST_NOW) is None
    assert store.counters(doomed) == Counters()
    assert {
        "tasks": store.tasks(kept, "", ALL),
        "waiting": waiting_ids(store, kept),
        "tagged": waiting_ids(store, kept, tag="x"),
        "counters": store.counters(kept),
        "tombstone": store.tombstone(kept, "gone"),
        "request": store.request(kept, "req", REQUEST_NOW),
        "oldest": store.oldest_waiting(kept),
        "first": store.first_scheduled(kept),
    } == kept_before
    assert store.queue("kept").storage_id == kept.storage_id
    assert [e for e in store.expired_leases(FOREVER, ALL) if e.storage_id == kept.storage_id] == [
        LeaseEntry(50 + kept.storage_id, kept.storage_id, "l")
    ]
    assert [e for e in store.expiries(FOREVER, ALL) if e.storage_id == kept.storage_id] == [
        Expiry(60 + kept.storage_id, ExpiryKind.FAILED_TASK, kept.storage_id, "f"),
        Expiry(70 + kept.storage_id, ExpiryKind.TOMBSTONE, kept.storage_id, "gone"),
    ]


# A random walk, checked against a model ---------------------------------------------------


class Model:
    """What the store should hold, kept the obvious way."""

    def __init__(self, queues: list[Queue]) -> None:
        self.queues = queues
        self.tasks: dict[str, dict[str, Task]] = {q.queue_id: {} for q in queues}
        self.promoted: dict[str, int] = {q.queue_id: q.create_time_us for q in queues}

    def counters(self, queue: Queue) -> Counters:
        through = self.promoted[queue.queue_id]
        counted = Counters(promoted_through_us=through)
        for task in self.tasks[queue.queue_id].values():
            if task.stage is Stage.WAITING:
                if task.schedule_time_us <= through:
                    counted.ready += 1
                else:
                    counted.scheduled += 1
            elif task.stage is Stage.LEASED:
                counted.leased += 1
            else:
                counted.failed += 1
        return counted

    def waiting(self, queue: Queue, until_us: int, tag: str | None = None) -> list[str]:
        found = [
            t
            for t in self.tasks[queue.queue_id].values()
            if t.stage is Stage.WAITING and t.schedule_time_us <= until_us and (tag is None or t.tag == tag)
        ]
        return ids(sorted(found, key=lambda t: (t.schedule_time_us, t.task_id)))


def check_against_model(store: Store, model: Model, now: int) -> None:
    for queue in model.queues:
        expected = model.tasks[queue.queue_id]
        assert store.tasks(queue, "", ALL) == [expected[task_id] for task_id in sorted(expected)]
        assert store.counters(queue) == recount(store, queue) == model.counters(queue)
        assert waiting_ids(store, queue, now) == model.waiting(queue, now)
        assert waiting_ids(store, queue) == model.waiting(queue, FOREVER)
        if queue.type is QueueType.PULL:
            for tag in TAGS:
                assert waiting_ids(store, queue, now, tag) == model.waiting(queue, now, tag)
        waiting = sorted(
            (t for t in expected.values() if t.stage is Stage.WAITING),
            key=lambda t: (t.schedule_time_us, t.task_id),
        )
        oldest = (waiting[0].schedule_time_us, waiting[0].tag) if waiting else None
        assert store.oldest_waiting(queue) == oldest
        later = [t.schedule_time_us for t in waiting if t.schedule_time_us > model.promoted[queue.queue_id]]
        assert store.first_scheduled(queue) == (min(later) if later else None)
    leases = sorted(
        (
            LeaseEntry(t.lease_expire_us, q.storage_id, t.task_id)
            for q in model.queues
            for t in model.tasks[q.queue_id].values()
            if t.stage is Stage.LEASED
        ),
        key=lambda e: (e.expire_us, e.storage_id, e.task_id),
    )
    assert store.expired_leases(now, ALL) == [e for e in leases if e.expire_us <= now]
    assert store.expired_leases(FOREVER, 3) == leases[:3]
    assert store.next_lease_expiry() == (leases[0].expire_us if leases else None)
    failed = sorted(
        (
            Expiry(t.retain_until_us, ExpiryKind.FAILED_TASK, q.storage_id, t.task_id)
            for q in model.queues
            for t in model.tasks[q.queue_id].values()
            if t.stage is Stage.FAILED
        ),
        key=lambda e: (e.expire_us, e.kind, e.storage_id, e.key),
    )
    assert store.expiries(now, ALL) == [e for e in failed if e.expire_us <= now]
    assert store.expiries(FOREVER, ALL) == failed
    assert store.next_expiry() == (failed[0].expire_us if failed else None)


TAGS = ["", "a", "b"]
#: The random walk's moves, creates and leases twice as likely as the rest.
ACTIONS = ["create", "create", "lease", "lease", "release", "fail", "run", "reschedule", "delete"]


def random_walk(store: Store, seed: int, steps: int) -> None:
    rng = random.Random(seed)
    queues = [create_queue(store, "push", QueueType.PUSH), create_queue(store, "pull", QueueType.PULL)]
    model = Model(queues)
    now = 100
    names = [f"t{i:02d}" for i in range(40)]

    def pick(queue: Queue, stage: Stage | None, taken: set[str]) -> Task | None:
        found = [
            t
            for task_id, t in sorted(model.tasks[queue.queue_id].items())
            if (stage is None or t.stage is stage) and task_id not in taken
        ]
        return rng.choice(found) if found else None

    for _ in range(steps):
        now += rng.randrange(0, 15)
        queue = rng.choice(queues)
        tasks = model.tasks[queue.queue_id]
        txn = store.begin()
        changes: dict[str, Task | None] = {}
        if rng.random() < 0.3:
            until = now + rng.randrange(-30, 60)
            through = model.promoted[queue.queue_id]
            expected = sum(
                1
                for t in tasks.values()
                if t.stage is Stage.WAITING and through < t.schedule_time_us <= until
            )
            assert txn.promote(queue, until) == (expected if until > through else 0)
            model.promoted[queue.queue_id] = max(through, until)
        for _ in range(rng.choice([1, 1, 1, 2, 3])):
            action = rng.choice(ACTIONS)
            if action == "create":
                free = [n for n in names if n not in tasks and n not in changes]
                if not free:
                    continue
                task = waiting_task(rng.choice(free), now + rng.randrange(-40, 80), tag=rng.choice(TAGS))
                txn.put_task(queue, task, None)
                changes[task.task_id] = task
                continue
            stage = {
                "lease": Stage.WAITING,
                "release": Stage.LEASED,
                "fail": Stage.LEASED,
                "run": Stage.FAILED,
                "reschedule": Stage.WAITING,
                "delete": None,
            }[action]
            previous = pick(queue, stage, set(changes))
            if previous is None:
                continue
            if action == "delete":
                txn.delete_task(queue, previous)
                changes[previous.task_id] = None
                continue
            if action == "lease":
                task = as_leased(previous, now + rng.randrange(0, 60))
            elif action == "release":
                task = as_waiting(previous, now + rng.randrange(-10, 60))
            elif action == "fail":
                task = as_failed(previous, now + rng.randrange(0, 100))
            elif action == "run":
                task = as_waiting(previous, now)
            else:
                new_tag = rng.choice([previous.tag, *TAGS])
                task = as_waiting(previous, now + rng.randrange(-40, 80), tag=new_tag)
            txn.put_task(queue, task, previous)
            changes[task.task_id] = task
        store.apply(txn)
        for task_id, task in changes.items():
            if task is None:
                del tasks[task_id]
            else:
                tasks[task_id] = task
        check_against_model(store, model, now)


@pytest.mark.parametrize("seed", [1, 2])
def test_counters_and_indexes_match_a_recount_through_a_random_walk(store, seed):
    random_walk(store, seed, steps=300)


# RocksDB only: persistence, locking, schema, long-lived scans -----------------------------


def snapshot(store: Store, names: list[str]) -> dict:
    """Everything a reader can observe, for queues, tasks and reservations named in `names`."""
    seen: dict = {"queues": store.queues("", ALL)}
    for queue in seen["queues"]:
        seen[queue.queue_id] = {
            "by_storage_id": store.queue_by_storage_id(queue.storage_id),
            "tasks": store.tasks(queue, "", ALL),
            "waiting": waiting_ids(store, queue),
            "tags": {tag: waiting_ids(store, queue, tag=tag) for tag in ("", "x", "y")},
            "oldest": store.oldest_waiting(queue),
            "first": store.first_scheduled(queue),
            "counters": store.counters(queue),
            "tombstones": {name: store.tombstone(queue, name) for name in names},
            "requests": {name: store.request(queue, name, REQUEST_NOW) for name in names},
        }
    seen["leases"] = store.expired_leases(FOREVER, ALL)
    seen["next_lease"] = store.next_lease_expiry()
    seen["expiries"] = store.expiries(FOREVER, ALL)
    seen["next_expiry"] = store.next_expiry()
    return seen


def test_everything_survives_closing_and_reopening(rocks_path):
    store = RocksStore(rocks_path)
    pull = create_queue(store, "pull", QueueType.PULL, create_time_us=5, dead_letter_queue="push")
    push = create_queue(store, "push", QueueType.PUSH, max_dispatches_per_second=3.5)
    doomed = create_queue(store, "doomed")
    for queue in (pull, push, doomed):
        commit(
            store,
            lambda txn, q=queue: txn.put_task(q, waiting_task("w1", 3, tag="x", attributes={"a": "b"}), None),
            lambda txn, q=queue: txn.put_task(q, waiting_task("w2", 30, tag="y"), None),
            lambda txn, q=queue: txn.put_task(q, waiting_task("w3", 300), None),
            lambda txn, q=queue: txn.put_task(q, as_leased(waiting_task("l", 3), 40 + q.storage_id), None),
            lambda txn, q=queue: txn.put_task(q, as_failed(waiting_task("f", 3), 60 + q.storage_id), None),
            lambda txn, q=queue: txn.put_tombstone(q, "gone", 70 + q.storage_id),
            lambda txn, q=queue: txn.put_request(q, "req", request_record("w1")),
        )
    commit(store, lambda txn: txn.promote(pull, 30))
    commit(store, lambda txn: txn.delete_queue(doomed))
    names = ["gone", "req", "w1", "missing"]
    before = snapshot(store, names)
    store.sync()
    store.close()

    reopened = RocksStore(rocks_path)
    try:
        assert snapshot(reopened, names) == before
        expected = Counters(ready=2, scheduled=1, leased=1, failed=1, promoted_through_us=30)
        assert before["pull"]["counters"] == expected
        later = create_queue(reopened, "later")
        assert later.storage_id > max(pull.storage_id, push.storage_id, doomed.storage_id)
        # and the reopened store keeps working as before
        (w1,) = [t for t in reopened.tasks(pull, "", ALL) if t.task_id == "w1"]
        replace(reopened, pull, w1, as_leased(w1, 45))
        assert waiting_ids(reopened, pull) == ["w2", "w3"]
        assert_counters_match_tasks(reopened, pull)
    finally:
        reopened.close()


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


def test_a_directory_with_another_key_schema_version_is_refused(rocks_path):
    RocksStore(rocks_path).close()
    raw = rocksdb.rocksdict.Rdict(rocks_path, rocksdb.rocksdict.Options(raw_mode=True))
    raw.put(keys.META_SCHEMA_VERSION, keys.u64(keys.KEY_SCHEMA_VERSION + 1))
    raw.close()

    with pytest.raises(StoreError) as refused:
        RocksStore(rocks_path)
    assert not isinstance(refused.value, StoreLocked)
    assert str(keys.KEY_SCHEMA_VERSION + 1) in str(refused.value)

    # Refusing the directory released it: it can be repaired and opened.
    raw = rocksdb.rocksdict.Rdict(rocks_path, rocksdb.rocksdict.Options(raw_mode=True))
    raw.put(keys.META_SCHEMA_VERSION, keys.u64(keys.KEY_SCHEMA_VERSION))
    raw.close()
    RocksStore(rocks_path).close()


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
        txn.promote(queue, 10)
        txn.put_task(queue, as_leased(task, 50), task)
        txn.put_tombstone(queue, "name", 70)
        with pytest.raises(StoreError):
            store.apply(txn)
        store._db = real
        assert snapshot(store, ["t", "name"]) == before
    finally:
        store.close()


def lease_in_order(store: Store, queue: Queue, count: int, batch: int, tag: str | None = None) -> list[str]:
    """Leases the `batch` oldest waiting tasks (of `tag`), `count` times; returns their ids."""
    leased = []
    for _ in range(count):
        taken = list(itertools.islice(store.waiting(queue, FOREVER, tag), batch))
        commit(
            store,
            lambda txn: txn.promote(queue, FOREVER),
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
                *[lambda txn, t=t: txn.put_tombstone(queue, t.task_id, 50_000 + acked) for t in tasks],
            )
            acked += len(entries)
            remaining = store.expired_leases(FOREVER, ALL)
            assert len(remaining) == len(leased) - acked
            assert [e.task_id for e in remaining] == by_expiry[acked:]
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


def test_maintain_may_run_in_another_thread_while_the_owner_reads_and_writes(rocks_path, monkeypatch):
    import threading

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
