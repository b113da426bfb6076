"""Cloud Tasks v2beta2 on taskq, through Google's official Python client (google-cloud-tasks)
configured as an emulator user would: an insecure channel to taskq's port, no credentials.

Pull queues (LeaseTasks, RenewLease, AcknowledgeTask, CancelLease, leases named by their
schedule_time), queue stats behind the read mask, App Engine tasks really delivered to an
HTTP worker, paging, pause/resume/purge, and the documented errors.
"""

from __future__ import annotations

import datetime

import grpc
import pytest
from google.api import httpbody_pb2
from google.api_core import exceptions
from google.cloud import tasks_v2beta2
from google.cloud.tasks_v2beta2.services.cloud_tasks.transports import CloudTasksGrpcTransport
from google.protobuf import duration_pb2, field_mask_pb2

from harness import ServerHarness, error_reason, eventually
from taskq.v1 import queue_pb2, queue_service_pb2

PARENT = "projects/my-project/locations/us-central1"
FULL = tasks_v2beta2.Task.View.FULL
BASIC = tasks_v2beta2.Task.View.BASIC


def client_for(server: ServerHarness) -> tasks_v2beta2.CloudTasksClient:
    channel = grpc.insecure_channel(server.address)
    return tasks_v2beta2.CloudTasksClient(transport=CloudTasksGrpcTransport(channel=channel))


@pytest.fixture
def client(server):
    return client_for(server)


@pytest.fixture
def fake_client(fake_server):
    return client_for(fake_server)


def queue_name(queue_id: str) -> str:
    return f"{PARENT}/queues/{queue_id}"


def pull_queue(client, queue_id: str = "pull", **fields) -> tasks_v2beta2.Queue:
    queue = tasks_v2beta2.Queue(name=queue_name(queue_id), pull_target=tasks_v2beta2.PullTarget(), **fields)
    return client.create_queue(parent=PARENT, queue=queue)


def pull_task(client, queue_id: str, payload: bytes = b"", tag: str = "", name: str = "", **fields) -> tasks_v2beta2.Task:
    task = tasks_v2beta2.Task(pull_message=tasks_v2beta2.PullMessage(payload=payload, tag=tag), **fields)
    if name:
        task.name = f"{queue_name(queue_id)}/tasks/{name}"
    return client.create_task(parent=queue_name(queue_id), task=task)


def lease(client, queue_id: str = "pull", seconds: int = 60, max_tasks: int = 10, filter: str = "",
          view=FULL) -> list[tasks_v2beta2.Task]:
    response = client.lease_tasks(request=tasks_v2beta2.LeaseTasksRequest(
        parent=queue_name(queue_id), lease_duration=duration_pb2.Duration(seconds=seconds), max_tasks=max_tasks,
        filter=filter, response_view=view,
    ))
    return list(response.tasks)


def ago(seconds: float) -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC) - datetime.timedelta(seconds=seconds)


def ahead(seconds: float) -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=seconds)


def reason(error: exceptions.GoogleAPICallError) -> str:
    assert isinstance(error.response, grpc.RpcError)
    return error_reason(error.response)


# Pull queues ---------------------------------------------------------------------------------


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


# App Engine queues ---------------------------------------------------------------------------


def test_app_engine_tasks_are_delivered_to_the_app_and_its_services(app_server, worker, other_worker):
    client = client_for(app_server)
    queue = client.create_queue(parent=PARENT, queue=tasks_v2beta2.Queue(
        name=queue_name("mail"), app_engine_http_target=tasks_v2beta2.AppEngineHttpTarget(),
        rate_limits=tasks_v2beta2.RateLimits(max_tasks_dispatched_per_second=20, max_concurrent_tasks=10),
    ))
    assert "app_engine_http_target" in queue
    assert queue.rate_limits.max_tasks_dispatched_per_second == 20
    assert queue.rate_limits.max_concurrent_tasks == 10
    assert queue.retry_config.max_attempts == 100
    assert queue.retry_config.min_backoff == datetime.timedelta(seconds=0.1)

    task = client.create_task(parent=queue_name("mail"), task=tasks_v2beta2.Task(
        name=f"{queue_name('mail')}/tasks/welcome-42",
        app_engine_http_request=tasks_v2beta2.AppEngineHttpRequest(
            http_method=tasks_v2beta2.HttpMethod.PUT, relative_url="/send?to=42",
            headers={"Content-Type": "application/json"}, payload=b'{"hello": 42}',
        ),
    ))
    assert task.app_engine_http_request.relative_url == "/send?to=42"
    eventually(lambda: worker.received("/send"))
    got = worker.received("/send")[0]
    assert (got.method, got.path, got.body) == ("PUT", "/send?to=42", b'{"hello": 42}')
    assert got.header("Content-Type") == "application/json"
    assert got.header("X-AppEngine-QueueName") == "mail"
    assert got.header("X-AppEngine-TaskName") == "welcome-42"

    def gone(name: str) -> bool:
        try:
            client.get_task(name=name)
        except exceptions.NotFound:
            return True
        return False

    eventually(lambda: gone(task.name))

    # Routed to the `worker` service: shown as such, delivered to its URL by RunTask.
    later = client.create_task(request={"parent": queue_name("mail"), "response_view": FULL, "task": tasks_v2beta2.Task(
        schedule_time=ahead(3600),
        app_engine_http_request=tasks_v2beta2.AppEngineHttpRequest(
            relative_url="/resize", app_engine_routing=tasks_v2beta2.AppEngineRouting(service="worker"), payload=b"img",
        ),
    )})
    assert later.app_engine_http_request.app_engine_routing.service == "worker"
    assert later.app_engine_http_request.relative_url == "/resize"
    assert later.app_engine_http_request.payload == b"img"
    assert later.app_engine_http_request.http_method == tasks_v2beta2.HttpMethod.POST
    run = client.run_task(name=later.name)
    assert run.schedule_time <= datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=1)
    eventually(lambda: other_worker.received("/resize"))
    assert other_worker.received("/resize")[0].body == b"img"
    eventually(lambda: gone(later.name))
    assert worker.received("/resize") == []

    # A failed attempt shows in the task's status.
    worker.answer("/fail", 500)
    failing = client.create_task(parent=queue_name("mail"), task=tasks_v2beta2.Task(
        app_engine_http_request=tasks_v2beta2.AppEngineHttpRequest(relative_url="/fail")))

    def attempted() -> bool:
        status = client.get_task(name=failing.name).status
        return status.attempt_response_count >= 1 and "response_status" in status.last_attempt_status

    eventually(attempted)
    status = client.get_task(name=failing.name).status
    assert status.attempt_dispatch_count >= 1 and status.first_attempt_status.dispatch_time
    assert status.last_attempt_status.response_status.code != 0
    client.delete_task(name=failing.name)


@pytest.mark.engines("rocksdb")
def test_http_target_queues_deliver_http_requests(app_server, worker):
    client = client_for(app_server)
    queue = client.create_queue(parent=PARENT, queue=tasks_v2beta2.Queue(
        name=queue_name("hooks"), http_target=tasks_v2beta2.HttpTarget(header_overrides=[
            {"header": {"key": "X-Env", "value": "test"}}, {"header": {"key": "User-Agent", "value": "queue"}}]),
    ))
    assert "http_target" in queue and queue.http_target.header_overrides[0].header.key == "X-Env"
    client.create_task(parent=queue_name("hooks"), task=tasks_v2beta2.Task(http_request=tasks_v2beta2.HttpRequest(
        url=f"{worker.url}/hook", http_method=tasks_v2beta2.HttpMethod.POST, body=b"ping",
        headers={"User-Agent": "mine"})))
    eventually(lambda: worker.received("/hook"))
    got = worker.received("/hook")[0]
    assert (got.body, got.header("X-Env")) == (b"ping", "test")
    # HttpRequest.headers: "User-Agent: This will be set to "Google-Cloud-Tasks"", whoever sets another.
    assert got.header("User-Agent") == "Google-Cloud-Tasks"
    with pytest.raises(exceptions.InvalidArgument):  # App Engine requests need an App Engine queue
        client.create_task(parent=queue_name("hooks"), task=tasks_v2beta2.Task(
            app_engine_http_request=tasks_v2beta2.AppEngineHttpRequest(relative_url="/x")))


@pytest.mark.engines("rocksdb")
def test_app_engine_queues_need_the_app_url(client):
    with pytest.raises(exceptions.FailedPrecondition) as refused:
        client.create_queue(parent=PARENT, queue=tasks_v2beta2.Queue(
            name=queue_name("mail"), app_engine_http_target=tasks_v2beta2.AppEngineHttpTarget()))
    assert reason(refused.value) == "APP_ENGINE_URL_UNSET"


# Queues: paging, updates, pause/resume/purge -------------------------------------------------


@pytest.mark.engines("rocksdb")
def test_tasks_and_queues_are_listed_in_pages(client):
    pull_queue(client)
    for index in range(25):
        pull_task(client, "pull", str(index).encode(), name=f"t{index:02d}")
    pager = client.list_tasks(request={"parent": queue_name("pull"), "page_size": 10, "response_view": FULL})
    pages = list(pager.pages)
    assert [len(page.tasks) for page in pages] == [10, 10, 5]
    names = [t.name.rsplit("/", 1)[1] for page in pages for t in page.tasks]
    assert names == [f"t{index:02d}" for index in range(25)]
    assert pages[0].tasks[3].pull_message.payload == b"3"
    assert len(list(client.list_tasks(parent=queue_name("pull")))) == 25  # unspecified: up to 1000 a page

    for queue_id in ("q1", "q2", "q3", "q4"):
        pull_queue(client, queue_id)
    queue_pages = list(client.list_queues(request={"parent": PARENT, "page_size": 2}).pages)
    assert [[q.name.rsplit("/", 1)[1] for q in page.queues] for page in queue_pages] == [
        ["pull", "q1"], ["q2", "q3"], ["q4"]]
    # Queues of another project or location are not theirs.
    assert list(client.list_queues(parent="projects/other/locations/us-central1")) == []
    with pytest.raises(exceptions.NotFound):
        client.get_queue(name="projects/other/locations/us-central1/queues/pull")
    # A token is bound to its filter.
    first = client.list_queues(request={"parent": PARENT, "page_size": 2}).next_page_token
    with pytest.raises(exceptions.InvalidArgument):
        client.list_queues(request={"parent": PARENT, "page_size": 2, "page_token": first, "filter": "state: PAUSED"})


@pytest.mark.engines("rocksdb")
def test_pause_resume_and_purge(client):
    pull_queue(client)
    for index in range(3):
        pull_task(client, "pull", str(index).encode())
    paused = client.pause_queue(name=queue_name("pull"))
    assert paused.state == tasks_v2beta2.Queue.State.PAUSED
    pull_task(client, "pull", b"added while paused")  # "Tasks can still be added when the queue is paused"
    with pytest.raises(exceptions.FailedPrecondition) as refused:
        lease(client)
    assert reason(refused.value) == "QUEUE_PAUSED"
    pull_queue(client, "running")
    assert [q.name for q in client.list_queues(request={"parent": PARENT, "filter": "state: PAUSED"})] == [queue_name("pull")]
    assert [q.name for q in client.list_queues(request={"parent": PARENT, "filter": "state = RUNNING AND pull_target: *"})] == [
        queue_name("running")]
    assert client.resume_queue(name=queue_name("pull")).state == tasks_v2beta2.Queue.State.RUNNING
    assert len(lease(client, max_tasks=1)) == 1

    purged = client.purge_queue(name=queue_name("pull"))
    assert purged.purge_time and purged.purge_time <= datetime.datetime.now(datetime.UTC)
    assert list(client.list_tasks(parent=queue_name("pull"))) == []
    assert lease(client) == []
    pull_task(client, "pull", b"after the purge")
    assert len(lease(client)) == 1

    client.delete_queue(name=queue_name("pull"))
    with pytest.raises(exceptions.NotFound):
        client.get_queue(name=queue_name("pull"))


@pytest.mark.engines("rocksdb")
def test_update_queue_changes_what_the_mask_names_and_creates_missing_queues(app_server):
    client = client_for(app_server)
    created = client.update_queue(queue=tasks_v2beta2.Queue(name=queue_name("made"), pull_target={}))
    assert "pull_target" in created and created.retry_config.max_attempts == 100
    updated = client.update_queue(
        queue=tasks_v2beta2.Queue(name=queue_name("made"), retry_config=tasks_v2beta2.RetryConfig(unlimited_attempts=True),
                                  rate_limits=tasks_v2beta2.RateLimits(max_tasks_dispatched_per_second=3)),
        update_mask=field_mask_pb2.FieldMask(paths=["retry_config.unlimited_attempts", "rate_limits"]),
    )
    assert updated.retry_config.unlimited_attempts and "pull_target" in updated
    assert updated.rate_limits.max_tasks_dispatched_per_second == 0  # output only on pull queues

    client.create_queue(parent=PARENT, queue=tasks_v2beta2.Queue(
        name=queue_name("push"), app_engine_http_target={}, rate_limits={"max_tasks_dispatched_per_second": 100,
                                                                           "max_burst_size": 50}))
    faster = client.update_queue(
        queue=tasks_v2beta2.Queue(name=queue_name("push"), rate_limits={"max_tasks_dispatched_per_second": 200},
                                  task_ttl=datetime.timedelta(days=2)),
        update_mask={"paths": ["rate_limits.max_tasks_dispatched_per_second", "task_ttl"]},
    )
    assert faster.rate_limits.max_tasks_dispatched_per_second == 200
    assert faster.rate_limits.max_burst_size == 40  # derived from the new rate again
    assert faster.task_ttl == datetime.timedelta(days=2)
    assert "app_engine_http_target" in faster and faster.retry_config.max_attempts == 100
    with pytest.raises(exceptions.InvalidArgument) as refused:
        client.update_queue(queue=tasks_v2beta2.Queue(name=queue_name("push"), pull_target={}))
    assert reason(refused.value) == "FIELD_NOT_UPDATABLE"
    with pytest.raises(exceptions.InvalidArgument):
        client.update_queue(queue=tasks_v2beta2.Queue(name=queue_name("push")), update_mask={"paths": ["nope"]})


# Errors, IAM, queue.yaml ---------------------------------------------------------------------


@pytest.mark.engines("rocksdb")
def test_documented_errors(app_server):
    client = client_for(app_server)
    with pytest.raises(exceptions.NotFound):
        client.get_queue(name=queue_name("missing"))
    with pytest.raises(exceptions.NotFound):
        pull_task(client, "missing", b"x")
    pull_queue(client)
    with pytest.raises(exceptions.AlreadyExists):
        pull_queue(client)
    with pytest.raises(exceptions.NotFound) as missing:
        client.get_task(name=f"{queue_name('pull')}/tasks/missing")
    assert f"{queue_name('pull')}/tasks/missing" in missing.value.message  # named as the caller did
    pull_task(client, "pull", b"x", name="taken")
    with pytest.raises(exceptions.AlreadyExists):
        pull_task(client, "pull", b"y", name="taken")
    client.delete_task(name=f"{queue_name('pull')}/tasks/taken")
    with pytest.raises(exceptions.AlreadyExists):  # reserved for the tombstone TTL
        pull_task(client, "pull", b"y", name="taken")

    invalid = [
        lambda: client.get_queue(name="queues/pull"),
        lambda: client.get_queue(name=f"{PARENT}/queues/bad_name"),
        lambda: pull_queue(client, "x" * 101),
        lambda: client.create_queue(parent=PARENT, queue=tasks_v2beta2.Queue(name="projects/o/locations/l/queues/q",
                                                                             pull_target={})),
        lambda: client.create_queue(parent=PARENT, queue=tasks_v2beta2.Queue(
            name=queue_name("fast"), app_engine_http_target={}, rate_limits={"max_tasks_dispatched_per_second": 501})),
        lambda: client.create_queue(parent=PARENT, queue=tasks_v2beta2.Queue(
            name=queue_name("wide"), app_engine_http_target={}, rate_limits={"max_concurrent_tasks": 5001})),
        lambda: client.create_queue(parent=PARENT, queue=tasks_v2beta2.Queue(
            name=queue_name("burst"), app_engine_http_target={}, rate_limits={"max_burst_size": 501})),
        lambda: client.create_queue(parent=PARENT, queue=tasks_v2beta2.Queue(
            name=queue_name("neg"), pull_target={}, retry_config={"max_attempts": -1})),
        lambda: pull_task(client, "pull", b"x", tag="t" * 500),
        lambda: pull_task(client, "pull", b"x", schedule_time=ahead(31 * 86400)),
        lambda: pull_task(client, "pull", b"x", name="bad/name"),
        lambda: lease(client, max_tasks=1001),
        lambda: lease(client, seconds=7 * 86400 + 1),
        lambda: lease(client, filter="tag_function=newest_tag()"),
        lambda: lease(client, filter="state=READY"),
        lambda: lease(client, filter="tag=" + "t" * 500),
        lambda: client.lease_tasks(parent=queue_name("pull"), lease_duration=None),  # lease_duration is required
        lambda: client.acknowledge_task(name=f"{queue_name('pull')}/tasks/x"),  # schedule_time is required
        lambda: client.list_tasks(request={"parent": queue_name("pull"), "page_token": "forged"}),
    ]
    for index, call in enumerate(invalid):
        with pytest.raises(exceptions.InvalidArgument):
            call()
            pytest.fail(f"call {index} was not refused")

    client.create_queue(parent=PARENT, queue=tasks_v2beta2.Queue(name=queue_name("app"), app_engine_http_target={}))
    for request in (
        tasks_v2beta2.AppEngineHttpRequest(relative_url="no-slash"),
        tasks_v2beta2.AppEngineHttpRequest(relative_url="/x", http_method=tasks_v2beta2.HttpMethod.GET, payload=b"b"),
        tasks_v2beta2.AppEngineHttpRequest(relative_url="/x", http_method=tasks_v2beta2.HttpMethod.PATCH, payload=b"b"),
        tasks_v2beta2.AppEngineHttpRequest(relative_url="/x", headers={"X-AppEngine-QueueName": "forged"}),
        tasks_v2beta2.AppEngineHttpRequest(relative_url="/x", headers={"X-Google-Thing": "y"}),
        tasks_v2beta2.AppEngineHttpRequest(relative_url="/x", payload=b"x" * (100 * 1024 + 1)),
    ):
        with pytest.raises(exceptions.InvalidArgument):
            client.create_task(parent=queue_name("app"), task=tasks_v2beta2.Task(app_engine_http_request=request))
    with pytest.raises(exceptions.InvalidArgument):
        client.create_task(parent=queue_name("app"), task=tasks_v2beta2.Task(
            http_request=tasks_v2beta2.HttpRequest(url="/relative")))
    # A pull task may be up to 1 MB.
    pull_task(client, "pull", b"x" * (1000 * 1024))


@pytest.mark.engines("rocksdb")
def test_iam_is_answered_honestly(client):
    pull_queue(client)
    with pytest.raises(exceptions.MethodNotImplemented):
        client.get_iam_policy(request={"resource": queue_name("pull")})
    with pytest.raises(exceptions.MethodNotImplemented):
        client.set_iam_policy(request={"resource": queue_name("pull"), "policy": {}})
    with pytest.raises(exceptions.NotFound):
        client.get_iam_policy(request={"resource": queue_name("missing")})
    wanted = ["cloudtasks.tasks.create", "cloudtasks.queues.get", "storage.buckets.get"]
    held = client.test_iam_permissions(request={"resource": queue_name("pull"), "permissions": wanted})
    assert list(held.permissions) == wanted[:2]
    # "If the resource does not exist, this will return an empty set of permissions."
    assert list(client.test_iam_permissions(request={"resource": queue_name("missing"),
                                                     "permissions": wanted}).permissions) == []


@pytest.mark.engines("rocksdb")
def test_upload_queue_yaml_declares_its_queues(app_server, worker):
    client = client_for(app_server)
    yaml = b"queue:\n- name: uploads\n  rate: 10/s\n  bucket_size: 20\n- name: pulled\n  mode: pull\n"
    client.upload_queue_yaml(request={"app_id": "my-project", "http_body": httpbody_pb2.HttpBody(
        content_type="application/x-yaml", data=yaml)})
    push = client.get_queue(name=queue_name("uploads"))
    assert "app_engine_http_target" in push
    assert push.rate_limits.max_tasks_dispatched_per_second == 10 and push.rate_limits.max_burst_size == 20
    assert "pull_target" in client.get_queue(name=queue_name("pulled"))
    with pytest.raises(exceptions.InvalidArgument) as refused:
        client.upload_queue_yaml(request={"app_id": "my-project", "http_body": {"data": b"queue:\n- name: bad_name\n"}})
    assert "queue.yaml:2" in refused.value.message
    with pytest.raises(exceptions.InvalidArgument):
        client.upload_queue_yaml(request={"app_id": "my-project"})

