"""The push Worker against a real server: every task handled once, the concurrency limit,
nacks with the handler's error, PermanentError and Retry, lease extension, graceful stop, and
re-subscribing after the server restarts."""

from __future__ import annotations

import asyncio
import collections
import logging
import threading
import time

import grpc
import pytest
from google.protobuf import duration_pb2

from client_support import eventually
from taskq.client import (
    AsyncClient,
    Client,
    PermanentError,
    QueueNotFound,
    Retry,
    Worker,
    WrongQueueType,
)
from taskq.v1 import (
    queue_pb2,
    task_pb2,
    task_service_pb2,
)

PUSH = queue_pb2.QUEUE_TYPE_PUSH


def fill(server, queue_id: str, count: int) -> list[str]:
    """Creates `count` tasks with payloads "0", "1", ...; returns their names."""
    requests = [task_service_pb2.CreateTaskRequest(task=task_pb2.Task(payload=str(i).encode())) for i in range(count)]
    response = server.tasks.BatchCreateTasks(
        task_service_pb2.BatchCreateTasksRequest(parent=f"queues/{queue_id}", requests=requests))
    return [result.task.name for result in response.results]


def wait_until_empty(server, queue_id: str, timeout: float = 10) -> None:
    eventually(lambda: server.stats(queue_id).tasks_count == 0, timeout, f"queue {queue_id} still has tasks")


def sync_and_async(record):
    """The same handler body as a plain function and as a coroutine function."""

    def plain(task):
        record(task)

    async def coroutine(task):
        await asyncio.sleep(0)
        record(task)

    return {"sync": plain, "async": coroutine}


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_every_task_is_handled_exactly_once_and_acknowledged(server, run_in_thread, kind):
    server.create_queue("push", PUSH)
    names = fill(server, "push", 60)
    handled = collections.Counter()
    lock = threading.Lock()

    def record(task):
        with lock:
            handled[task.name] += 1

    run_in_thread(Worker(server.address, "push", sync_and_async(record)[kind], concurrency=4))
    wait_until_empty(server, "push")
    time.sleep(0.2)  # room for a duplicate delivery to show up
    assert handled == {name: 1 for name in names}
    assert server.stats("push").executed_last_minute == 60


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_no_more_than_concurrency_handlers_run_at_once(server, run_in_thread, kind):
    server.create_queue("push", PUSH)
    fill(server, "push", 24)
    lock = threading.Lock()
    running = 0
    most = 0

    def enter():
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)

    def leave():
        nonlocal running
        with lock:
            running -= 1

    def plain(task):
        enter()
        time.sleep(0.03)
        leave()

    async def coroutine(task):
        enter()
        await asyncio.sleep(0.03)
        leave()

    handler = plain if kind == "sync" else coroutine
    run_in_thread(Worker(server.address, "push", handler, concurrency=3, max_outstanding=10))
    wait_until_empty(server, "push")
    assert most == 3


def test_a_raising_handler_nacks_with_its_error_and_the_task_is_retried(server, run_in_thread):
    server.create_queue("push", PUSH, retry_config=queue_pb2.RetryConfig(max_attempts=2))
    [name] = fill(server, "push", 1)
    attempts = []

    def handler(task):
        attempts.append(task.attempt_count)
        raise ValueError(f"boom on attempt {task.attempt_count}")

    run_in_thread(Worker(server.address, "push", handler))
    failed = eventually(lambda: (t := server.get_task(name)).state == task_pb2.TASK_STATE_FAILED and t)
    assert attempts == [1, 2]
    assert failed.attempt_count == 2
    assert failed.last_attempt.error.message == "ValueError: boom on attempt 2"
    assert failed.last_attempt.error.code == 2  # UNKNOWN


def test_permanent_error_dead_letters_the_task_at_once(server, run_in_thread):
    server.create_queue("dead", queue_pb2.QUEUE_TYPE_PULL)
    server.create_queue("push", PUSH, dead_letter_queue="queues/dead")
    fill(server, "push", 1)
    attempts = []

    def handler(task):
        attempts.append(task.attempt_count)
        raise PermanentError("the payload is not JSON")

    run_in_thread(Worker(server.address, "push", handler))
    eventually(lambda: server.stats("dead").tasks_count == 1)
    assert server.stats("push").tasks_count == 0
    assert attempts == [1]


def test_retry_schedules_the_next_attempt_after_its_delay(server, run_in_thread):
    server.create_queue("push", PUSH)
    [name] = fill(server, "push", 1)

    def handler(task):
        raise Retry(3600, "the mail server is down")

    run_in_thread(Worker(server.address, "push", handler))
    scheduled = eventually(lambda: (t := server.get_task(name)).state == task_pb2.TASK_STATE_SCHEDULED and t)
    assert 3500 < scheduled.schedule_time.seconds - time.time() < 3700
    assert scheduled.last_attempt.error.message == "Retry: the mail server is down"


def test_a_running_handler_has_its_lease_extended(fake_server, clock, run_in_thread):
    # The queue's dispatch deadline (15 s, the minimum) passes twice over on the fake clock
    # while the handler runs; only the worker's extensions keep the task leased.
    fake_server.create_queue("push", PUSH, dispatch_deadline=duration_pb2.Duration(seconds=15))
    [name] = fill(fake_server, "push", 1)
    started, finish = threading.Event(), threading.Event()

    def handler(task):
        started.set()
        finish.wait(10)

    run_in_thread(Worker(fake_server.address, "push", handler, extension_interval=0.05))
    assert started.wait(10)
    first_expiry = fake_server.get_task(name).lease_expire_time.seconds
    for _ in range(2):
        clock.advance(10)
        now = clock.now_us() // 1_000_000
        eventually(lambda now=now: fake_server.get_task(name).lease_expire_time.seconds >= now + 14)
    assert fake_server.get_task(name).lease_expire_time.seconds > first_expiry + 15
    assert fake_server.reap() == 0
    finish.set()
    wait_until_empty(fake_server, "push")


def test_stop_lets_running_handlers_finish_and_releases_the_rest_at_once(server, run_in_thread):
    server.create_queue("push", PUSH)
    fill(server, "push", 10)
    started, finish = [], threading.Event()

    def handler(task):
        started.append(task.name)
        finish.wait(10)

    worker = Worker(server.address, "push", handler, concurrency=2, max_outstanding=6)
    thread = run_in_thread(worker)
    eventually(lambda: len(started) == 2 and server.stats("push").leased_count == 6)
    worker.stop()
    time.sleep(0.2)
    assert thread.is_alive()  # still waiting for the two running handlers
    finish.set()
    thread.join(10)
    assert not thread.is_alive() and thread.error is None
    stats = server.stats("push")
    assert (stats.tasks_count, stats.ready_count, stats.leased_count) == (8, 8, 0)
    for name in started:  # acknowledged before the stream ended
        with pytest.raises(grpc.RpcError) as caught:
            server.get_task(name)
        assert caught.value.code() is grpc.StatusCode.NOT_FOUND


def test_the_worker_subscribes_again_after_the_server_restarts(server, run_in_thread):
    server.create_queue("push", PUSH)
    handled = []
    run_in_thread(Worker(server.address, "push", lambda task: handled.append(task.name)))
    fill(server, "push", 1)
    eventually(lambda: len(handled) == 1)
    restart_on_the_same_port(server)
    fill(server, "push", 1)
    eventually(lambda: len(handled) == 2, timeout=20)
    wait_until_empty(server, "push")


@pytest.mark.parametrize(("queue_type", "error"), [(None, QueueNotFound), (queue_pb2.QUEUE_TYPE_PULL, WrongQueueType)])
def test_run_raises_when_the_queue_cannot_be_streamed(server, run_in_thread, queue_type, error):
    if queue_type is not None:
        server.create_queue("q", queue_type)
    thread = run_in_thread(Worker(server.address, "q", lambda task: None))
    thread.join(10)
    assert isinstance(thread.error, error)


def test_a_worker_built_on_a_client_uses_its_address(server, run_in_thread):
    server.create_queue("push", PUSH)
    fill(server, "push", 3)
    handled = []
    with Client(server.address) as client:
        run_in_thread(Worker(client, "push", lambda task: handled.append(task.name)))
        wait_until_empty(server, "push")
    assert len(handled) == 3


def test_run_async_shares_an_async_clients_channel_and_a_handler_can_stop_the_worker(server):
    server.create_queue("push", PUSH)
    names = fill(server, "push", 5)
    handled = []

    async def main() -> None:
        async with AsyncClient(server.address) as client:
            async def handler(task):
                handled.append(task.name)
                if len(handled) == len(names):
                    worker.stop()

            worker = Worker(client, "push", handler)
            await asyncio.wait_for(worker.run_async(), 10)

    asyncio.run(main())
    assert sorted(handled) == sorted(names)
    assert server.stats("push").tasks_count == 0


def test_an_answer_the_server_refuses_is_logged(fake_server, clock, run_in_thread, caplog):
    # The lease runs out under a handler (the fake clock jumps past it before the first
    # extension is due): the server then refuses the ack, and says so on the stream.
    fake_server.create_queue("push", PUSH, dispatch_deadline=duration_pb2.Duration(seconds=15))
    [name] = fill(fake_server, "push", 1)
    started, finish = threading.Event(), threading.Event()

    def handler(task):
        started.set()
        finish.wait(10)

    run_in_thread(Worker(fake_server.address, "push", handler))
    assert started.wait(10)
    clock.advance(20)
    assert fake_server.reap() == 1
    with caplog.at_level(logging.WARNING, logger="taskq.worker"):
        finish.set()
        eventually(lambda: any("refused" in record.getMessage() and name in record.getMessage()
                               for record in caplog.records))
    assert fake_server.get_task(name).attempt_count == 1  # not acknowledged: it will run again


def restart_on_the_same_port(server) -> None:
    """Stops the server and starts it again on its port, so running workers can reconnect."""
    port = server.port
    server.stop()
    server.start(port)
