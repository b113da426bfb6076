"""core/transitions.py on the in-memory engine, with a clock the test moves: each event of
the state machine, what it writes, and what it refuses. No server, no gRPC."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import pytest

from taskq.core import transitions
from taskq.core.errors import LeaseLost, TaskAlreadyExists, TaskLeased, TaskNotFound, TaskTombstoned
from taskq.core.model import LeaseEntry, Queue, QueueType, RetryPolicy, Stage, Task, TaskState
from taskq.core.states import IllegalTransition
from taskq.store.database import Change
from taskq.store.memory import MemoryStore

T = TypeVar("T")

S = 1_000_000
START = 1_800_000_000 * S


class World:
    """A MemoryStore, a time that only moves when told, and changes applied one at a time."""

    def __init__(self) -> None:
        self.store = MemoryStore()
        self.now = START
        self.last: Change | None = None

    def change(self, step: Callable[[Change], T]) -> T:
        txn = self.store.begin()
        change = Change(txn)
        result = step(change)
        self.store.apply(txn)
        self.last = change
        return result

    def queue(self, queue_id: str, type: QueueType = QueueType.PULL, **fields) -> Queue:
        fields.setdefault("retry", RetryPolicy(0, 0, S, 60 * S, 16))
        queue = Queue(
            queue_id=queue_id, type=type, dispatch_deadline_us=60 * S, task_ttl_us=3600 * S,
            tombstone_ttl_us=600 * S, create_time_us=self.now, update_time_us=self.now, **fields,
        )
        self.change(lambda change: change.txn.put_queue(queue))
        return queue

    def fresh(self, queue: Queue) -> Queue:
        stored = self.store.queue(queue.queue_id)
        assert stored is not None
        return stored

    def create(self, queue: Queue, task_id: str = "t", *, named: bool = True, at: int | None = None, **fields) -> Task:
        task = Task(task_id, at if at is not None else self.now, self.now, named=named, **fields)
        return self.change(lambda change: transitions.create(change, self.fresh(queue), task, self.now))

    def lease(self, queue: Queue, task_id: str = "t", seconds: int = 30) -> Task:
        stored = self.store.task(queue, task_id)
        assert stored is not None
        return self.change(lambda change: transitions.lease(change, self.fresh(queue), stored, self.now, seconds * S))

    def state(self, queue: Queue, task_id: str = "t") -> TaskState | None:
        task = self.store.task(queue, task_id)
        return task.state(self.now) if task is not None else None


@pytest.fixture
def world() -> World:
    return World()


# Create ---------------------------------------------------------------------------------------


def test_create_stores_a_ready_or_scheduled_task_and_counts_it(world):
    queue = world.queue("q")
    world.create(queue, "now")
    world.create(queue, "later", at=world.now + 10 * S)
    assert world.state(queue, "now") is TaskState.READY
    assert world.state(queue, "later") is TaskState.SCHEDULED
    counters = world.store.counters(queue)
    assert (counters.ready, counters.scheduled) == (1, 1)


def test_create_refuses_a_name_in_use_even_within_one_transaction(world):
    queue = world.queue("q")

    def twice(change: Change) -> None:
        transitions.create(change, queue, Task("dup", world.now, world.now, named=True), world.now)
        transitions.create(change, queue, Task("dup", world.now, world.now, named=True), world.now)

    with pytest.raises(TaskAlreadyExists):
        world.change(twice)


def test_create_refuses_a_tombstoned_name_until_the_tombstone_expires(world):
    queue = world.queue("q")
    world.create(queue)
    world.change(lambda change: transitions.delete(change, queue, "t", world.now))
    with pytest.raises(TaskTombstoned):
        world.create(queue)
    world.now += 600 * S + 1
    world.create(queue)
    assert world.state(queue) is TaskState.READY


# Lease, renew, ack ------------------------------------------------------------------------------


def test_lease_counts_an_attempt_mints_a_token_and_sets_the_expiry(world):
    queue = world.queue("q")
    world.create(queue)
    leased = world.lease(queue, seconds=30)
    assert leased.state(world.now) is TaskState.LEASED
    assert leased.attempt_count == 1 and leased.first_attempt_time_us == world.now
    assert leased.lease_token and leased.lease_expire_us == world.now + 30 * S
    assert world.store.counters(queue).leased == 1


def test_leasing_a_task_that_is_not_ready_is_an_illegal_transition(world):
    queue = world.queue("q")
    world.create(queue, at=world.now + 10 * S)
    scheduled = world.store.task(queue, "t")
    with pytest.raises(IllegalTransition):
        world.change(lambda change: transitions.lease(change, queue, scheduled, world.now, S))
    assert world.state(queue) is TaskState.SCHEDULED


def test_renew_keeps_the_token_and_moves_the_expiry(world):
    queue = world.queue("q")
    world.create(queue)
    leased = world.lease(queue)
    world.now += 10 * S
    renewed = world.change(lambda c: transitions.renew(c, queue, "t", leased.lease_token, world.now, 100 * S))
    assert renewed.lease_token == leased.lease_token
    assert world.store.task(queue, "t").lease_expire_us == world.now + 100 * S


def test_a_stale_or_expired_token_is_refused(world):
    queue = world.queue("q")
    world.create(queue)
    leased = world.lease(queue, seconds=30)
    with pytest.raises(LeaseLost):
        world.change(lambda c: transitions.ack(c, queue, "t", "not-the-token", world.now))
    world.now += 30 * S
    with pytest.raises(LeaseLost):
        world.change(lambda c: transitions.ack(c, queue, "t", leased.lease_token, world.now))


def test_ack_deletes_the_task_tombstones_its_name_and_reports_the_lease_ended(world):
    queue = world.queue("q")
    world.create(queue)
    leased = world.lease(queue)
    world.change(lambda c: transitions.ack(c, queue, "t", leased.lease_token, world.now))
    assert world.store.task(queue, "t") is None
    assert world.store.tombstone(queue, "t") == world.now + 600 * S
    assert world.last.ended == {"q": [("t", leased.lease_token)]}
    assert world.store.counters(queue).total == 0


def test_a_retried_ack_gets_the_first_answer_and_another_token_does_not(world):
    queue = world.queue("q")
    world.create(queue)
    leased = world.lease(queue)
    world.change(lambda c: transitions.ack(c, queue, "t", leased.lease_token, world.now))
    world.now += 30 * 60 * S
    world.change(lambda c: transitions.ack(c, queue, "t", leased.lease_token, world.now))  # no error
    with pytest.raises(LeaseLost):
        world.change(lambda c: transitions.ack(c, queue, "t", "another-token", world.now))


# Attempts that fail -------------------------------------------------------------------------------


def test_a_released_pull_task_is_ready_at_once_with_the_attempt_recorded(world):
    queue = world.queue("q")
    world.create(queue)
    leased = world.lease(queue)
    after = world.change(lambda c: transitions.release(c, queue, "t", leased.lease_token, world.now, "bye"))
    assert after.state(world.now) is TaskState.READY
    assert after.attempt_count == 1 and after.last_attempt.error_message == "bye"
    assert after.lease_token == ""


def test_a_nacked_push_task_waits_for_its_backoff(world):
    queue = world.queue("push", QueueType.PUSH)
    world.create(queue)
    leased = world.lease(queue)
    after = world.change(
        lambda c: transitions.nack(c, queue, "t", leased.lease_token, world.now, code=13, message="boom")
    )
    assert after.state(world.now) is TaskState.SCHEDULED
    assert after.schedule_time_us == world.now + S  # min_backoff for the first retry
    assert after.last_attempt.error_code == 13


def test_a_permanent_nack_fails_the_task_without_a_dead_letter_queue(world):
    queue = world.queue("push", QueueType.PUSH)
    world.create(queue)
    leased = world.lease(queue)
    after = world.change(
        lambda c: transitions.nack(c, queue, "t", leased.lease_token, world.now, code=9, message="no", permanent=True)
    )
    assert after.stage is Stage.FAILED and after.retain_until_us == world.now + 3600 * S
    assert world.store.counters(queue).failed == 1


def test_an_expired_lease_is_retried_and_a_stale_index_entry_is_dropped(world):
    queue = world.queue("q")
    world.create(queue)
    leased = world.lease(queue, seconds=5)
    world.now += 5 * S
    entry = LeaseEntry(leased.lease_expire_us, queue.storage_id, "t")
    assert world.change(lambda c: transitions.expire(c, entry, world.now)) is True
    assert world.state(queue) is TaskState.READY
    assert world.store.task(queue, "t").last_attempt.error_message == "lease expired"
    assert world.change(lambda c: transitions.expire(c, entry, world.now)) is False


def test_exhausted_tasks_move_to_the_dead_letter_queue_with_their_history(world):
    dead = world.queue("dead")
    queue = world.queue("q", retry=RetryPolicy(1, 0, S, 60 * S, 16), dead_letter_queue="dead")
    world.create(queue, payload=b"body", attributes={"k": "v"})
    leased = world.lease(queue)
    after = world.change(lambda c: transitions.release(c, queue, "t", leased.lease_token, world.now, "gave up"))
    assert after is None
    assert world.store.task(queue, "t") is None
    moved = world.store.task(dead, "t")
    assert moved.state(world.now) is TaskState.READY and moved.payload == b"body"
    assert moved.attributes["k"] == "v"
    assert moved.attributes[transitions.ORIGINAL_QUEUE_ATTRIBUTE] == "queues/q"
    assert moved.attributes[transitions.ATTEMPT_COUNT_ATTRIBUTE] == "1"
    assert moved.attributes[transitions.LAST_ERROR_ATTRIBUTE] == "CANCELLED: gave up"


def test_two_tasks_of_one_name_dead_lettered_in_one_transaction_both_arrive(world):
    # Two queues share a dead-letter queue; their tasks named "same" run out in one reaper pass.
    dead = world.queue("dead")
    retry = RetryPolicy(1, 0, S, 60 * S, 16)
    first = world.queue("a", retry=retry, dead_letter_queue="dead")
    second = world.queue("b", retry=retry, dead_letter_queue="dead")
    world.create(first, "same")
    world.create(second, "same")
    a, b = world.lease(first, "same", seconds=1), world.lease(second, "same", seconds=1)
    world.now += 2 * S

    def reap(change: Change) -> None:
        for leased, queue in ((a, first), (b, second)):
            transitions.expire(change, LeaseEntry(leased.lease_expire_us, queue.storage_id, "same"), world.now)

    world.change(reap)
    arrived = list(world.store.tasks(dead, ""))
    assert len(arrived) == 2
    assert {t.attributes[transitions.ORIGINAL_QUEUE_ATTRIBUTE] for t in arrived} == {"queues/a", "queues/b"}
    assert world.store.counters(dead).total == 2


# Run, delete, purge, discard ------------------------------------------------------------------------


def test_run_makes_a_failed_task_ready_and_refuses_a_leased_one(world):
    queue = world.queue("q", retry=RetryPolicy(1, 0, S, 60 * S, 16))
    world.create(queue)
    leased = world.lease(queue)
    with pytest.raises(TaskLeased):
        world.change(lambda c: transitions.run(c, queue, "t", world.now))
    world.change(lambda c: transitions.release(c, queue, "t", leased.lease_token, world.now, "x"))
    assert world.state(queue) is TaskState.FAILED
    world.change(lambda c: transitions.run(c, queue, "t", world.now))
    assert world.state(queue) is TaskState.READY
    counters = world.store.counters(queue)
    assert (counters.failed, counters.ready) == (0, 1)


def test_delete_removes_a_task_in_any_state_and_ends_its_lease(world):
    queue = world.queue("q")
    world.create(queue, "leased")
    world.create(queue, "scheduled", at=world.now + 60 * S)
    leased = world.lease(queue, "leased")
    world.change(lambda c: transitions.delete(c, queue, "leased", world.now))
    assert world.last.ended == {"q": [("leased", leased.lease_token)]}
    world.change(lambda c: transitions.delete(c, queue, "scheduled", world.now))
    assert world.store.counters(queue).total == 0
    with pytest.raises(TaskNotFound):
        world.change(lambda c: transitions.delete(c, queue, "scheduled", world.now))


def test_a_purged_task_is_gone_for_every_transition_before_it_is_deleted(world):
    queue = world.queue("q")
    world.create(queue, "old")
    leased_old = world.lease(queue, "old")
    purged = world.fresh(queue)
    world.now += 1
    purged.purge_time_us = world.now
    world.change(lambda c: c.txn.put_queue(purged))
    world.now += 1
    world.create(purged, "new")
    with pytest.raises(LeaseLost):
        world.change(lambda c: transitions.ack(c, purged, "old", leased_old.lease_token, world.now))
    with pytest.raises(TaskNotFound):
        world.change(lambda c: transitions.run(c, purged, "old", world.now))
    old = world.store.task(purged, "old")
    world.change(lambda c: transitions.purge(c, purged, old, world.now))
    assert [t.task_id for t in world.store.tasks(purged, "")] == ["new"]
    assert world.store.counters(purged).total == 1


def test_discard_deletes_only_the_failed_task_that_was_due(world):
    queue = world.queue("q", retry=RetryPolicy(1, 0, S, 60 * S, 16))
    world.create(queue)
    leased = world.lease(queue)
    failed = world.change(lambda c: transitions.release(c, queue, "t", leased.lease_token, world.now, "x"))
    assert world.change(lambda c: transitions.discard(c, queue, "t", failed.retain_until_us + 1, world.now)) is False
    assert world.change(lambda c: transitions.discard(c, queue, "t", failed.retain_until_us, world.now)) is True
    assert world.store.task(queue, "t") is None
