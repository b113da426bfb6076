"""The single writer (store/commit.py) on the in-memory engine: which answers wait for an
fsync, what a failed fsync does, and that nothing is synced for nothing."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

from taskq.core.errors import StorageUnavailable
from taskq.core.model import Queue, QueueType, RetryPolicy
from taskq.store.commit import CommitLoop
from taskq.store.database import Change
from taskq.store.memory import MemoryStore


class RecordingStore(MemoryStore):
    """The in-memory engine, noting when it is synced."""

    def __init__(self, events: list[str]) -> None:
        super().__init__()
        self.events = events

    def sync(self) -> None:
        super().sync()
        self.events.append("sync")


class Listener:
    #: Nobody subscribes to events here (tests/core/test_events.py does).
    report_events = None

    def __init__(self) -> None:
        self.failures: list[str] = []

    def woken(self, queue_ids: set[str]) -> None:
        pass

    def leases_ended(self, ended: dict[str, list[tuple[str, str]]]) -> None:
        pass

    def storage_failed(self, reason: str) -> None:
        self.failures.append(reason)


def queue(queue_id: str) -> Queue:
    return Queue(queue_id, QueueType.PULL, RetryPolicy(0, 0, 1, 1, 1), 1, 1, 1)


def writes(queue_id: str, events: list[str] | None = None, note: str = "") -> Callable[[Change], None]:
    """A mutation that writes a queue (and, after its commit, notes `note`)."""

    def mutation(change: Change) -> None:
        change.txn.put_queue(queue(queue_id))
        if events is not None:
            change.on_commit(lambda: events.append(note))

    return mutation


def run(body: Callable[[CommitLoop, RecordingStore, Listener], Coroutine[Any, Any, None]]) -> None:
    async def main() -> None:
        events: list[str] = []
        store = RecordingStore(events)
        listener = Listener()
        loop = CommitLoop(lambda: store, listener=listener)
        await loop.open()
        try:
            await body(loop, store, listener)
        finally:
            await loop.close()

    asyncio.run(main())


def test_a_delivery_waits_for_the_fsync_of_a_create_before_it_in_its_group():
    async def body(loop: CommitLoop, store: RecordingStore, listener: Listener) -> None:
        create = asyncio.ensure_future(loop.write(writes("created", store.events, "create answered")))
        deliver = asyncio.ensure_future(
            loop.write(writes("delivered", store.events, "delivery answered"), durable=False)
        )
        await asyncio.gather(create, deliver)
        assert store.events == ["sync", "create answered", "delivery answered"]

    run(body)


def test_a_delivery_alone_is_answered_before_any_fsync_and_synced_soon_after(monkeypatch):
    monkeypatch.setattr(CommitLoop, "LAZY_SYNC_SECONDS", 0.01)

    async def body(loop: CommitLoop, store: RecordingStore, listener: Listener) -> None:
        await loop.write(writes("delivered", store.events, "delivery answered"), durable=False)
        assert store.events == ["delivery answered"]
        for _ in range(200):
            if store.events[-1] == "sync":
                break
            await asyncio.sleep(0.005)
        assert store.events == ["delivery answered", "sync"]

    run(body)


def test_a_read_only_mutation_is_answered_without_an_fsync():
    async def body(loop: CommitLoop, store: RecordingStore, listener: Listener) -> None:
        await loop.write(writes("q"))
        synced = loop.syncs
        assert await loop.write(lambda change: change.txn.queue("q") is not None) is True
        assert loop.syncs == synced

    run(body)


def test_a_failed_fsync_fails_every_write_waiting_for_it_and_every_later_one():
    async def body(loop: CommitLoop, store: RecordingStore, listener: Listener) -> None:
        await loop.write(writes("before"))
        store.faults.failing_syncs = 1
        group = [asyncio.ensure_future(loop.write(writes(f"q{index}"))) for index in range(5)]
        results = await asyncio.gather(*group, return_exceptions=True)
        assert all(isinstance(result, StorageUnavailable) for result in results)
        assert len(listener.failures) == 1
        with pytest.raises(StorageUnavailable):
            await loop.write(writes("later"))
        with pytest.raises(StorageUnavailable):
            await loop.read(lambda reader: reader.queue("before"))
        # Reopened, it serves again, with what was durable.
        await loop.reopen()
        await loop.write(writes("after"))
        assert await loop.read(lambda reader: reader.queue("before")) is not None

    run(body)


def test_a_failed_write_fails_the_writes_behind_it_in_its_group():
    async def body(loop: CommitLoop, store: RecordingStore, listener: Listener) -> None:
        store.faults.failing_writes = "No space left on device"
        group = [asyncio.ensure_future(loop.write(writes(f"q{index}"))) for index in range(3)]
        results = await asyncio.gather(*group, return_exceptions=True)
        assert all(isinstance(result, StorageUnavailable) for result in results)
        assert listener.failures and "No space left" in listener.failures[0]

    run(body)
