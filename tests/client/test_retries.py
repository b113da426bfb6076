"""Retries of unary calls against the real server: across a restart of the server, and after
an answer lost once the server had done the work (through tests/support/flaky_proxy.py); and
of a CANCELLED the caller did not cause, against a stand-in server."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time

import grpc
import pytest

from taskq.client import AsyncClient, CallRetry, Cancelled, Client, Unavailable
from taskq.v1 import queue_pb2, task_pb2, task_service_pb2

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


# A CANCELLED the caller did not cause ------------------------------------------------------
#
# A server stopping gracefully cancels the calls it has received but not yet handed to its
# application; the real server cannot be made to do that on cue, so a stand-in TaskService
# answers CANCELLED to the first attempts instead.


class CancellingTaskService:
    """A gRPC server whose CreateTask answers CANCELLED to its first `failures` attempts, then
    succeeds; it records the request_id of every attempt."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.request_ids: list[str] = []
        self._lock = threading.Lock()
        self._server = grpc.server(concurrent.futures.ThreadPoolExecutor(max_workers=4))
        handler = grpc.unary_unary_rpc_method_handler(
            self._create_task,
            request_deserializer=task_service_pb2.CreateTaskRequest.FromString,
            response_serializer=task_service_pb2.CreateTaskResponse.SerializeToString)
        self._server.add_generic_rpc_handlers(
            [grpc.method_handlers_generic_handler("taskq.v1.TaskService", {"CreateTask": handler})])
        self.address = f"127.0.0.1:{self._server.add_insecure_port('127.0.0.1:0')}"
        self._server.start()

    def _create_task(self, request, context):
        with self._lock:
            self.request_ids.append(request.request_id)
            attempt = len(self.request_ids)
        if attempt <= self.failures:
            context.abort(grpc.StatusCode.CANCELLED, "server shutting down")
        return task_service_pb2.CreateTaskResponse(task=task_pb2.Task(name=f"{request.parent}/tasks/t"))

    def stop(self) -> None:
        self._server.stop(0)


@pytest.fixture
def cancelling_service():
    started: list[CancellingTaskService] = []

    def start(failures: int) -> CancellingTaskService:
        service = CancellingTaskService(failures)
        started.append(service)
        return service

    yield start
    for service in started:
        service.stop()


def test_a_cancelled_the_caller_did_not_cause_is_retried_with_the_same_request(cancelling_service):
    service = cancelling_service(failures=2)
    with Client(service.address, call_retry=CallRetry(initial_backoff=0.01)) as client:
        task = client.create_task("work", b"x", batch=False)
    assert task.name == "queues/work/tasks/t"
    assert len(service.request_ids) == 3 and service.request_ids[0]
    assert set(service.request_ids) == {service.request_ids[0]}  # one request id on every attempt


def test_an_async_call_cancelled_by_the_server_is_retried_with_the_same_request(cancelling_service):
    service = cancelling_service(failures=2)

    async def scenario():
        async with AsyncClient(service.address, call_retry=CallRetry(initial_backoff=0.01)) as client:
            return await client.create_task("work", b"x", batch=False)

    assert asyncio.run(scenario()).name == "queues/work/tasks/t"
    assert len(service.request_ids) == 3 and len(set(service.request_ids)) == 1


def test_without_retries_a_cancelled_from_the_server_is_raised(cancelling_service):
    # The counterpart of the tests above: what callers saw before CANCELLED was retried.
    service = cancelling_service(failures=1)
    with Client(service.address, call_retry=None) as client, pytest.raises(Cancelled):
        client.create_task("work", b"x", batch=False)
    assert len(service.request_ids) == 1


def test_a_call_whose_channel_its_owner_closes_is_not_retried(cancelling_service):
    # Closing a channel cancels its calls: that CANCELLED is the caller's own, so it is raised
    # at once, not retried for the whole budget.
    service = cancelling_service(failures=1_000_000)
    channel = grpc.insecure_channel(service.address)
    client = Client(channel=channel, batching=None, call_retry=CallRetry(initial_backoff=0.2, max_backoff=0.2))
    closer = threading.Timer(0.5, channel.close)
    closer.start()
    started = time.monotonic()
    with pytest.raises(Cancelled):
        client.create_task("work", b"x")
    closer.join()
    assert time.monotonic() - started < 5


def test_an_async_call_whose_channel_its_owner_closes_is_not_retried(cancelling_service):
    # As above: the retry after the CANCELLED finds the channel closed and raises the CANCELLED.
    service = cancelling_service(failures=1_000_000)

    async def scenario() -> float:
        channel = grpc.aio.insecure_channel(service.address)
        client = AsyncClient(channel=channel, batching=None,
                             call_retry=CallRetry(initial_backoff=0.2, max_backoff=0.2))
        closer = asyncio.get_running_loop().call_later(0.5, lambda: asyncio.ensure_future(channel.close()))
        started = time.monotonic()
        try:
            with pytest.raises(Cancelled):
                await client.create_task("work", b"x")
        finally:
            closer.cancel()
            await channel.close()
        return time.monotonic() - started

    assert asyncio.run(scenario()) < 5
