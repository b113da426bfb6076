"""Housekeeping proportional to what is due: the janitor and the reaper read only due work,
write nothing when nothing is due, share one pass among things due moments apart, and never
make a request's write carry an unbounded backlog. Also: listing reads only what a page needs.
The engine runs on the in-memory engine (or RocksDB where memory is measured) with a FakeClock."""

from __future__ import annotations

import asyncio
import tracemalloc
from collections.abc import Callable, Coroutine
from typing import Any

from taskq.core.clock import FakeClock
from taskq.core.engine import Engine
from taskq.core.filter import TaskFilter
from taskq.core.model import US_PER_SECOND, Queue, QueueType, RetryPolicy
from taskq.core.tasks import DeleteRequest, NewTask
from taskq.core.transitions import PROMOTE_IN_WRITE
from taskq.store.memory import MemoryStore
from taskq.store.rocksdb import RocksStore

S = US_PER_SECOND


def queue(queue_id: str, **fields: Any) -> Queue:
    fields.setdefault("tombstone_ttl_us", 60 * S)
    return Queue(queue_id, QueueType.PULL, RetryPolicy(0, 0, S, 60 * S, 16), 60 * S, 3600 * S, **fields)


def run(
    body: Callable[[Engine, FakeClock], Coroutine[Any, Any, None]],
    background: bool = False,
    open_store: Callable[[], Any] = MemoryStore,
) -> None:
    async def main() -> None:
        clock = FakeClock()
        engine = Engine(open_store, clock=clock, background=background)
        await engine.start()
        try:
            await body(engine, clock)
        finally:
            await engine.stop()

    asyncio.run(main())


async def settle() -> None:
    """Lets the loops run what the last clock move made due."""
    for _ in range(20):
        await asyncio.sleep(0)


def test_tombstones_expiring_milliseconds_apart_share_one_janitor_pass():
    async def body(engine: Engine, clock: FakeClock) -> None:
        await engine.queues.create(queue("q"))
        names = [f"t{index}" for index in range(300)]
        await engine.tasks.create("q", [NewTask(name) for name in names])
        for name in names:  # each name's tombstone expires 5 ms after the previous one's
            clock.advance(0.005)
            await engine.tasks.delete("q", [DeleteRequest(name)])
        await settle()
        passes, syncs = engine.janitor.passes, engine.db.syncs
        clock.advance(60 - 1.5)
        for _ in range(600):  # 3 s in 5 ms steps, through all 300 expiries (1.5 s of them)
            clock.advance(0.005)
            await settle()
        assert engine.janitor.passes - passes <= 4
        assert engine.db.syncs - syncs <= 4
        expired = await engine.db.read(lambda reader: reader.next_expiry())
        assert expired is None

    run(body, background=True)


def test_a_janitor_pass_with_nothing_due_writes_and_syncs_nothing():
    async def body(engine: Engine, clock: FakeClock) -> None:
        for index in range(200):
            await engine.queues.create(queue(f"q{index}"))
        await engine.tasks.create("q0", [NewTask("a")])
        syncs = engine.db.syncs
        clock.advance(7200)  # hours pass: request-id and ack hours would have been swept per queue
        assert await engine.janitor.run_once() == 0
        assert await engine.reaper.run_once() == 0
        assert engine.db.syncs == syncs

    run(body)


def test_a_write_after_many_tasks_fell_due_counts_only_a_bounded_number_ready():
    async def body(engine: Engine, clock: FakeClock) -> None:
        await engine.queues.create(queue("q"))
        due_us = clock.now_us() + 10 * S
        for _ in range(5):
            await engine.tasks.create("q", [NewTask(None, schedule_time_us=due_us) for _ in range(1000)])
        clock.advance(11)
        await engine.tasks.create("q", [NewTask(None)])
        stats = await engine.queues.stats("q")
        assert stats.ready_count == PROMOTE_IN_WRITE  # the rest is the janitor's
        assert stats.scheduled_count == 5001 - PROMOTE_IN_WRITE
        await engine.janitor.run_once()
        stats = await engine.queues.stats("q")
        assert (stats.ready_count, stats.scheduled_count) == (5001, 0)

    run(body)


def test_a_page_of_large_tasks_reads_only_that_page(tmp_path):
    payload = b"x" * (1024 * 1024)

    async def body(engine: Engine, clock: FakeClock) -> None:
        await engine.queues.create(queue("q"))
        for _ in range(6):
            await engine.tasks.create("q", [NewTask(None, payload=payload) for _ in range(10)])
        tracemalloc.start()
        try:
            page, _ = await engine.tasks.page("q", TaskFilter(), "", 10, payloads=False)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert len(page) == 10 and page[0].payload == b""
        assert peak < 8 * len(payload)  # not the 60 MiB of every task in the queue

    run(body, open_store=lambda: RocksStore(str(tmp_path / "data")))
