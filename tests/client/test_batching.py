"""Create-call coalescing: concurrent create_task calls share BatchCreateTasks calls, on the
sync and the asyncio client, and each caller still gets its own task or its own error."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from client_support import counted_aio_channel, counted_channel
from taskq.client import (
    AsyncClient,
    BatchSettings,
    Client,
    InvalidArgument,
    QueueNotFound,
    TaskAlreadyExists,
)

CALLS = 200


@pytest.fixture
def counted(server):
    """A Client whose RPCs are counted, and a pull queue "work"."""
    channel, counter = counted_channel(server.address)
    server.create_queue("work")
    clients: list[Client] = []

    def make(**options) -> tuple[Client, object]:
        client = Client(channel=channel, **options)
        clients.append(client)
        return client, counter

    yield make
    for client in clients:
        client.close()
    channel.close()


def create_concurrently(client: Client, calls: list[dict]) -> list[object]:
    """Runs create_task(**call) for every call at once, one thread each; returns each call's
    task or the exception it raised, in order."""
    barrier = threading.Barrier(len(calls))

    def one(call: dict) -> object:
        barrier.wait()
        try:
            return client.create_task("work", **call)
        except Exception as error:  # the outcome is what the test checks
            return error

    with ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(one, calls))


def test_concurrent_creates_share_a_few_batch_calls_and_each_caller_gets_its_own_task(counted):
    client, counter = counted()
    results = create_concurrently(client, [{"payload": f"job {i}", "view": "full"} for i in range(CALLS)])
    assert [task.payload for task in results] == [f"job {i}".encode() for i in range(CALLS)]
    assert len({task.name for task in results}) == CALLS
    assert counter.calls["CreateTask"] == 0
    assert sum(counter.batch_sizes) == CALLS
    assert counter.calls["BatchCreateTasks"] <= CALLS // 5, counter.batch_sizes


def test_a_bad_item_fails_only_its_own_caller_with_the_unbatched_error(counted, server):
    client, counter = counted()
    server.create_task("work", name="queues/work/tasks/taken")
    calls = [{"payload": f"job {i}"} for i in range(50)]
    calls[10] = {"name": "taken"}
    calls[20] = {"name": "not valid!"}
    results = create_concurrently(client, calls)
    assert isinstance(results[10], TaskAlreadyExists)
    assert results[10].metadata == {"task": "queues/work/tasks/taken"}
    assert isinstance(results[20], InvalidArgument)
    # Named as in a single CreateTask, not by its place in the batch.
    assert [violation.field for violation in results[20].field_violations] == ["task.name"]
    assert "requests[" not in str(results[20])
    others = [result for index, result in enumerate(results) if index not in (10, 20)]
    assert all(not isinstance(result, Exception) for result in others)
    assert server.stats("work").tasks_count == 49
    assert counter.calls["BatchCreateTasks"] < 50


def test_a_failed_batch_call_raises_in_every_caller_separately(counted):
    client, _ = counted()
    barrier = threading.Barrier(10)

    def create_in_missing_queue(_: int) -> Exception:
        barrier.wait()
        try:
            client.create_task("missing", b"x")
        except QueueNotFound as error:
            return error
        raise AssertionError("create_task in a missing queue succeeded")

    with ThreadPoolExecutor(10) as pool:
        errors = list(pool.map(create_in_missing_queue, range(10)))
    assert len({id(error) for error in errors}) == 10


def test_batches_respect_the_item_and_byte_bounds(counted):
    client, counter = counted(batching=BatchSettings(max_delay=0.05, max_items=10))
    create_concurrently(client, [{} for _ in range(35)])
    assert max(counter.batch_sizes) <= 10 and sum(counter.batch_sizes) == 35
    assert counter.calls["BatchCreateTasks"] >= 4

    client, counter = counted(batching=BatchSettings(max_delay=0.05, max_bytes=1000))
    counter.batch_sizes.clear()
    results = create_concurrently(client, [{"payload": b"x" * 400} for _ in range(10)])
    assert all(not isinstance(result, Exception) for result in results)
    assert max(counter.batch_sizes) == 2


def test_a_zero_delay_sends_each_create_on_its_own(counted):
    client, counter = counted(batching=BatchSettings(max_delay=0))
    create_concurrently(client, [{} for _ in range(20)])
    assert counter.calls["CreateTask"] == 20
    assert counter.calls["BatchCreateTasks"] == 0


def test_batch_false_sends_the_create_at_once_on_its_own(counted):
    client, counter = counted(batching=BatchSettings(max_delay=5))
    started = time.monotonic()
    client.create_task("work", b"now", batch=False)
    assert time.monotonic() - started < 2
    assert counter.calls == {"CreateTask": 1}


def test_closing_the_client_sends_the_creates_still_waiting(counted):
    client, counter = counted(batching=BatchSettings(max_delay=5))
    outcome: list[object] = []
    creating = threading.Thread(target=lambda: outcome.append(client.create_task("work", b"x", view="full")))
    creating.start()
    time.sleep(0.2)
    started = time.monotonic()
    client.close()
    creating.join(5)
    assert time.monotonic() - started < 2
    assert outcome and outcome[0].payload == b"x"
    assert counter.calls["BatchCreateTasks"] == 1


def test_async_concurrent_creates_share_one_batch_call(server):
    server.create_queue("work")

    async def main() -> tuple[list, object]:
        channel, counter = counted_aio_channel(server.address)
        async with AsyncClient(channel=channel) as client:
            tasks = await asyncio.gather(
                *(client.create_task("work", f"job {i}", view="full") for i in range(CALLS)))
        await channel.close()
        return tasks, counter

    tasks, counter = asyncio.run(main())
    assert [task.payload for task in tasks] == [f"job {i}".encode() for i in range(CALLS)]
    assert counter.calls["CreateTask"] == 0
    assert counter.calls["BatchCreateTasks"] <= 2


def test_async_bad_item_raises_only_in_its_own_coroutine(server):
    server.create_queue("work")
    server.create_task("work", name="queues/work/tasks/taken")

    async def main() -> list:
        channel, counter = counted_aio_channel(server.address)
        async with AsyncClient(channel=channel) as client:
            results = await asyncio.gather(
                *(client.create_task("work", name="taken" if i == 3 else None) for i in range(10)),
                return_exceptions=True,
            )
        await channel.close()
        assert counter.calls["BatchCreateTasks"] == 1
        return results

    results = asyncio.run(main())
    assert isinstance(results[3], TaskAlreadyExists)
    assert all(not isinstance(result, Exception) for index, result in enumerate(results) if index != 3)


def test_async_zero_delay_sends_each_create_on_its_own(server):
    server.create_queue("work")

    async def main() -> object:
        channel, counter = counted_aio_channel(server.address)
        async with AsyncClient(channel=channel, batching=BatchSettings(max_delay=0)) as client:
            await asyncio.gather(*(client.create_task("work") for _ in range(10)))
        await channel.close()
        return counter

    counter = asyncio.run(main())
    assert counter.calls == {"CreateTask": 10}


def test_batch_settings_refuse_more_than_the_server_takes():
    with pytest.raises(ValueError):
        BatchSettings(max_items=1001)
    with pytest.raises(ValueError):
        BatchSettings(max_delay=-1)
