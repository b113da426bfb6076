"""Queue administration and statistics through the real API."""

from __future__ import annotations

import grpc
import pytest
from google.protobuf import duration_pb2, field_mask_pb2

from harness import error_reason
from taskq.v1 import queue_pb2, queue_service_pb2, task_pb2


def get(server, queue_id):
    return server.queues.GetQueue(queue_service_pb2.GetQueueRequest(name=f"queues/{queue_id}")).queue


def update(server, queue, paths):
    return server.queues.UpdateQueue(
        queue_service_pb2.UpdateQueueRequest(queue=queue, update_mask=field_mask_pb2.FieldMask(paths=paths))
    ).queue


def test_a_new_queue_reports_every_default(fake_server):
    queue = fake_server.create_queue("q", queue_pb2.QUEUE_TYPE_UNSPECIFIED)
    assert queue.type == queue_pb2.QUEUE_TYPE_PUSH
    assert queue.state == queue_pb2.QUEUE_STATE_RUNNING
    assert not queue.rate_limits.HasField("max_dispatches_per_second")
    assert queue.rate_limits.max_burst_size == 5
    assert queue.rate_limits.max_concurrent_dispatches == 1000
    assert queue.retry_config.min_backoff.ToMilliseconds() == 100
    assert queue.retry_config.max_backoff.seconds == 3600
    assert queue.retry_config.max_doublings == 16
    assert queue.dispatch_deadline.seconds == 600
    assert queue.task_ttl.seconds == 31 * 86400
    assert queue.tombstone_ttl.seconds == 3600
    assert queue.create_time.seconds > 0


def test_burst_size_defaults_to_a_fifth_of_the_rate(fake_server):
    limits = queue_pb2.RateLimits(max_dispatches_per_second=50)
    assert fake_server.create_queue("q", queue_pb2.QUEUE_TYPE_PUSH, rate_limits=limits).rate_limits.max_burst_size == 10
    slow = queue_pb2.RateLimits(max_dispatches_per_second=0.5)
    assert fake_server.create_queue("s", queue_pb2.QUEUE_TYPE_PUSH, rate_limits=slow).rate_limits.max_burst_size == 1


def test_creating_an_existing_queue_is_refused(fake_server):
    fake_server.create_queue("q")
    with pytest.raises(grpc.RpcError) as raised:
        fake_server.create_queue("q")
    assert raised.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert error_reason(raised.value) == "QUEUE_ALREADY_EXISTS"


def test_list_queues_pages_in_name_order(fake_server):
    names = [f"queues/q{index:02d}" for index in range(12)]
    for name in reversed(names):
        fake_server.create_queue(name.split("/")[1])
    seen, token = [], ""
    while True:
        page = fake_server.queues.ListQueues(queue_service_pb2.ListQueuesRequest(page_size=5, page_token=token))
        seen += [queue.name for queue in page.queues]
        token = page.next_page_token
        if not token:
            break
    assert seen == names


def test_update_changes_only_the_fields_in_the_mask(fake_server):
    fake_server.create_queue(
        "q", queue_pb2.QUEUE_TYPE_PUSH, rate_limits=queue_pb2.RateLimits(max_dispatches_per_second=5, max_burst_size=7)
    )
    change = queue_pb2.Queue(
        name="queues/q",
        rate_limits=queue_pb2.RateLimits(max_dispatches_per_second=20, max_burst_size=99),
        retry_config=queue_pb2.RetryConfig(max_attempts=3),
    )
    updated = update(fake_server, change, ["rate_limits.max_dispatches_per_second", "retry_config.max_attempts"])
    assert updated.rate_limits.max_dispatches_per_second == 20
    assert updated.rate_limits.max_burst_size == 7
    assert updated.retry_config.max_attempts == 3
    assert get(fake_server, "q") == updated


def test_update_without_a_mask_replaces_every_changeable_field(fake_server):
    fake_server.create_queue("q", retry_config=queue_pb2.RetryConfig(max_attempts=3), task_ttl=duration_pb2.Duration(seconds=600))
    updated = update(fake_server, queue_pb2.Queue(name="queues/q"), [])
    assert updated.retry_config.max_attempts == 0
    assert updated.task_ttl.seconds == 31 * 86400
    assert updated.type == queue_pb2.QUEUE_TYPE_PULL


def test_update_can_set_a_dead_letter_queue_that_exists(fake_server):
    fake_server.create_queue("q")
    with pytest.raises(grpc.RpcError) as raised:
        update(fake_server, queue_pb2.Queue(name="queues/q", dead_letter_queue="queues/dlq"), ["dead_letter_queue"])
    assert error_reason(raised.value) == "DEAD_LETTER_QUEUE_NOT_FOUND"
    fake_server.create_queue("dlq")
    updated = update(fake_server, queue_pb2.Queue(name="queues/q", dead_letter_queue="queues/dlq"), ["dead_letter_queue"])
    assert updated.dead_letter_queue == "queues/dlq"


def test_pause_and_resume_change_the_state(fake_server):
    fake_server.create_queue("q")
    paused = fake_server.queues.PauseQueue(queue_service_pb2.PauseQueueRequest(name="queues/q")).queue
    assert paused.state == queue_pb2.QUEUE_STATE_PAUSED
    assert get(fake_server, "q").state == queue_pb2.QUEUE_STATE_PAUSED
    resumed = fake_server.queues.ResumeQueue(queue_service_pb2.ResumeQueueRequest(name="queues/q")).queue
    assert resumed.state == queue_pb2.QUEUE_STATE_RUNNING


def test_purge_removes_every_task_leased_ones_included(fake_server):
    fake_server.create_queue("q")
    for index in range(2500):  # more than one purge chunk
        fake_server.create_task("q", str(index).encode(), name=f"queues/q/tasks/t{index}" if index < 3 else "")
    [leased] = fake_server.lease("q", max_tasks=1)
    response = fake_server.queues.PurgeQueue(queue_service_pb2.PurgeQueueRequest(name="queues/q"))
    assert response.purged_count == 2500
    assert response.queue.purge_time.seconds > 0
    assert fake_server.stats("q").tasks_count == 0
    with pytest.raises(grpc.RpcError) as raised:
        fake_server.ack(leased)
    assert error_reason(raised.value) == "LEASE_LOST"
    # Caller-chosen names of purged tasks stay reserved.
    with pytest.raises(grpc.RpcError) as raised:
        fake_server.create_task("q", name="queues/q/tasks/t1")
    assert error_reason(raised.value) == "TASK_TOMBSTONED"
    fake_server.create_task("q", b"after the purge")
    assert fake_server.stats("q").tasks_count == 1


def test_deleting_a_queue_deletes_its_tasks_and_a_new_queue_of_that_name_starts_empty(fake_server):
    fake_server.create_queue("q")
    fake_server.create_task("q", b"x", name="queues/q/tasks/named")
    fake_server.queues.DeleteQueue(queue_service_pb2.DeleteQueueRequest(name="queues/q"))
    with pytest.raises(grpc.RpcError) as raised:
        get(fake_server, "q")
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND
    assert error_reason(raised.value) == "QUEUE_NOT_FOUND"
    fake_server.create_queue("q")
    assert fake_server.stats("q").tasks_count == 0
    fake_server.create_task("q", b"x", name="queues/q/tasks/named")  # the old tombstone went with the queue


def test_stats_count_tasks_by_state(fake_server, clock):
    fake_server.create_queue("q", retry_config=queue_pb2.RetryConfig(max_attempts=1))
    future = task_pb2.Task()
    future.schedule_time.FromMicroseconds(clock.now_us() + 60_000_000)
    from taskq.v1 import task_service_pb2

    fake_server.tasks.CreateTask(task_service_pb2.CreateTaskRequest(parent="queues/q", task=future))
    for _ in range(4):
        fake_server.create_task("q", b"x")
    fake_server.lease("q", seconds=10, max_tasks=2)
    stats = fake_server.stats("q")
    assert (stats.tasks_count, stats.scheduled_count, stats.ready_count, stats.leased_count) == (5, 1, 2, 2)
    assert stats.leased_last_minute == 2
    assert stats.oldest_schedule_time.seconds > 0
    clock.advance(11)
    fake_server.reap()  # max_attempts=1: both leased tasks fail
    stats = fake_server.stats("q")
    assert (stats.failed_count, stats.leased_count) == (2, 0)
    clock.advance(50)
    fake_server.janitor()  # the scheduled task's time has come: it is counted as ready now
    stats = fake_server.stats("q")
    assert (stats.scheduled_count, stats.ready_count) == (0, 3)


def test_stats_of_a_push_queue_report_concurrent_dispatches(fake_server):
    fake_server.create_queue("push", queue_pb2.QUEUE_TYPE_PUSH)
    assert fake_server.stats("push").concurrent_dispatches == 0
