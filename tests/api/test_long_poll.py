"""LeaseTasks with `wait`: it returns as soon as a task is ready, or empty when the wait ends.
These run on the system clock, so they measure real waiting (generously bounded)."""

from __future__ import annotations

import threading
import time

from harness import seconds_to_duration
from taskq.v1 import task_service_pb2


def lease_with_wait(server, queue_id, wait_seconds, **fields):
    request = task_service_pb2.LeaseTasksRequest(
        parent=f"queues/{queue_id}",
        lease_duration=seconds_to_duration(60),
        max_tasks=10,
        wait=seconds_to_duration(wait_seconds),
        **fields,
    )
    started = time.monotonic()
    tasks = list(server.tasks.LeaseTasks(request).tasks)
    return tasks, time.monotonic() - started


def test_a_waiting_lease_returns_as_soon_as_a_task_is_created(server):
    server.create_queue("pull")
    threading.Timer(0.3, lambda: server.create_task("pull", b"late")).start()
    tasks, elapsed = lease_with_wait(server, "pull", 20)
    assert [t.payload for t in tasks] == [b"late"]
    assert 0.25 <= elapsed < 10


def test_a_waiting_lease_returns_empty_when_the_wait_ends(server):
    server.create_queue("pull")
    tasks, elapsed = lease_with_wait(server, "pull", 0.5)
    assert tasks == []
    assert 0.45 <= elapsed < 5


def test_a_waiting_lease_wakes_when_a_scheduled_task_falls_due(server):
    server.create_queue("pull")
    due = task_service_pb2.CreateTaskRequest(parent="queues/pull")
    due.task.schedule_time.FromMicroseconds(int(time.time() * 1e6) + 700_000)
    server.tasks.CreateTask(due)
    tasks, elapsed = lease_with_wait(server, "pull", 20)
    assert len(tasks) == 1
    assert 0.5 <= elapsed < 10


def test_a_waiting_lease_by_tag_ignores_other_tags(server):
    server.create_queue("pull")
    server.create_task("pull", b"other", tag="b")
    threading.Timer(0.3, lambda: server.create_task("pull", b"mine", tag="a")).start()
    tasks, _ = lease_with_wait(server, "pull", 20, tag="a")
    assert [t.payload for t in tasks] == [b"mine"]


def test_a_released_task_wakes_a_waiting_lease(server):
    server.create_queue("pull")
    server.create_task("pull", b"x")
    [held] = server.lease("pull")

    def release():
        server.tasks.ModifyLease(
            task_service_pb2.ModifyLeaseRequest(
                name=held.name, lease_token=held.lease_token, lease_duration=seconds_to_duration(0)
            )
        )

    threading.Timer(0.3, release).start()
    tasks, elapsed = lease_with_wait(server, "pull", 20)
    assert [t.name for t in tasks] == [held.name]
    assert elapsed < 10
