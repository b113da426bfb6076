"""The event seam (core/events.py): what committed changes report to the engine's subscribers.
An Engine on the in-memory store with a FakeClock; no server, no gRPC."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

import pytest

from taskq.core import transitions
from taskq.core.clock import FakeClock
from taskq.core.engine import Engine
from taskq.core.errors import TaskAlreadyExists, TaskNotFound
from taskq.core.events import Event, QueueEvent, TaskEvent
from taskq.core.model import US_PER_SECOND, QueueState, QueueType, RetryPolicy, Task, TaskState
from taskq.core.model import Queue as QueueConfig
from taskq.core.push import Nack
from taskq.core.tasks import DeleteRequest, NewTask
from taskq.store.database import Change
from taskq.store.memory import MemoryStore

S = US_PER_SECOND


def queue(queue_id: str, queue_type: QueueType = QueueType.PULL, **fields: Any) -> QueueConfig:
    return QueueConfig(queue_id, queue_type, RetryPolicy(2, 0, S, 60 * S, 16), 60 * S, 3600 * S, 0, **fields)


class Heard:
    """A subscriber that keeps every batch it hears."""

    def __init__(self) -> None:
        self.batches: list[list[Event]] = []

    def __call__(self, events: Sequence[Event]) -> None:
        self.batches.append(list(events))

    @property
    def events(self) -> list[Event]:
        return [event for batch in self.batches for event in batch]

    def kinds(self) -> list[tuple[str, str]]:
        return [(event.kind.value, event.queue_id) for event in self.events]

    def clear(self) -> None:
        self.batches.clear()


def run(body: Callable[[Engine, FakeClock, Heard], Coroutine[Any, Any, None]]) -> None:
    async def main() -> None:
        clock = FakeClock()
        engine = Engine(MemoryStore, clock=clock, background=False)
        heard = Heard()
        engine.events.subscribe(heard)
        await engine.start()
        try:
            await body(engine, clock, heard)
        finally:
            await engine.stop()

    asyncio.run(main())


def test_a_task_life_reports_create_lease_and_ack_with_its_waits():
    async def body(engine: Engine, clock: FakeClock, heard: Heard) -> None:
        await engine.queues.create(queue("q"))
        created_us = clock.now_us()
        [task] = await engine.tasks.create("q", [NewTask("t", schedule_time_us=created_us + 2 * S)])
        clock.advance(5)
        [leased] = await engine.tasks.lease("q", 30 * S, 10, None, False, 0)
        clock.advance(1)
        await engine.tasks.delete("q", [DeleteRequest("t", leased.lease_token)])
        assert heard.kinds() == [("queue_create", "q"), ("create", "q"), ("lease", "q"), ("ack", "q")]
        create, lease, ack = heard.events[1:]
        assert (create.task_id, create.state, create.time_us) == ("t", TaskState.SCHEDULED, created_us)
        # ETA -> delivery: due at +2 s, leased at +5 s; create -> ack: 6 s.
        assert (lease.state, lease.attempt, lease.time_us - lease.since_us) == (TaskState.LEASED, 1, 3 * S)
        assert (ack.state, ack.time_us - ack.since_us) == (None, 6 * S)

    run(body)


def test_each_committed_change_is_one_batch_and_a_refused_one_reports_nothing():
    async def body(engine: Engine, clock: FakeClock, heard: Heard) -> None:
        await engine.queues.create(queue("q"))
        heard.clear()
        await engine.tasks.create("q", [NewTask("a"), NewTask("b"), NewTask("c")])
        assert [[event.task_id for event in batch] for batch in heard.batches] == [["a", "b", "c"]]
        heard.clear()
        with pytest.raises(TaskNotFound):
            await engine.tasks.run("q", "missing")
        results = await engine.tasks.create("q", [NewTask("a")])  # the name is taken: nothing created
        assert isinstance(results[0], TaskAlreadyExists) and heard.batches == []

    run(body)


def test_exhausted_retries_report_the_task_leaving_for_the_dead_letter_queue_and_arriving_there():
    async def body(engine: Engine, clock: FakeClock, heard: Heard) -> None:
        await engine.queues.create(queue("dead"))
        await engine.queues.create(queue("q", dead_letter_queue="dead"))
        await engine.tasks.create("q", [NewTask("t")])
        for _ in range(2):  # max_attempts 2: the first expiry retries, the second dead-letters
            await engine.tasks.lease("q", 30 * S, 10, None, False, 0)
            clock.advance(31)
            await engine.reaper.run_once()
        expiries = [event for event in heard.events if event.kind is TaskEvent.EXPIRE]
        assert [(event.state, event.attempt) for event in expiries] == [(TaskState.READY, 1), (None, 2)]
        [arrival] = [event for event in heard.events if event.kind is TaskEvent.DEAD_LETTER]
        assert arrival.queue_id == "dead" and arrival.state is TaskState.READY
        assert arrival.related == "queues/q/tasks/t"
        assert expiries[1].related == f"queues/dead/tasks/{arrival.task_id}"

    run(body)


def test_a_nack_without_retries_left_and_no_dead_letter_queue_reports_the_task_failed():
    async def body(engine: Engine, clock: FakeClock, heard: Heard) -> None:
        await engine.queues.create(queue("p", QueueType.PUSH))
        await engine.tasks.create("p", [NewTask("t")])
        [task] = (await engine.push.lease_batch("p", 1)).tasks
        await engine.push.answer("p", [], [Nack("t", task.lease_token, 13, "boom", permanent=True)], [])
        [nack] = [event for event in heard.events if event.kind is TaskEvent.NACK]
        assert (nack.task_id, nack.state) == ("t", TaskState.FAILED)

    run(body)


def test_queue_life_cycle_is_reported_once_per_change_of_state():
    async def body(engine: Engine, clock: FakeClock, heard: Heard) -> None:
        await engine.queues.create(queue("q"))
        await engine.tasks.create("q", [NewTask("a"), NewTask("b")])
        await engine.queues.set_state("q", QueueState.PAUSED)
        await engine.queues.set_state("q", QueueState.PAUSED)  # already paused: no change, no event
        await engine.queues.set_state("q", QueueState.RUNNING)
        await engine.queues.update("q", queue("q", max_concurrent_dispatches=5), ["rate_limits.max_concurrent_dispatches"])
        await engine.queues.purge("q")  # with the loops off, the call drives the purger itself
        await engine.queues.delete("q")
        queue_events = [(event.kind, event.related) for event in heard.events if isinstance(event.kind, QueueEvent)]
        assert queue_events == [
            (QueueEvent.CREATE, ""), (QueueEvent.PAUSE, ""), (QueueEvent.RESUME, ""),
            (QueueEvent.UPDATE, "rate_limits.max_concurrent_dispatches"), (QueueEvent.PURGE, ""),
            (QueueEvent.PURGE_FINISHED, ""), (QueueEvent.DELETE, ""),
        ]
        purged = sorted(event.task_id for event in heard.events if event.kind is TaskEvent.PURGE)
        assert purged == ["a", "b"]

    run(body)


def test_a_subscriber_that_raises_does_not_stop_the_others_nor_the_write():
    async def body(engine: Engine, clock: FakeClock, heard: Heard) -> None:
        def broken(events: Sequence[Event]) -> None:
            raise RuntimeError("a bug in a subscriber")

        engine.events.unsubscribe(heard)
        engine.events.subscribe(broken)
        engine.events.subscribe(heard)
        await engine.queues.create(queue("q"))
        assert heard.kinds() == [("queue_create", "q")]
        assert (await engine.queues.get("q")).queue_id == "q"

    run(body)


def test_without_subscribers_changes_record_nothing():
    async def main() -> None:
        engine = Engine(MemoryStore, clock=FakeClock(), background=False)
        await engine.start()
        try:
            assert engine.report_events is None
            await engine.queues.create(queue("q"))
            now_us = engine.clock.now_us()

            def create(change: Change) -> list[Any] | None:
                stored = change.txn.queue("q")
                assert stored is not None
                transitions.create(change, stored, Task("t", now_us, now_us), now_us)
                return change.events

            assert await engine.db.write(create) is None
        finally:
            await engine.stop()

    asyncio.run(main())
