"""Everything lives in the database: a restarted server has every queue, task, lease, ETA,
tombstone and counter where it was."""

from __future__ import annotations

import grpc
import pytest

from harness import error_reason
from taskq.v1 import queue_pb2, queue_service_pb2, task_pb2


def test_restart_keeps_queues_tasks_leases_etas_tombstones_and_counters(fake_server, clock):
    fake_server.create_queue("pull", retry_config=queue_pb2.RetryConfig(max_attempts=7))
    fake_server.create_queue("push", queue_pb2.QUEUE_TYPE_PUSH)
    fake_server.queues.PauseQueue(queue_service_pb2.PauseQueueRequest(name="queues/push"))
    future = task_pb2.Task(payload=b"later")
    future.schedule_time.FromMicroseconds(clock.now_us() + 3_600_000_000)
    from taskq.v1 import task_service_pb2

    scheduled = fake_server.tasks.CreateTask(task_service_pb2.CreateTaskRequest(parent="queues/pull", task=future)).task
    fake_server.create_task("pull", b"to lease", tag="t")
    fake_server.create_task("pull", b"done", name="queues/pull/tasks/done")
    [done] = fake_server.lease("pull", tag="", max_tasks=1) or [None]
    # Lease the named one by draining ready tasks, then acknowledge it so it leaves a tombstone.
    leased = [done] + fake_server.lease("pull", seconds=300)
    by_payload = {task.payload: task for task in leased}
    fake_server.ack(by_payload[b"done"])
    held = by_payload[b"to lease"]
    before = fake_server.stats("pull")

    fake_server.restart()

    assert fake_server.queues.GetQueue(queue_service_pb2.GetQueueRequest(name="queues/pull")).queue.retry_config.max_attempts == 7
    push = fake_server.queues.GetQueue(queue_service_pb2.GetQueueRequest(name="queues/push")).queue
    assert push.state == queue_pb2.QUEUE_STATE_PAUSED
    after = fake_server.stats("pull")
    assert (after.tasks_count, after.scheduled_count, after.ready_count, after.leased_count) == (
        before.tasks_count, before.scheduled_count, before.ready_count, before.leased_count,
    ) == (2, 1, 0, 1)
    assert fake_server.get_task(scheduled.name).schedule_time == future.schedule_time
    # The lease survived with its token, and ends when it would have.
    assert fake_server.get_task(held.name).lease_token == held.lease_token
    with pytest.raises(grpc.RpcError) as raised:
        fake_server.create_task("pull", name="queues/pull/tasks/done")
    assert error_reason(raised.value) == "TASK_TOMBSTONED"
    clock.advance(301)
    assert fake_server.reap() == 1
    [again] = fake_server.lease("pull")
    assert again.name == held.name and again.attempt_count == 2


def test_an_acknowledgement_after_restart_uses_the_lease_from_before(fake_server):
    fake_server.create_queue("pull")
    fake_server.create_task("pull", b"x")
    [leased] = fake_server.lease("pull")
    fake_server.restart()
    fake_server.ack(leased)
    assert fake_server.stats("pull").tasks_count == 0


def test_leases_that_expired_while_the_server_was_down_are_recovered(fake_server, clock):
    fake_server.create_queue("pull")
    fake_server.create_task("pull", b"x")
    fake_server.lease("pull", seconds=30)
    fake_server.stop()
    clock.advance(60)
    fake_server.start()
    fake_server.reap()
    [again] = fake_server.lease("pull")
    assert again.attempt_count == 2
