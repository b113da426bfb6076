"""Push queues through the real API: StreamTasks delivery under rate limits, concurrency caps
and flow control, fairness, acks and nacks, backoff, dead letters, stream ends and restarts.
Most tests run on a FakeClock, so rates and backoffs are exact and nothing sleeps for them."""

from __future__ import annotations

import collections

import grpc
import pytest
from google.protobuf import duration_pb2, field_mask_pb2

from harness import Stream, error_reason, fill, open_stream, push_queue, seconds_to_duration, stream_error_reason
from taskq.v1 import queue_pb2, queue_service_pb2, task_pb2, task_service_pb2

PUSH = queue_pb2.QUEUE_TYPE_PUSH


def test_tasks_are_delivered_several_per_message_and_deleted_when_acknowledged(fake_server, streams):
    push_queue(fake_server)
    fill(fake_server, "push", 50)
    stream = open_stream(fake_server, streams)
    first = stream.next()
    assert len(first.tasks) > 1
    tasks = list(first.tasks) + stream.tasks(50 - len(first.tasks))
    assert sorted(int(t.payload) for t in tasks) == list(range(50))
    assert all(t.state == task_pb2.TASK_STATE_LEASED and t.lease_token and t.attempt_count == 1 for t in tasks)
    stream.ack(*tasks)
    assert stream.quiet() == []
    assert fake_server.stats("push").tasks_count == 0
    assert fake_server.stats("push").executed_last_minute == 50


def test_a_stream_gets_no_more_than_max_outstanding_unanswered_tasks(fake_server, streams):
    push_queue(fake_server)
    fill(fake_server, "push", 10)
    stream = open_stream(fake_server, streams, max_outstanding=3)
    held = stream.tasks(3)
    assert stream.quiet() == []
    stream.ack(held[0])
    assert len(stream.tasks(1)) == 1
    assert stream.quiet() == []


def test_rate_and_burst_follow_the_token_bucket(fake_server, clock, streams):
    push_queue(fake_server, rate_limits=queue_pb2.RateLimits(max_dispatches_per_second=10, max_burst_size=5))
    fill(fake_server, "push", 100)
    stream = open_stream(fake_server, streams, max_outstanding=1000)
    assert len(stream.tasks(5)) == 5  # the burst of an idle queue
    assert stream.quiet() == []
    for _ in range(20):  # then one task per tenth of a second: exactly the rate
        clock.advance(0.1)
        assert len(stream.tasks(1)) == 1
        assert stream.quiet(0.05) == []


def test_the_concurrency_cap_counts_every_stream_of_the_queue(fake_server, streams):
    push_queue(fake_server, rate_limits=queue_pb2.RateLimits(max_concurrent_dispatches=4))
    fill(fake_server, "push", 20)
    first = open_stream(fake_server, streams, max_outstanding=10)
    second = open_stream(fake_server, streams, max_outstanding=10)
    held = first.quiet(0.5) + second.quiet(0.5)
    assert len(held) == 4
    assert fake_server.stats("push").concurrent_dispatches == 4
    (first if held[0] in first_tasks(first, held) else second).ack(held[0])
    assert len(first.quiet(0.5) + second.quiet(0.5)) == 1


def first_tasks(stream, held):
    return held  # acks are matched by token, not by stream: any stream may acknowledge


def test_three_streams_share_a_backlog_fairly(fake_server, streams):
    push_queue(fake_server)
    fill(fake_server, "push", 600)
    workers = [open_stream(fake_server, streams, max_outstanding=20) for _ in range(3)]
    received = collections.Counter()
    done = 0
    while done < 600:
        for index, worker in enumerate(workers):
            batch = worker.quiet(0.05)
            if batch:
                worker.ack(*batch)
                received[index] += len(batch)
                done += len(batch)
    assert sum(received.values()) == 600
    assert min(received.values()) >= 120, received  # a fair share is 200 each


def test_a_nacked_task_is_retried_after_the_backoff(fake_server, clock, streams):
    push_queue(fake_server, retry_config=queue_pb2.RetryConfig(min_backoff=duration_pb2.Duration(seconds=10)))
    fill(fake_server, "push", 1)
    stream = open_stream(fake_server, streams)
    [task] = stream.tasks(1)
    stream.nack(task, "boom")
    assert stream.quiet() == []
    stored = fake_server.get_task(task.name)
    assert stored.state == task_pb2.TASK_STATE_SCHEDULED
    assert stored.last_attempt.error.message == "boom"
    assert stored.schedule_time.ToMicroseconds() == clock.now_us() + 10_000_000
    clock.advance(9.9)
    assert stream.quiet() == []
    clock.advance(0.1)
    [again] = stream.tasks(1)
    assert again.name == task.name and again.attempt_count == 2


def test_the_backoff_sequence_follows_app_engines_formula(fake_server, clock, streams):
    retry = queue_pb2.RetryConfig(
        min_backoff=duration_pb2.Duration(seconds=10), max_backoff=duration_pb2.Duration(seconds=300), max_doublings=3
    )
    push_queue(fake_server, retry_config=retry)
    fill(fake_server, "push", 1)
    stream = open_stream(fake_server, streams)
    delays = []
    for _ in range(8):
        [task] = stream.tasks(1)
        stream.nack(task)
        assert stream.quiet(0.2) == []
        due = fake_server.get_task(task.name).schedule_time.ToMicroseconds()
        delays.append((due - clock.now_us()) // 1_000_000)
        clock.advance((due - clock.now_us()) / 1_000_000)
    assert delays == [10, 20, 40, 80, 160, 240, 300, 300]


def test_a_nack_with_a_retry_delay_overrides_the_backoff(fake_server, clock, streams):
    push_queue(fake_server)
    fill(fake_server, "push", 1)
    stream = open_stream(fake_server, streams)
    [task] = stream.tasks(1)
    stream.nack(task, retry_delay=duration_pb2.Duration(seconds=42))
    assert stream.quiet() == []
    assert fake_server.get_task(task.name).schedule_time.ToMicroseconds() == clock.now_us() + 42_000_000


def test_a_permanent_nack_dead_letters_at_once(fake_server, streams):
    fake_server.create_queue("dlq")
    push_queue(fake_server, dead_letter_queue="queues/dlq")
    fill(fake_server, "push", 1)
    stream = open_stream(fake_server, streams)
    [task] = stream.tasks(1)
    stream.nack(task, "bad input", permanent=True)
    assert stream.quiet() == []
    [dead] = fake_server.lease("dlq")
    assert dead.attributes["taskq-last-error"] == "INTERNAL: bad input"
    assert dead.attributes["taskq-attempt-count"] == "1"


def test_after_max_attempts_a_task_fails_and_keeps_its_last_error(fake_server, clock, streams):
    push_queue(fake_server, retry_config=queue_pb2.RetryConfig(max_attempts=2, min_backoff=duration_pb2.Duration()))
    fill(fake_server, "push", 1)
    stream = open_stream(fake_server, streams)
    [task] = stream.tasks(1)
    stream.nack(task, "first")
    [task] = stream.tasks(1)
    stream.nack(task, "second")
    assert stream.quiet() == []
    failed = fake_server.get_task(task.name)
    assert failed.state == task_pb2.TASK_STATE_FAILED
    assert (failed.attempt_count, failed.last_attempt.error.message) == (2, "second")
    assert fake_server.stats("push").failed_count == 1
    fake_server.tasks.RunTask(task_service_pb2.RunTaskRequest(name=task.name))
    [rerun] = stream.tasks(1)
    assert rerun.attempt_count == 3


def test_max_retry_duration_and_max_attempts_must_both_run_out(fake_server, clock, streams):
    retry = queue_pb2.RetryConfig(
        max_attempts=2, max_retry_duration=duration_pb2.Duration(seconds=100), min_backoff=duration_pb2.Duration(seconds=30),
        max_doublings=0,
    )
    push_queue(fake_server, retry_config=retry)
    fill(fake_server, "push", 1)
    stream = open_stream(fake_server, streams)
    attempts = 0
    while True:
        [task] = stream.tasks(1)
        attempts += 1
        stream.nack(task)
        assert stream.quiet(0.2) == []
        stored = fake_server.get_task(task.name)
        if stored.state == task_pb2.TASK_STATE_FAILED:
            break
        clock.advance((stored.schedule_time.ToMicroseconds() - clock.now_us()) / 1e6)
    # Attempts at 0 s, 30 s (attempts exhausted), 90 s; the third fails 90 s in, the duration
    # is not exhausted; the fourth, at 180 s, is past both limits.
    assert attempts == 4


def test_a_task_not_answered_within_the_dispatch_deadline_is_retried(fake_server, clock, streams):
    push_queue(fake_server, dispatch_deadline=duration_pb2.Duration(seconds=15))
    fill(fake_server, "push", 1)
    stream = open_stream(fake_server, streams)
    [task] = stream.tasks(1)
    assert task.lease_expire_time.ToMicroseconds() == clock.now_us() + 15_000_000
    clock.advance(15)
    fake_server.reap()
    stored = fake_server.get_task(task.name)
    assert stored.last_attempt.error.message == "lease expired"
    clock.advance(1)
    [again] = stream.tasks(1)
    assert again.attempt_count == 2
    stream.ack(task)
    refused = stream.next()
    assert stream_error_reason(refused.errors[0]) == "LEASE_LOST"


def test_a_per_task_dispatch_deadline_overrides_the_queues(fake_server, clock, streams):
    push_queue(fake_server)
    fill(fake_server, "push", 1, dispatch_deadline=duration_pb2.Duration(seconds=20))
    [task] = open_stream(fake_server, streams).tasks(1)
    assert task.lease_expire_time.ToMicroseconds() == clock.now_us() + 20_000_000


def test_a_lease_extension_keeps_the_task(fake_server, clock, streams):
    push_queue(fake_server, dispatch_deadline=duration_pb2.Duration(seconds=15))
    fill(fake_server, "push", 1)
    stream = open_stream(fake_server, streams)
    [task] = stream.tasks(1)
    clock.advance(10)
    stream.send(lease_extensions=[task_service_pb2.LeaseExtension(
        name=task.name, lease_token=task.lease_token, lease_duration=seconds_to_duration(60))])
    assert stream.quiet() == []
    clock.advance(30)
    assert fake_server.reap() == 0
    stream.ack(task)
    assert stream.quiet() == []
    assert fake_server.stats("push").tasks_count == 0


def test_a_bad_answer_gets_an_error_message_and_the_stream_stays_open(fake_server, streams):
    push_queue(fake_server)
    fill(fake_server, "push", 2)
    stream = open_stream(fake_server, streams, max_outstanding=1)
    [task] = stream.tasks(1)
    stream.send(acks=[task_service_pb2.TaskAck(name=task.name, lease_token="stale")])
    refused = stream.next()
    assert refused.errors[0].name == task.name
    assert refused.errors[0].status.code == grpc.StatusCode.FAILED_PRECONDITION.value[0]
    assert stream_error_reason(refused.errors[0]) == "LEASE_LOST"
    stream.send(acks=[task_service_pb2.TaskAck(name="not a name", lease_token="x")])
    assert stream.next().errors[0].status.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    stream.ack(task)
    assert len(stream.tasks(1)) == 1


def test_when_a_stream_drops_its_tasks_go_to_another_stream_at_once(fake_server, streams):
    push_queue(fake_server)
    fill(fake_server, "push", 5)
    first = open_stream(fake_server, streams, max_outstanding=5)
    held = first.tasks(5)
    second = open_stream(fake_server, streams, max_outstanding=5)
    assert second.quiet() == []
    first.cancel()
    moved = second.tasks(5)
    assert {t.name for t in moved} == {t.name for t in held}
    assert all(t.attempt_count == 2 for t in moved)
    assert fake_server.get_task(moved[0].name).last_attempt.dispatch_time.seconds > 0


def test_a_paused_queue_dispatches_nothing_until_resumed(fake_server, streams):
    push_queue(fake_server)
    fake_server.queues.PauseQueue(queue_service_pb2.PauseQueueRequest(name="queues/push"))
    fill(fake_server, "push", 3)
    stream = open_stream(fake_server, streams)
    assert stream.quiet() == []
    fake_server.queues.ResumeQueue(queue_service_pb2.ResumeQueueRequest(name="queues/push"))
    assert len(stream.tasks(3)) == 3


def test_purge_removes_tasks_in_flight_and_their_acks_are_refused(fake_server, streams):
    push_queue(fake_server)
    fill(fake_server, "push", 3)
    stream = open_stream(fake_server, streams)
    held = stream.tasks(3)
    fake_server.queues.PurgeQueue(queue_service_pb2.PurgeQueueRequest(name="queues/push"))
    stream.ack(*held)
    refused = stream.next()
    assert [stream_error_reason(e) for e in refused.errors] == ["LEASE_LOST"] * 3


def test_a_rate_change_applies_to_a_live_queue(fake_server, clock, streams):
    push_queue(fake_server, rate_limits=queue_pb2.RateLimits(max_dispatches_per_second=1, max_burst_size=1))
    fill(fake_server, "push", 100)
    stream = open_stream(fake_server, streams, max_outstanding=1000)
    assert len(stream.tasks(1)) == 1
    fake_server.queues.UpdateQueue(queue_service_pb2.UpdateQueueRequest(
        queue=queue_pb2.Queue(name="queues/push", rate_limits=queue_pb2.RateLimits(max_dispatches_per_second=20)),
        update_mask=field_mask_pb2.FieldMask(paths=["rate_limits.max_dispatches_per_second"]),
    ))
    received = 0
    for _ in range(20):  # one second at 20 per second, in steps of 50 ms
        clock.advance(0.05)
        received += len(stream.quiet(0.05))
    assert 19 <= received <= 21


def test_scheduled_tasks_are_delivered_when_due_and_not_before(fake_server, clock, streams):
    push_queue(fake_server)
    task = task_pb2.Task()
    task.schedule_time.FromMicroseconds(clock.now_us() + 30_000_000)
    fake_server.tasks.CreateTask(task_service_pb2.CreateTaskRequest(parent="queues/push", task=task))
    stream = open_stream(fake_server, streams)
    clock.advance(29.999)
    assert stream.quiet() == []
    clock.advance(0.001)
    assert len(stream.tasks(1)) == 1


def test_stream_on_a_pull_queue_or_a_missing_one_is_refused(fake_server):
    fake_server.create_queue("pull")
    for queue_id, code, reason in (("pull", grpc.StatusCode.FAILED_PRECONDITION, "WRONG_QUEUE_TYPE"),
                                   ("missing", grpc.StatusCode.NOT_FOUND, "QUEUE_NOT_FOUND")):
        stream = Stream(fake_server.channel, queue_id)
        assert stream.ended.wait(10)
        assert stream.error.code() == code
        assert error_reason(stream.error) == reason


def test_a_first_message_without_a_subscription_is_refused(fake_server):
    push_queue(fake_server)
    call = fake_server.tasks.StreamTasks(iter([task_service_pb2.StreamTasksRequest(
        acks=[task_service_pb2.TaskAck(name="queues/push/tasks/x", lease_token="t")])]))
    with pytest.raises(grpc.RpcError) as raised:
        list(call)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_reason(raised.value) == "SUBSCRIPTION_REQUIRED"


def test_deleting_the_queue_ends_its_streams_with_not_found(fake_server, streams):
    push_queue(fake_server)
    stream = open_stream(fake_server, streams)
    fake_server.queues.DeleteQueue(queue_service_pb2.DeleteQueueRequest(name="queues/push"))
    assert stream.ended.wait(10)
    assert stream.error.code() == grpc.StatusCode.NOT_FOUND


def test_an_idle_stream_gets_heartbeats(tmp_path):
    from harness import ServerHarness

    harness = ServerHarness(str(tmp_path / "data"), stream_heartbeat_seconds=0.2)
    try:
        harness.create_queue("push", PUSH)
        stream = Stream(harness.channel, "push")
        beat = stream.next(timeout=5)
        assert beat.HasField("heartbeat_time") and not beat.tasks
        stream.close()
    finally:
        harness.close()


def test_tasks_in_flight_at_a_restart_are_all_delivered_again(fake_server, streams):
    push_queue(fake_server)
    fill(fake_server, "push", 20)
    stream = open_stream(fake_server, streams, max_outstanding=8)
    held = stream.tasks(8)
    fake_server.restart()
    assert fake_server.stats("push").leased_count == 0
    again = open_stream(fake_server, streams, max_outstanding=100)
    delivered = again.tasks(20)
    assert {t.name for t in held} <= {t.name for t in delivered}
    assert len({t.name for t in delivered}) == 20


def test_a_stopping_server_ends_streams_with_shutting_down_after_releasing_their_tasks(tmp_path):
    from harness import ServerHarness

    harness = ServerHarness(str(tmp_path / "data"))
    try:
        harness.create_queue("push", PUSH)
        fill(harness, "push", 3)
        stream = Stream(harness.channel, "push")
        held = stream.tasks(3)
        harness.run(harness.server.stop(grace=5))
        assert stream.ended.wait(10)
        assert stream.error.code() == grpc.StatusCode.UNAVAILABLE
        assert error_reason(stream.error) == "SHUTTING_DOWN"
        harness.server = None
        harness.start()
        assert harness.stats("push").leased_count == 0
        assert all(harness.get_task(t.name).attempt_count == 1 for t in held)
        assert all(harness.get_task(t.name).state == task_pb2.TASK_STATE_READY for t in held)
    finally:
        harness.close()
