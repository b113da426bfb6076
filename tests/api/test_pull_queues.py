"""Pull queues through the real API: leasing, lease expiry and renewal, tags, attempts,
dead letters. Time is a FakeClock moved by each test; the reaper runs when a test says so."""

from __future__ import annotations

import grpc
import pytest
from google.protobuf import duration_pb2, timestamp_pb2

from harness import error_reason, seconds_to_duration
from taskq.v1 import queue_pb2, task_pb2, task_service_pb2


def at(clock, seconds_from_now: float) -> timestamp_pb2.Timestamp:
    microseconds = clock.now_us() + int(seconds_from_now * 1_000_000)
    return timestamp_pb2.Timestamp(seconds=microseconds // 1_000_000, nanos=(microseconds % 1_000_000) * 1000)


def modify(server, task, seconds: float):
    return server.tasks.ModifyLease(
        task_service_pb2.ModifyLeaseRequest(
            name=task.name, lease_token=task.lease_token, lease_duration=seconds_to_duration(seconds)
        )
    ).task


def test_lease_returns_ready_tasks_oldest_schedule_time_first(fake_server, clock):
    fake_server.create_queue("pull")
    later = fake_server.create_task("pull", b"later", schedule_time=at(clock, 10))
    sooner = fake_server.create_task("pull", b"sooner", schedule_time=at(clock, 5))
    clock.advance(20)
    newest = fake_server.create_task("pull", b"newest")
    leased = fake_server.lease("pull", max_tasks=10)
    assert [t.name for t in leased] == [sooner.name, later.name, newest.name]


def test_schedule_time_in_the_past_means_now(fake_server, clock):
    fake_server.create_queue("pull")
    task = fake_server.create_task("pull", b"x", schedule_time=at(clock, -3600))
    assert task.schedule_time == at(clock, 0)
    assert task.state == task_pb2.TASK_STATE_READY


def test_task_is_not_leased_before_its_schedule_time(fake_server, clock):
    fake_server.create_queue("pull")
    task = fake_server.create_task("pull", b"x", schedule_time=at(clock, 60))
    assert task.state == task_pb2.TASK_STATE_SCHEDULED
    clock.advance(59)
    assert fake_server.lease("pull") == []
    clock.advance(1)
    [leased] = fake_server.lease("pull")
    assert leased.name == task.name


def test_each_lease_counts_an_attempt_and_mints_a_new_token(fake_server, clock):
    fake_server.create_queue("pull")
    fake_server.create_task("pull", b"x")
    [first] = fake_server.lease("pull", seconds=30)
    assert first.attempt_count == 1 and first.lease_token
    clock.advance(31)
    assert fake_server.reap() == 1
    [second] = fake_server.lease("pull", seconds=30)
    assert second.attempt_count == 2
    assert second.lease_token != first.lease_token
    assert second.first_attempt_time == first.first_attempt_time
    assert second.last_attempt.dispatch_time.seconds >= first.last_attempt.dispatch_time.seconds


def test_expired_lease_returns_the_task_to_ready_with_the_expiry_recorded(fake_server, clock):
    fake_server.create_queue("pull")
    created = fake_server.create_task("pull", b"x")
    fake_server.lease("pull", seconds=30)
    clock.advance(31)
    fake_server.reap()
    task = fake_server.get_task(created.name)
    assert task.state == task_pb2.TASK_STATE_READY
    assert task.lease_token == ""
    assert task.last_attempt.error.code == grpc.StatusCode.DEADLINE_EXCEEDED.value[0]
    assert task.last_attempt.error.message == "lease expired"


def test_stale_lease_token_cannot_ack(fake_server, clock):
    fake_server.create_queue("pull")
    fake_server.create_task("pull", b"x")
    [first] = fake_server.lease("pull", seconds=30)
    clock.advance(31)
    fake_server.reap()
    [second] = fake_server.lease("pull", seconds=30)
    with pytest.raises(grpc.RpcError) as raised:
        fake_server.ack(first)
    assert raised.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert error_reason(raised.value) == "LEASE_LOST"
    fake_server.ack(second)
    assert fake_server.stats("pull").tasks_count == 0


def test_lease_that_ran_out_is_lost_even_before_the_reaper_runs(fake_server, clock):
    fake_server.create_queue("pull")
    fake_server.create_task("pull", b"x")
    [leased] = fake_server.lease("pull", seconds=30)
    clock.advance(30)
    with pytest.raises(grpc.RpcError) as raised:
        fake_server.ack(leased)
    assert error_reason(raised.value) == "LEASE_LOST"


def test_modify_lease_extends_it_from_now_and_keeps_the_token(fake_server, clock):
    fake_server.create_queue("pull")
    fake_server.create_task("pull", b"x")
    [leased] = fake_server.lease("pull", seconds=30)
    clock.advance(20)
    renewed = modify(fake_server, leased, 60)
    assert renewed.lease_token == leased.lease_token
    clock.advance(50)  # 70 s after the lease began: past the first expiry, before the new one
    assert fake_server.reap() == 0
    fake_server.ack(leased)


def test_modify_lease_to_zero_releases_the_task_at_once_for_another_worker(fake_server):
    fake_server.create_queue("pull")
    fake_server.create_task("pull", b"x")
    [leased] = fake_server.lease("pull", seconds=300)
    released = modify(fake_server, leased, 0)
    assert released.state == task_pb2.TASK_STATE_READY
    [again] = fake_server.lease("pull")
    assert again.attempt_count == 2
    with pytest.raises(grpc.RpcError) as raised:
        modify(fake_server, leased, 30)
    assert error_reason(raised.value) == "LEASE_LOST"


def test_task_leased_max_attempts_times_is_never_leased_again(fake_server, clock):
    fake_server.create_queue("pull", retry_config=queue_pb2.RetryConfig(max_attempts=2))
    created = fake_server.create_task("pull", b"x")
    for _ in range(2):
        [leased] = fake_server.lease("pull", seconds=10)
        clock.advance(11)
        fake_server.reap()
    assert fake_server.lease("pull") == []
    task = fake_server.get_task(created.name)
    assert task.state == task_pb2.TASK_STATE_FAILED
    assert task.attempt_count == 2
    stats = fake_server.stats("pull")
    assert (stats.failed_count, stats.ready_count, stats.leased_count) == (1, 0, 0)


def test_per_task_max_attempts_overrides_the_queue(fake_server, clock):
    fake_server.create_queue("pull", retry_config=queue_pb2.RetryConfig(max_attempts=5))
    created = fake_server.create_task("pull", b"x", retry_config=queue_pb2.RetryConfig(max_attempts=1))
    fake_server.lease("pull", seconds=10)
    clock.advance(11)
    fake_server.reap()
    assert fake_server.get_task(created.name).state == task_pb2.TASK_STATE_FAILED


def test_exhausted_task_moves_to_the_dead_letter_queue_with_its_history(fake_server, clock):
    fake_server.create_queue("graveyard")
    fake_server.create_queue(
        "pull", retry_config=queue_pb2.RetryConfig(max_attempts=1), dead_letter_queue="queues/graveyard"
    )
    created = fake_server.create_task("pull", b"payload", tag="t", attributes={"k": "v"})
    fake_server.lease("pull", seconds=10)
    clock.advance(11)
    fake_server.reap()
    assert fake_server.stats("pull").tasks_count == 0
    [moved] = fake_server.lease("graveyard")
    assert moved.payload == b"payload" and moved.tag == "t"
    assert moved.attributes["k"] == "v"
    assert moved.attributes["taskq-original-queue"] == "queues/pull"
    assert moved.attributes["taskq-original-task"] == created.name
    assert moved.attributes["taskq-attempt-count"] == "1"
    assert moved.attributes["taskq-last-error"] == "DEADLINE_EXCEEDED: lease expired"


def test_failed_task_can_be_run_again(fake_server, clock):
    fake_server.create_queue("pull", retry_config=queue_pb2.RetryConfig(max_attempts=1))
    created = fake_server.create_task("pull", b"x")
    fake_server.lease("pull", seconds=10)
    clock.advance(11)
    fake_server.reap()
    run = fake_server.tasks.RunTask(task_service_pb2.RunTaskRequest(name=created.name)).task
    assert run.state == task_pb2.TASK_STATE_READY
    [leased] = fake_server.lease("pull")
    assert leased.attempt_count == 2


def test_failed_task_is_deleted_when_its_task_ttl_passes(fake_server, clock):
    fake_server.create_queue(
        "pull", retry_config=queue_pb2.RetryConfig(max_attempts=1), task_ttl=duration_pb2.Duration(seconds=3600)
    )
    created = fake_server.create_task("pull", b"x")
    fake_server.lease("pull", seconds=10)
    clock.advance(11)
    fake_server.reap()
    clock.advance(3599)
    fake_server.janitor()
    assert fake_server.get_task(created.name).state == task_pb2.TASK_STATE_FAILED
    clock.advance(2)
    fake_server.janitor()
    with pytest.raises(grpc.RpcError) as raised:
        fake_server.get_task(created.name)
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND
    assert fake_server.stats("pull").failed_count == 0


def test_run_task_makes_a_scheduled_task_ready_now(fake_server, clock):
    fake_server.create_queue("pull")
    created = fake_server.create_task("pull", b"x", schedule_time=at(clock, 3600))
    fake_server.tasks.RunTask(task_service_pb2.RunTaskRequest(name=created.name))
    [leased] = fake_server.lease("pull")
    assert leased.name == created.name


def test_run_task_refuses_a_leased_task(fake_server):
    fake_server.create_queue("pull")
    fake_server.create_task("pull", b"x")
    [leased] = fake_server.lease("pull")
    with pytest.raises(grpc.RpcError) as raised:
        fake_server.tasks.RunTask(task_service_pb2.RunTaskRequest(name=leased.name))
    assert raised.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert error_reason(raised.value) == "TASK_LEASED"


def test_lease_by_tag_returns_only_that_tag(fake_server):
    fake_server.create_queue("pull")
    for tag in ("a", "b", "a", "", "b"):
        fake_server.create_task("pull", tag.encode(), tag=tag)
    leased = fake_server.lease("pull", tag="a")
    assert [t.tag for t in leased] == ["a", "a"]
    assert fake_server.lease("pull", tag="a") == []


def test_oldest_tag_leases_the_tag_of_the_oldest_ready_task(fake_server, clock):
    fake_server.create_queue("pull")
    fake_server.create_task("pull", b"1", tag="old")
    clock.advance(1)
    fake_server.create_task("pull", b"2", tag="new")
    clock.advance(1)
    fake_server.create_task("pull", b"3", tag="old")
    leased = fake_server.lease("pull", oldest_tag=True)
    assert [t.payload for t in leased] == [b"1", b"3"]


def test_oldest_tag_with_an_untagged_oldest_task_leases_only_untagged_tasks(fake_server, clock):
    fake_server.create_queue("pull")
    fake_server.create_task("pull", b"1")
    clock.advance(1)
    fake_server.create_task("pull", b"2", tag="t")
    clock.advance(1)
    fake_server.create_task("pull", b"3")
    leased = fake_server.lease("pull", oldest_tag=True)
    assert [t.payload for t in leased] == [b"1", b"3"]


def test_lease_takes_at_most_max_tasks(fake_server):
    fake_server.create_queue("pull")
    for index in range(7):
        fake_server.create_task("pull", str(index).encode())
    assert len(fake_server.lease("pull", max_tasks=5)) == 5
    assert len(fake_server.lease("pull", max_tasks=5)) == 2


def test_lease_stops_before_the_response_would_exceed_the_message_limit(tmp_path):
    from harness import ServerHarness

    harness = ServerHarness(str(tmp_path / "small"), max_task_bytes=100_000, max_message_bytes=300_000)
    try:
        harness.create_queue("pull")
        for _ in range(5):
            harness.create_task("pull", b"x" * 90_000)
        first = harness.lease("pull", max_tasks=10)
        assert 1 <= len(first) <= 3
        assert len(first) + len(harness.lease("pull", max_tasks=10)) + len(harness.lease("pull", max_tasks=10)) >= 5
    finally:
        harness.close()


def test_lease_on_a_paused_queue_fails_and_resuming_restores_it(fake_server):
    from taskq.v1 import queue_service_pb2

    fake_server.create_queue("pull")
    fake_server.queues.PauseQueue(queue_service_pb2.PauseQueueRequest(name="queues/pull"))
    fake_server.create_task("pull", b"accepted while paused")
    with pytest.raises(grpc.RpcError) as raised:
        fake_server.lease("pull")
    assert raised.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert error_reason(raised.value) == "QUEUE_PAUSED"
    fake_server.queues.ResumeQueue(queue_service_pb2.ResumeQueueRequest(name="queues/pull"))
    assert len(fake_server.lease("pull")) == 1


def test_lease_on_a_push_queue_is_refused(fake_server):
    fake_server.create_queue("push", queue_pb2.QUEUE_TYPE_PUSH)
    with pytest.raises(grpc.RpcError) as raised:
        fake_server.lease("push")
    assert raised.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert error_reason(raised.value) == "WRONG_QUEUE_TYPE"


def test_delete_without_a_token_removes_a_leased_task_and_its_lease(fake_server):
    fake_server.create_queue("pull")
    fake_server.create_task("pull", b"x")
    [leased] = fake_server.lease("pull")
    fake_server.tasks.DeleteTask(task_service_pb2.DeleteTaskRequest(name=leased.name))
    with pytest.raises(grpc.RpcError) as raised:
        fake_server.ack(leased)
    assert error_reason(raised.value) == "LEASE_LOST"
    assert fake_server.stats("pull").tasks_count == 0


def test_batch_delete_acknowledges_and_reports_each_item(fake_server):
    fake_server.create_queue("pull")
    for _ in range(3):
        fake_server.create_task("pull", b"x")
    leased = fake_server.lease("pull")
    requests = [task_service_pb2.DeleteTaskRequest(name=t.name, lease_token=t.lease_token) for t in leased]
    requests.append(task_service_pb2.DeleteTaskRequest(name=leased[0].name, lease_token=leased[0].lease_token))
    response = fake_server.tasks.BatchDeleteTasks(
        task_service_pb2.BatchDeleteTasksRequest(parent="queues/pull", requests=requests)
    )
    assert [r.code for r in response.results] == [0, 0, 0, grpc.StatusCode.FAILED_PRECONDITION.value[0]]
    assert fake_server.stats("pull").tasks_count == 0
    assert fake_server.stats("pull").executed_last_minute == 3


def test_a_task_acknowledged_again_after_a_lost_answer_gets_the_same_answer(fake_server):
    fake_server.create_queue("q")
    fake_server.create_task("q", b"x")
    [leased] = fake_server.lease("q")
    fake_server.ack(leased)
    fake_server.ack(leased)  # the retry of an acknowledgement whose answer was lost
    results = fake_server.tasks.BatchDeleteTasks(task_service_pb2.BatchDeleteTasksRequest(
        parent="queues/q",
        requests=[task_service_pb2.DeleteTaskRequest(name=leased.name, lease_token=leased.lease_token)],
    )).results
    assert [result.code for result in results] == [0]
    # Another token is still refused, so a worker that lost its lease learns it.
    with pytest.raises(grpc.RpcError) as raised:
        fake_server.tasks.DeleteTask(task_service_pb2.DeleteTaskRequest(name=leased.name, lease_token="AAAAAAAAAAAAAAAA"))
    assert error_reason(raised.value) == "LEASE_LOST"
