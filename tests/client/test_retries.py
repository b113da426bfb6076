"""Retries of unary calls against the real server: across a restart of the server, and after
an answer lost once the server had done the work (through tests/support/flaky_proxy.py)."""

from __future__ import annotations

import asyncio
import threading

import pytest

from taskq.client import AsyncClient, Client, Unavailable
from taskq.v1 import queue_pb2

#: Seconds the server stays down: longer than gRPC's own retry policy used to cover.
DOWNTIME = 2.0


def start_again(server, port: int) -> None:
    """Starts a stopped server again on `port`, with the same data and settings."""
    server.start(port)


def stop_and_restart_later(server) -> threading.Thread:
    """Stops the server now and starts it again on the same port and data directory after
    DOWNTIME seconds, in the background; join the returned thread to wait for it."""
    port = server.port
    server.stop()
    restart = threading.Timer(DOWNTIME, start_again, [server, port])
    restart.start()
    return restart


def test_a_create_made_while_the_server_is_down_succeeds_once_it_is_back(server):
    server.create_queue("work")
    with Client(server.address) as client:
        restart = stop_and_restart_later(server)
        task = client.create_task("work", b"made during the restart")  # batched: BatchCreateTasks
    restart.join()
    assert server.get_task(task.name).payload == b"made during the restart"
    assert server.stats("work").tasks_count == 1


def test_without_retries_the_same_create_fails_with_unavailable(server):
    # The counterpart of the test above: what callers saw before the client retried.
    server.create_queue("work")
    port = server.port
    with Client(server.address, call_retry=None) as client:
        server.stop()
        with pytest.raises(Unavailable):
            client.create_task("work", b"lost", batch=False)
    start_again(server, port)
    assert server.stats("work").tasks_count == 0


def test_an_async_call_made_while_the_server_is_down_succeeds_once_it_is_back(server):
    server.create_queue("work")

    async def scenario() -> queue_pb2.QueueStats:
        async with AsyncClient(server.address) as client:
            await client.get_queue("work")  # connected before the restart
            restart = stop_and_restart_later(server)
            await client.create_task("work", b"x", batch=False)
            stats = await client.get_queue_stats("work")
        restart.join()
        return stats

    assert asyncio.run(scenario()).tasks_count == 1


@pytest.mark.parametrize("batch", [True, False], ids=["BatchCreateTasks", "CreateTask"])
def test_a_create_whose_answer_is_lost_is_retried_and_adds_one_task(server, flaky_proxy, batch):
    server.create_queue("work")
    proxy = flaky_proxy(server.address, drop_responses=1)
    with Client(proxy.address) as client:
        task = client.create_task("work", b"once", batch=batch)
    # The server did answer the first attempt (it had created the task); the proxy cut the
    # connection after the answer's headers. The retry carried the same request_id, so the
    # server answered with that task instead of adding a second one.
    assert proxy.lines.get(timeout=10).startswith("dropped response on stream")
    with Client(server.address) as direct:
        assert [found.name for found in direct.list_tasks("work")] == [task.name]
    assert server.stats("work").tasks_count == 1


def test_without_retries_a_lost_answer_raises_unavailable_although_the_task_was_created(server, flaky_proxy):
    # What the retry above recovers from: gRPC's own retries never resend a call whose
    # answer had begun to arrive.
    server.create_queue("work")
    proxy = flaky_proxy(server.address, drop_responses=1)
    with Client(proxy.address, call_retry=None) as client, pytest.raises(Unavailable):
        client.create_task("work", b"once", batch=False)
    assert server.stats("work").tasks_count == 1
