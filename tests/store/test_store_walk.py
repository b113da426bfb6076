"""The storage contract (store/base.py), part 4: a random walk of transactions (creates,
leases, releases, failures, reruns, reschedules, deletes, acknowledgements, request ids,
bounded promotions, janitor passes that forget past hours), checked after every step
against a model kept the obvious way and against a recount of the stored tasks.

The model knows which waiting tasks each engine counts as ready. Promote counts the first
`limit` due tasks not yet counted, on every engine; a task written without being promoted is
counted by the boundary on the memory and RocksDB engines (and the model keeps the boundary
for them), and as ready on PostgreSQL only if its transaction promoted the queue up to its
schedule time before writing it (a rewrite at the same schedule time keeps how it counted).
"""

from __future__ import annotations

import random

import pytest
from store_helpers import (
    ALL,
    FOREVER,
    HOUR_US,
    as_failed,
    as_leased,
    as_waiting,
    boundary,
    boundary_engine,
    create_queue,
    ids,
    listed,
    ready_ids,
    recount,
    tally,
    waiting_ids,
    waiting_task,
)

from taskq.core.model import Counters, Expiry, ExpiryKind, LeaseEntry, Queue, QueueType, RequestRecord, Stage, Task
from taskq.store.base import Store

TAGS = ["", "a", "b"]
#: The random walk's moves, creates and leases twice as likely as the rest.
ACTIONS = ["create", "create", "lease", "lease", "release", "fail", "run", "reschedule", "delete", "ack"]
#: Limits of the walk's promotions: small ones stop between tasks, often of one schedule time.
PROMOTE_LIMITS = [1, 1, 2, 3, ALL]


class Model:
    """What the store should hold, kept the obvious way."""

    def __init__(self, queues: list[Queue], by_boundary: bool) -> None:
        self.queues = queues
        self.tasks: dict[str, dict[str, Task]] = {q.queue_id: {} for q in queues}
        #: Whether the engine counts by a boundary (else by a flag per task).
        self.by_boundary = by_boundary
        #: Ids of each queue's waiting tasks counted as ready.
        self.ready: dict[str, set[str]] = {q.queue_id: set() for q in queues}
        #: The promotion boundary of each queue, as (time, task id): boundary engines only.
        self.boundary: dict[str, tuple[int, str]] = {q.queue_id: (q.create_time_us, "") for q in queues}
        #: The `until_us` of the queue's last promotion that its limit stopped early, else 0:
        #: its promotion entry may be that late although tasks before it are still scheduled.
        self.stopped_at: dict[str, int] = {q.queue_id: 0 for q in queues}
        #: (storage id, family, key) -> [(value, hour)] in the order put; "I" request ids, "A"
        #: acknowledgements. Forgotten hours are removed.
        self.remembered: dict[tuple[int, str, str], list[tuple[object, int]]] = {}
        #: (storage id, family, key) of entries whose newest one was forgotten.
        self.forgotten: set[tuple[int, str, str]] = set()

    def as_counters(self, queue: Queue) -> Counters:
        through_us, through_id = self.boundary[queue.queue_id]
        return Counters(promoted_through_us=through_us, promoted_through_id=through_id)

    def counters(self, queue: Queue) -> Counters:
        counted = self.as_counters(queue)
        for task in self.tasks[queue.queue_id].values():
            if task.stage is Stage.WAITING:
                if task.task_id in self.ready[queue.queue_id]:
                    counted.ready += 1
                else:
                    counted.scheduled += 1
            elif task.stage is Stage.LEASED:
                counted.leased += 1
            else:
                counted.failed += 1
        return counted

    def counts_as_ready(self, queue: Queue, task: Task, previous: Task | None, promoted_until: int | None) -> bool:
        """Whether the engine counts `task`, written in place of `previous` by a transaction
        that promoted the queue up to `promoted_until` (None: it did not), as ready."""
        if task.stage is not Stage.WAITING:
            return False
        if self.by_boundary:
            return self.as_counters(queue).counts_as_ready(task.schedule_time_us, task.task_id)
        if (
            previous is not None
            and previous.stage is Stage.WAITING
            and previous.schedule_time_us == task.schedule_time_us
        ):
            return previous.task_id in self.ready[queue.queue_id]
        return promoted_until is not None and task.schedule_time_us <= promoted_until

    def waiting_sorted(self, queue: Queue) -> list[Task]:
        found = [t for t in self.tasks[queue.queue_id].values() if t.stage is Stage.WAITING]
        return sorted(found, key=lambda t: (t.schedule_time_us, t.task_id))

    def waiting(self, queue: Queue, until_us: int, tag: str | None = None) -> list[str]:
        return ids(
            t for t in self.waiting_sorted(queue) if t.schedule_time_us <= until_us and (tag is None or t.tag == tag)
        )

    def remember(self, storage_id: int, family: str, key: str, value: object, now_us: int) -> None:
        self.remembered.setdefault((storage_id, family, key), []).append((value, now_us // HOUR_US))
        self.forgotten.discard((storage_id, family, key))

    def forget_hour(self, hour: int, storage_id: int) -> None:
        for name, entries in list(self.remembered.items()):
            if name[0] == storage_id:
                kept = [entry for entry in entries if entry[1] != hour]
                if kept != entries and entries[-1][1] == hour:
                    self.forgotten.add(name)
                if kept:
                    self.remembered[name] = kept
                else:
                    del self.remembered[name]

    def required_hours(self) -> set[tuple[int, int]]:
        """(hour, storage id) pairs that must be listed: those of each key's newest entry."""
        return {
            (entries[-1][1], name[0]) for name, entries in self.remembered.items() if name not in self.forgotten
        }


def check_against_model(store: Store, model: Model, now: int) -> None:
    for queue in model.queues:
        expected = model.tasks[queue.queue_id]
        assert listed(store, queue) == [expected[task_id] for task_id in sorted(expected)]
        stored = store.counters(queue)
        assert stored == recount(store, queue)
        assert tally(stored) == tally(model.counters(queue))
        assert ready_ids(store, queue) == sorted(model.ready[queue.queue_id])
        if model.by_boundary:
            assert boundary(stored) == model.boundary[queue.queue_id]
        assert waiting_ids(store, queue, now) == model.waiting(queue, now)
        assert waiting_ids(store, queue) == model.waiting(queue, FOREVER)
        assert waiting_ids(store, queue, now, limit=2) == model.waiting(queue, now)[:2]
        if queue.type is QueueType.PULL:
            for tag in TAGS:
                assert waiting_ids(store, queue, now, tag) == model.waiting(queue, now, tag)
        waiting = model.waiting_sorted(queue)
        assert store.oldest_waiting(queue) == ((waiting[0].schedule_time_us, waiting[0].tag) if waiting else None)
        # The promotion index: the queue's entry is listed, and no later than its first task
        # counted as scheduled (or than where a promotion stopped early: due already).
        scheduled = [t.schedule_time_us for t in waiting if t.task_id not in model.ready[queue.queue_id]]
        if stored.next_promotion_us:
            assert (stored.next_promotion_us, queue.storage_id) in {
                (p.due_us, p.storage_id) for p in store.promotions(stored.next_promotion_us, ALL)
            }
        if scheduled:
            assert 0 < stored.next_promotion_us <= max(min(scheduled), model.stopped_at[queue.queue_id])
        if not model.by_boundary:  # derived from the tasks: exactly the first still scheduled
            assert stored.next_promotion_us == (min(scheduled) if scheduled else 0)
        # Request ids and acknowledgements made in this hour or the last are found.
        for (storage_id, family, key), entries in model.remembered.items():
            value, hour = entries[-1]
            if storage_id != queue.storage_id or hour < now // HOUR_US - 1:
                continue
            if (storage_id, family, key) in model.forgotten:
                continue
            found = store.request(queue, key, now) if family == "I" else store.acked(queue, key, now)
            assert found == value
    promotions = store.promotions(FOREVER, ALL)
    assert promotions == sorted(promotions, key=lambda p: (p.due_us, p.storage_id))
    assert store.next_promotion() == (promotions[0].due_us if promotions else None)
    assert store.promotions(now, ALL) == [p for p in promotions if p.due_us <= now]

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
    walked, after = [], None
    while page := store.leases(after, 3):
        walked += page
        after = page[-1]
    assert walked == leases
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

    hours = store.request_hours(2**31, ALL)
    assert hours == sorted(hours)
    assert model.required_hours() <= set(hours)
    assert store.first_request_hour() == (hours[0][0] if hours else None)


def random_walk(store: Store, seed: int, steps: int) -> None:
    rng = random.Random(seed)
    queues = [create_queue(store, "push", QueueType.PUSH), create_queue(store, "pull", QueueType.PULL)]
    model = Model(queues, boundary_engine(store))
    now = 100
    names = [f"t{i:02d}" for i in range(40)]
    request_ids = (f"r{i}" for i in range(10**6))

    def pick(queue: Queue, stage: Stage | None, taken: set[str]) -> Task | None:
        found = [
            t
            for task_id, t in sorted(model.tasks[queue.queue_id].items())
            if (stage is None or t.stage is stage) and task_id not in taken
        ]
        return rng.choice(found) if found else None

    for _ in range(steps):
        now += rng.randrange(0, 15) if rng.random() > 0.04 else rng.randrange(HOUR_US // 2, 2 * HOUR_US)
        if rng.random() < 0.1:
            forget_past_hours(store, model, now)
            check_against_model(store, model, now)
            continue
        if rng.random() < 0.1:
            promotion_pass(store, model, now, rng.choice(PROMOTE_LIMITS))
            check_against_model(store, model, now)
            continue
        queue = rng.choice(queues)
        tasks = model.tasks[queue.queue_id]
        txn = store.begin()
        changes: dict[str, Task | None] = {}
        #: How each task written counts: as ready or not.
        counted: dict[str, bool] = {}
        remembered: list[tuple[int, str, str, object]] = []
        promoted_until = None
        if rng.random() < 0.3:
            promoted_until = now + rng.randrange(-30, 60)
            promote_in(txn, model, queue, promoted_until, rng.choice(PROMOTE_LIMITS))
        for _ in range(rng.choice([1, 1, 1, 2, 3])):
            action = rng.choice(ACTIONS)
            if action == "create":
                free = [n for n in names if n not in tasks and n not in changes]
                if not free:
                    continue
                task = waiting_task(rng.choice(free), now + rng.randrange(-40, 80), tag=rng.choice(TAGS))
                txn.put_task(queue, task, None)
                changes[task.task_id] = task
                counted[task.task_id] = model.counts_as_ready(queue, task, None, promoted_until)
                if rng.random() < 0.5:
                    request_id = next(request_ids)
                    record = RequestRecord(task.task_id, task.tag, task.schedule_time_us, now)
                    txn.put_request(queue, request_id, record)
                    remembered.append((queue.storage_id, "I", request_id, record))
                continue
            stage = {
                "lease": Stage.WAITING,
                "release": Stage.LEASED,
                "fail": Stage.LEASED,
                "ack": Stage.LEASED,
                "run": Stage.FAILED,
                "reschedule": Stage.WAITING,
                "delete": None,
            }[action]
            previous = pick(queue, stage, set(changes))
            if previous is None:
                continue
            if action in ("delete", "ack"):
                txn.delete_task(queue, previous)
                changes[previous.task_id] = None
                if action == "ack":
                    txn.put_ack(queue, previous.task_id, previous.lease_token, now)
                    remembered.append((queue.storage_id, "A", previous.task_id, previous.lease_token))
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
            counted[task.task_id] = model.counts_as_ready(queue, task, previous, promoted_until)
        store.apply(txn)
        ready = model.ready[queue.queue_id]
        for task_id, task in changes.items():
            ready.discard(task_id)
            if task is None:
                del tasks[task_id]
            else:
                tasks[task_id] = task
                if counted[task_id]:
                    ready.add(task_id)
        for storage_id, family, key, value in remembered:
            model.remember(storage_id, family, key, value, now)
        check_against_model(store, model, now)


def promote_in(txn, model: Model, queue: Queue, until_us: int, limit: int) -> bool:
    """Txn.promote, checked against the model: it counts the first `limit` due tasks."""
    ready = model.ready[queue.queue_id]
    due = [t for t in model.waiting_sorted(queue) if t.task_id not in ready and t.schedule_time_us <= until_us]
    done = txn.promote(queue, until_us, limit)
    assert done == (len(due) <= limit)
    ready.update(ids(due[:limit]))
    # The engine's own classification, read in the transaction: it sees the promotion.
    assert ready_ids(txn, queue) == sorted(ready)
    after = txn.counters(queue)  # a point read: it sees the transaction's own write
    assert tally(after) == tally(model.counters(queue))
    if model.by_boundary:
        before = model.as_counters(queue)
        if done and (until_us, "~") > (before.promoted_through_us, before.promoted_through_id or "~"):
            assert boundary(after) == (until_us, "")
            model.stopped_at[queue.queue_id] = 0
        model.boundary[queue.queue_id] = boundary(after)
    elif done:
        model.stopped_at[queue.queue_id] = 0
    if not done:
        model.stopped_at[queue.queue_id] = until_us
    return done


def promotion_pass(store: Store, model: Model, now: int, limit: int) -> None:
    """The janitor's promotion step (core/janitor.py), in one transaction."""
    txn = store.begin()
    promoted = set()
    for entry in txn.promotions(now, ALL):
        queue = txn.queue_by_storage_id(entry.storage_id)
        if queue is None or txn.counters(queue).next_promotion_us != entry.due_us:
            txn.forget_promotion(entry)
        elif queue.storage_id not in promoted:
            promoted.add(queue.storage_id)
            promote_in(txn, model, queue, now, limit)
    store.apply(txn)


def forget_past_hours(store: Store, model: Model, now: int) -> None:
    """The janitor's forgetting step: every hour before the last one, in one transaction."""
    before_hour = now // HOUR_US - 1
    if before_hour <= 0:
        return  # nothing can be that old (and hours are unsigned)
    hours = store.request_hours(before_hour, ALL)
    txn = store.begin()
    for hour, storage_id in hours:
        txn.forget_hour(hour, storage_id)
    store.apply(txn)
    for hour, storage_id in hours:
        model.forget_hour(hour, storage_id)
    assert store.request_hours(before_hour, ALL) == []


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_counters_and_indexes_match_a_recount_through_a_random_walk(store, seed):
    random_walk(store, seed, steps=300)
