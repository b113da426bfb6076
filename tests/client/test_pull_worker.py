"""The PullWorker against a real server: lease → handle → delete with batched deletes, a
failing handler's task released for an immediate retry, Retry, lease extension and graceful
stop."""

from __future__ import annotations

import collections
import threading
import time

import pytest

from client_support import counted_channel, eventually
from taskq.client import Client, PullWorker, QueueNotFound, Retry
from taskq.v1 import task_pb2, task_service_pb2


def fill(server, count: int) -> list[str]:
    requests = [task_service_pb2.CreateTaskRequest(task=task_pb2.Task(payload=str(i).encode())) for i in range(count)]
    response = server.tasks.BatchCreateTasks(task_service_pb2.BatchCreateTasksRequest(parent="queues/work",
                                                                                      requests=requests))
    return [result.task.name for result in response.results]


@pytest.fixture
def counted_client(server):
    """A Client whose RPCs are counted, and the pull queue "work"."""
    server.create_queue("work")
    channel, counter = counted_channel(server.address)
    with Client(channel=channel) as client:
        yield client, counter
    channel.close()


def test_every_task_is_handled_once_and_the_deletes_are_batched(server, counted_client, run_in_thread):
    client, counter = counted_client
    names = fill(server, 60)
    handled = collections.Counter()
    lock = threading.Lock()

    def handler(task):
        time.sleep(0.005)
        with lock:
            handled[task.name] += 1

    run_in_thread(PullWorker(client, "work", handler, batch_size=20, concurrency=8, wait=0.5))
    eventually(lambda: server.stats("work").tasks_count == 0)
    assert handled == {name: 1 for name in names}
    assert counter.calls["DeleteTask"] == 0
    assert sum(counter.batch_sizes[-counter.calls["BatchDeleteTasks"]:]) == 60
    assert counter.calls["BatchDeleteTasks"] <= 60 // 3


def test_a_failing_handler_has_its_task_released_for_an_immediate_retry(server, run_in_thread):
    server.create_queue("work")
    fill(server, 1)
    attempts = []

    def handler(task):
        attempts.append(task.attempt_count)
        if task.attempt_count == 1:
            raise RuntimeError("flaky")

    started = time.monotonic()
    run_in_thread(PullWorker(server.address, "work", handler, lease_duration=60, wait=0.5))
    eventually(lambda: server.stats("work").tasks_count == 0)
    assert attempts == [1, 2]
    assert time.monotonic() - started < 5  # not after the 60 s lease


def test_retry_keeps_the_task_away_for_its_delay(server, run_in_thread):
    server.create_queue("work")
    [name] = fill(server, 1)
    attempts = []

    def handler(task):
        attempts.append(task.attempt_count)
        raise Retry(600)

    run_in_thread(PullWorker(server.address, "work", handler, lease_duration=60, wait=0.5))
    eventually(lambda: attempts and 550 < server.get_task(name).lease_expire_time.seconds - time.time() < 650)
    time.sleep(0.3)
    assert attempts == [1]


def test_a_handler_running_past_its_lease_keeps_the_lease(server, run_in_thread):
    server.create_queue("work")
    fill(server, 1)
    attempts = []

    def handler(task):
        attempts.append(task.attempt_count)
        time.sleep(1.5)  # three times the lease

    run_in_thread(PullWorker(server.address, "work", handler, lease_duration=0.5, concurrency=2, wait=0.2))
    eventually(lambda: server.stats("work").tasks_count == 0)
    assert attempts == [1]


def test_stop_lets_running_handlers_finish_and_deletes_their_tasks(server, run_in_thread):
    server.create_queue("work")
    fill(server, 10)
    started, finish = [], threading.Event()

    def handler(task):
        started.append(task.name)
        finish.wait(10)

    worker = PullWorker(server.address, "work", handler, concurrency=2, batch_size=5, wait=0.2)
    thread = run_in_thread(worker)
    eventually(lambda: len(started) == 2)
    worker.stop()
    time.sleep(0.3)
    assert thread.is_alive()
    finish.set()
    thread.join(10)
    assert not thread.is_alive() and thread.error is None
    stats = server.stats("work")
    assert (stats.tasks_count, stats.ready_count, stats.leased_count) == (8, 8, 0)


def test_run_raises_for_a_missing_queue(server, run_in_thread):
    thread = run_in_thread(PullWorker(server.address, "missing", lambda task: None, wait=0.2))
    thread.join(10)
    assert isinstance(thread.error, QueueNotFound)
