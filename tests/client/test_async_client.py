"""The AsyncClient against a real server: the same methods as Client, awaited, with the same
typed errors and the same retries on UNAVAILABLE."""

from __future__ import annotations

import asyncio
import threading

import pytest

from taskq.client import (
    AsyncClient,
    InvalidArgument,
    LeaseLost,
    QueueNotFound,
    TaskAlreadyExists,
    TaskNotFound,
    Unavailable,
)
from taskq.v1 import http_pb2, queue_pb2, task_pb2


def run(server, scenario):
    """Runs `scenario(client)` with an AsyncClient connected to the server."""

    async def main():
        async with AsyncClient(server.address, timeout=10) as client:
            return await scenario(client)

    return asyncio.run(main())


def test_queue_methods_mirror_the_sync_client(server):
    async def scenario(client: AsyncClient):
        created = await client.create_queue("jobs", type="pull", max_attempts=3)
        assert created.type == queue_pb2.QUEUE_TYPE_PULL and created.retry_config.max_attempts == 3
        assert (await client.get_queue("jobs")) == created
        for name in ("a", "b", "c"):
            await client.create_queue(name)
        assert [queue.name async for queue in client.list_queues(page_size=2)] == [
            "queues/a", "queues/b", "queues/c", "queues/jobs"]
        assert (await client.update_queue("jobs", max_attempts=5)).retry_config.max_attempts == 5
        assert (await client.pause_queue("jobs")).state == queue_pb2.QUEUE_STATE_PAUSED
        assert (await client.resume_queue("jobs")).state == queue_pb2.QUEUE_STATE_RUNNING
        await client.create_task("jobs", b"x")
        assert (await client.get_queue_stats("jobs")).tasks_count == 1
        assert (await client.purge_queue("jobs")).purged_count == 1
        await client.delete_queue("jobs")
        with pytest.raises(QueueNotFound):
            await client.get_queue("jobs")

    run(server, scenario)


def test_task_methods_mirror_the_sync_client(server):
    async def scenario(client: AsyncClient):
        await client.create_queue("work", type="pull")
        created = await client.create_task("work", b"body", name="t1", tag="reports")
        assert created.name == "queues/work/tasks/t1" and created.payload == b""  # basic view
        with pytest.raises(TaskAlreadyExists):
            await client.create_task("work", name="t1")
        results = await client.create_tasks("work", [{"name": "t2"}, {"name": "bad name!"}])
        assert isinstance(results[0], task_pb2.Task) and isinstance(results[1], InvalidArgument)
        assert (await client.get_task("queues/work/tasks/t1")).payload == b"body"
        assert [task.name async for task in client.list_tasks("work", tag="reports")] == ["queues/work/tasks/t1"]
        [leased] = await client.lease_tasks("work", lease_duration=60, tag="reports")
        extended = await client.modify_lease(leased, lease_duration=600)
        assert extended.lease_expire_time.seconds > leased.lease_expire_time.seconds
        await client.delete_task(leased)
        await client.delete_task(leased)  # a retried acknowledgement gets the first one's answer
        with pytest.raises(LeaseLost):
            await client.modify_lease(leased, lease_duration=60)
        assert await client.delete_tasks("work", ["queues/work/tasks/t2"]) == [None]
        later = await client.create_task("work", delay=3600)
        assert (await client.run_task(later)).state == task_pb2.TASK_STATE_READY
        with pytest.raises(TaskNotFound):
            await client.get_task("queues/work/tasks/missing")

    run(server, scenario)


def test_http_push_fields_mirror_the_sync_client(server):
    async def scenario(client: AsyncClient):
        target = {"uri": "https://worker.example.com/base", "headers": {"X-Env": "test"}}
        created = await client.create_queue("hooks", http_target=target)
        assert created.http_target.uri == "https://worker.example.com/base"
        assert created.http_target.headers == {"X-Env": "test"}
        await client.pause_queue("hooks")
        task = await client.create_task("hooks", http_request={"url": "/path?x=1", "http_method": "get"},  # GET: no body
                                        batch=False)
        fetched = await client.get_task(task)
        assert fetched.http_request == http_pb2.HttpRequest(url="/path?x=1", http_method=http_pb2.HTTP_METHOD_GET)
        updated = await client.update_queue("hooks", http_target=None)
        assert not updated.HasField("http_target")

    run(server, scenario)

def test_lease_tasks_waits_for_a_task_longer_than_the_client_timeout(server):
    server.create_queue("work")

    async def scenario():
        async with AsyncClient(server.address, timeout=0.5) as client:
            threading.Timer(1.0, lambda: server.create_task("work", b"late")).start()
            return await client.lease_tasks("work", lease_duration=60, wait=5)

    [task] = asyncio.run(scenario())
    assert task.payload == b"late"


def test_calls_are_retried_while_the_server_answers_unavailable(server):
    server.create_queue("work")
    engine = server.engine
    server.server.engine_ref.set(None)  # the server now answers UNAVAILABLE (NOT_READY)

    async def scenario():
        async with AsyncClient(server.address, call_retry=None) as no_retries:
            with pytest.raises(Unavailable):
                await no_retries.get_queue("work")
        threading.Timer(0.1, server.server.engine_ref.set, [engine]).start()
        async with AsyncClient(server.address) as client:
            return await client.get_queue("work")

    try:
        assert asyncio.run(scenario()).name == "queues/work"
    finally:
        server.server.engine_ref.set(engine)
