"""Cloud Tasks v2beta2 pull queues on taskq, through Google's official Python client: LeaseTasks
(tags, oldest_tag()), RenewLease, AcknowledgeTask and CancelLease with leases named by their
schedule_time, the calls each kind of queue refuses, queue stats behind the read mask."""

from __future__ import annotations

import datetime

import pytest
from cloudtasks.helpers import BASIC, FULL, PARENT, ago, ahead, client_for, lease, pull_queue, pull_task, queue_name, reason
from google.api_core import exceptions
from google.cloud import tasks_v2beta2
from google.protobuf import duration_pb2, field_mask_pb2

from taskq.v1 import queue_pb2, queue_service_pb2, task_pb2


@pytest.fixture
def client(v2beta2_client):
    return v2beta2_client


@pytest.fixture
def fake_client(fake_server):
    return client_for(fake_server)


def test_pull_queue_lease_renew_acknowledge_cancel_cycle_with_tags(server, client):
    queue = pull_queue(client, "pull", retry_config=tasks_v2beta2.RetryConfig(max_attempts=5))
    assert queue.name == queue_name("pull")
    assert "pull_target" in queue
    assert queue.rate_limits.max_concurrent_tasks == -1
    assert queue.retry_config.max_attempts == 5
    assert queue.state == tasks_v2beta2.Queue.State.RUNNING
    assert queue.task_ttl == datetime.timedelta(days=31)
    assert queue.tombstone_ttl == datetime.timedelta(hours=1)

    # A schedule_time in the past is now: the tasks are ordered as created, the oldest tagged "reports".
    pull_task(client, "pull", b"r1", "reports", "r1", schedule_time=ago(30))
    pull_task(client, "pull", b"e1", "emails", "e1")
    pull_task(client, "pull", b"r2", "reports", "r2")
    pull_task(client, "pull", b"e2", "emails", "e2")
    created = client.get_task(request={"name": f"{queue_name('pull')}/tasks/e1", "response_view": FULL})
    assert created.pull_message.tag == "emails" and created.pull_message.payload == b"e1"
    assert created.status.attempt_dispatch_count == 0
    oldest = client.get_task(name=f"{queue_name('pull')}/tasks/r1")
    assert oldest.schedule_time > ago(5) and oldest.pull_message.payload == b""  # BASIC by default

    # tag="emails": only emails, oldest first; the lease is in their schedule_time.
    before = datetime.datetime.now(datetime.UTC)
    emails = lease(client, filter='tag="emails"', seconds=120)
    assert [t.name.rsplit("/", 1)[1] for t in emails] == ["e1", "e2"]
    assert [t.pull_message.payload for t in emails] == [b"e1", b"e2"]
    for task in emails:
        assert before + datetime.timedelta(seconds=119) < task.schedule_time < before + datetime.timedelta(seconds=125)
        assert task.status.attempt_dispatch_count == 1
        assert task.view == FULL
    # The same lease shows in GetTask.
    assert client.get_task(name=emails[0].name).schedule_time == emails[0].schedule_time

    # oldest_tag(): the tag of the oldest task left, "reports"; BASIC omits payloads.
    reports = lease(client, filter="tag_function=oldest_tag()", view=BASIC)
    assert [t.name.rsplit("/", 1)[1] for t in reports] == ["r1", "r2"]
    assert all(t.pull_message.tag == "reports" and t.pull_message.payload == b"" for t in reports)
    assert lease(client) == []  # everything is leased

    # RenewLease: a new lease from now, named by the new schedule_time.
    renewed = client.renew_lease(request=tasks_v2beta2.RenewLeaseRequest(
        name=emails[0].name, schedule_time=emails[0].schedule_time, lease_duration=duration_pb2.Duration(seconds=600),
        response_view=FULL,
    ))
    assert renewed.schedule_time > emails[0].schedule_time + datetime.timedelta(seconds=400)
    assert renewed.pull_message.payload == b"e1"
    # The old schedule_time no longer names the lease.
    with pytest.raises(exceptions.FailedPrecondition) as refused:
        client.acknowledge_task(name=emails[0].name, schedule_time=emails[0].schedule_time)
    assert reason(refused.value) == "LEASE_LOST"
    client.acknowledge_task(name=renewed.name, schedule_time=renewed.schedule_time)
    with pytest.raises(exceptions.NotFound):
        client.get_task(name=renewed.name)

    # CancelLease: available again at once, to the next LeaseTasks.
    cancelled = client.cancel_lease(name=emails[1].name, schedule_time=emails[1].schedule_time)
    assert cancelled.schedule_time <= datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=1)
    assert cancelled.status.attempt_dispatch_count == 1
    again = lease(client, filter="tag=emails")
    assert [t.name for t in again] == [emails[1].name]
    assert again[0].status.attempt_dispatch_count == 2
    for task in [*again, *reports]:
        client.acknowledge_task(name=task.name, schedule_time=task.schedule_time)
    assert list(client.list_tasks(parent=queue_name("pull"))) == []

    # The name of an acknowledged task stays reserved for the tombstone TTL.
    with pytest.raises(exceptions.AlreadyExists):
        pull_task(client, "pull", b"again", name="e1")
    # The queue is a taskq pull queue, visible to taskq.v1 too.
    taskq_queue = server.queues.GetQueue(queue_service_pb2.GetQueueRequest(name="queues/pull")).queue
    assert taskq_queue.type == queue_pb2.QUEUE_TYPE_PULL
    assert taskq_queue.retry_config.max_attempts == 5


@pytest.mark.engines("rocksdb")
def test_a_lease_is_named_by_its_schedule_time_and_stale_ones_are_refused(fake_server, fake_client, clock):
    client = fake_client
    pull_queue(client)
    pull_task(client, "pull", b"x", name="t")
    [first] = lease(client, seconds=10)
    name = first.name

    # An unleased task, a made-up schedule_time: FAILED_PRECONDITION.
    later = datetime.datetime.fromtimestamp(clock.now_us() / 1e6 + 3600, datetime.UTC)
    unleased = pull_task(client, "pull", b"y", name="u", schedule_time=later)
    with pytest.raises(exceptions.FailedPrecondition):
        client.acknowledge_task(name=unleased.name, schedule_time=unleased.schedule_time)
    wrong = first.schedule_time + datetime.timedelta(microseconds=1)
    for call in (
        lambda: client.acknowledge_task(name=name, schedule_time=wrong),
        lambda: client.renew_lease(name=name, schedule_time=wrong, lease_duration=duration_pb2.Duration(seconds=5)),
        lambda: client.cancel_lease(name=name, schedule_time=wrong),
    ):
        with pytest.raises(exceptions.FailedPrecondition) as refused:
            call()
        assert reason(refused.value) == "LEASE_LOST"

    # The lease runs out: even before the reaper has seen it, it is lost.
    clock.advance(11)
    with pytest.raises(exceptions.FailedPrecondition):
        client.acknowledge_task(name=name, schedule_time=first.schedule_time)
    fake_server.reap()
    # Another worker leases it: the first worker's schedule_time names nothing it holds.
    [second] = lease(client, seconds=30)
    assert second.name == name and second.schedule_time > first.schedule_time
    assert second.status.attempt_dispatch_count == 2
    with pytest.raises(exceptions.FailedPrecondition):
        client.renew_lease(name=name, schedule_time=first.schedule_time, lease_duration=duration_pb2.Duration(seconds=5))
    # Renewal goes from now, to the microsecond, and is truncated to whole seconds.
    clock.advance(1)
    renewed = client.renew_lease(name=name, schedule_time=second.schedule_time,
                                 lease_duration=duration_pb2.Duration(seconds=20, nanos=900_000_000))
    assert renewed.schedule_time == second.schedule_time + datetime.timedelta(seconds=-30 + 1 + 20)
    with pytest.raises(exceptions.FailedPrecondition):
        client.acknowledge_task(name=name, schedule_time=second.schedule_time)
    client.acknowledge_task(name=name, schedule_time=renewed.schedule_time)
    with pytest.raises(exceptions.NotFound):
        client.acknowledge_task(name=name, schedule_time=renewed.schedule_time)


@pytest.mark.engines("rocksdb")
def test_a_pull_task_leased_max_attempts_times_is_gone_and_its_name_stays_taken(fake_server, fake_client, clock):
    """RetryConfig: after max_attempts "no further attempts will be made and the task will be
    deleted"; a pull task's attempts are its leases."""
    client = fake_client
    pull_queue(client, retry_config=tasks_v2beta2.RetryConfig(max_attempts=1))
    pull_task(client, "pull", b"x", name="t")
    [leased] = lease(client, seconds=10)
    clock.advance(11)
    fake_server.reap()
    assert fake_server.get_task("queues/pull/tasks/t").state == task_pb2.TASK_STATE_FAILED  # kept for task_ttl
    assert list(client.list_tasks(parent=queue_name("pull"))) == [] and lease(client) == []
    for call in (lambda: client.get_task(name=leased.name), lambda: client.delete_task(name=leased.name),
                 lambda: client.run_task(name=leased.name),
                 lambda: client.acknowledge_task(name=leased.name, schedule_time=leased.schedule_time)):
        with pytest.raises(exceptions.NotFound):
            call()
    with pytest.raises(exceptions.AlreadyExists):
        pull_task(client, "pull", b"again", name="t")


@pytest.mark.engines("rocksdb")
def test_pull_only_and_push_only_calls_are_refused_on_the_other_kind(app_server):
    client = client_for(app_server)
    pull_queue(client)
    task = pull_task(client, "pull", b"x", name="t")
    with pytest.raises(exceptions.FailedPrecondition) as refused:
        client.run_task(name=task.name)
    assert reason(refused.value) == "PULL_TASK"
    with pytest.raises(exceptions.NotFound):
        client.run_task(name=f"{queue_name('pull')}/tasks/missing")
    client.create_queue(parent=PARENT, queue=tasks_v2beta2.Queue(name=queue_name("push"),
                                                                 app_engine_http_target=tasks_v2beta2.AppEngineHttpTarget()))
    with pytest.raises(exceptions.FailedPrecondition) as refused:
        lease(client, "push")
    assert reason(refused.value) == "WRONG_QUEUE_TYPE"
    later = client.create_task(parent=queue_name("push"), task=tasks_v2beta2.Task(
        app_engine_http_request=tasks_v2beta2.AppEngineHttpRequest(relative_url="/later"), schedule_time=ahead(3600)))
    with pytest.raises(exceptions.FailedPrecondition):
        client.acknowledge_task(name=later.name, schedule_time=later.schedule_time)
    # The payload types belong to their queues.
    with pytest.raises(exceptions.InvalidArgument):
        pull_task(client, "push", b"x")
    with pytest.raises(exceptions.InvalidArgument):
        client.create_task(parent=queue_name("pull"), task=tasks_v2beta2.Task(
            app_engine_http_request=tasks_v2beta2.AppEngineHttpRequest(relative_url="/x")))
    with pytest.raises(exceptions.InvalidArgument):
        client.create_task(parent=queue_name("pull"), task=tasks_v2beta2.Task())


@pytest.mark.engines("rocksdb")
def test_queue_stats_come_with_the_read_mask(client):
    pull_queue(client)
    pull_task(client, "pull", b"1")
    pull_task(client, "pull", b"2")
    pull_task(client, "pull", b"3", schedule_time=ahead(3600))
    [leased, _] = lease(client, max_tasks=2)
    client.acknowledge_task(name=leased.name, schedule_time=leased.schedule_time)
    lease(client, max_tasks=1)

    plain = client.get_queue(name=queue_name("pull"))
    assert "stats" not in plain and plain.name == queue_name("pull")
    only_stats = client.get_queue(request={"name": queue_name("pull"), "read_mask": field_mask_pb2.FieldMask(
        paths=["stats"])})
    assert only_stats.name == "" and "rate_limits" not in only_stats
    stats = only_stats.stats
    assert stats.tasks_count == 2  # one leased, one scheduled; the acknowledged one is gone
    assert stats.executed_last_minute_count == 1
    assert stats.concurrent_dispatches_count == 1
    assert abs(stats.oldest_estimated_arrival_time - ahead(3600)) < datetime.timedelta(seconds=30)
    both = client.get_queue(request={"name": queue_name("pull"), "read_mask": {"paths": ["name", "stats.tasks_count"]}})
    assert both.name == queue_name("pull") and both.stats.tasks_count == 2 and both.stats.executed_last_minute_count == 0
    everything = client.get_queue(request={"name": queue_name("pull"), "read_mask": {"paths": ["*"]}})
    assert everything.stats.tasks_count == 2 and "pull_target" in everything

    pull_queue(client, "other")
    listed = client.list_queues(request={"parent": PARENT, "read_mask": {"paths": ["name", "stats"]}})
    counts = {q.name.rsplit("/", 1)[1]: q.stats.tasks_count for q in listed}
    assert counts == {"other": 0, "pull": 2}
    assert all("stats" not in q for q in client.list_queues(parent=PARENT))
    with pytest.raises(exceptions.InvalidArgument):
        client.get_queue(request={"name": queue_name("pull"), "read_mask": {"paths": ["no_such_field"]}})
