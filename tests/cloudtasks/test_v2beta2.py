"""Cloud Tasks v2beta2 on taskq, through Google's official Python client (google-cloud-tasks)
configured as an emulator user would: an insecure channel to taskq's port, no credentials.

App Engine and HTTP queues with their tasks really delivered to HTTP workers, paging,
pause/resume/purge, updates, and the documented errors (pull queues: test_v2beta2_pull.py).
"""

from __future__ import annotations

import datetime

import pytest
from cloudtasks.helpers import FULL, PARENT, ahead, client_for, lease, pull_queue, pull_task, queue_name, reason
from google.api import httpbody_pb2
from google.api_core import exceptions
from google.cloud import tasks_v2beta2
from google.protobuf import field_mask_pb2

from harness import eventually
from taskq.v1 import task_pb2


@pytest.fixture
def client(v2beta2_client):
    return v2beta2_client


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


def test_a_push_task_whose_attempts_ran_out_is_gone_and_its_name_stays_taken(app_server, worker):
    client = client_for(app_server)
    client.create_queue(parent=PARENT, queue=tasks_v2beta2.Queue(
        name=queue_name("once"), app_engine_http_target={}, retry_config={"max_attempts": 1}))
    worker.answer("/fail", 500)
    name = f"{queue_name('once')}/tasks/doomed"
    client.create_task(parent=queue_name("once"), task=tasks_v2beta2.Task(
        name=name, app_engine_http_request=tasks_v2beta2.AppEngineHttpRequest(relative_url="/fail")))
    # taskq keeps it FAILED for task_ttl (taskq.v1 shows it); Cloud Tasks has deleted it.
    eventually(lambda: app_server.get_task("queues/once/tasks/doomed").state == task_pb2.TASK_STATE_FAILED)
    assert list(client.list_tasks(parent=queue_name("once"))) == []
    for call in (client.get_task, client.delete_task, client.run_task):
        with pytest.raises(exceptions.NotFound):
            call(name=name)
    with pytest.raises(exceptions.AlreadyExists):
        client.create_task(parent=queue_name("once"), task=tasks_v2beta2.Task(
            name=name, app_engine_http_request=tasks_v2beta2.AppEngineHttpRequest(relative_url="/again")))


@pytest.mark.engines("rocksdb")
def test_http_target_queues_deliver_http_requests(app_server, worker):
    client = client_for(app_server)
    queue = client.create_queue(parent=PARENT, queue=tasks_v2beta2.Queue(
        name=queue_name("hooks"), http_target=tasks_v2beta2.HttpTarget(http_method=tasks_v2beta2.HttpMethod.PUT, header_overrides=[
            {"header": {"key": "X-Env", "value": "test"}}, {"header": {"key": "User-Agent", "value": "queue"}}]),
    ))
    assert "http_target" in queue and queue.http_target.header_overrides[0].header.key == "X-Env"
    task = client.create_task(parent=queue_name("hooks"), task=tasks_v2beta2.Task(http_request=tasks_v2beta2.HttpRequest(
        url=f"{worker.url}/hook", http_method=tasks_v2beta2.HttpMethod.POST, body=b"ping",
        headers={"User-Agent": "mine"})))
    # The queue's http_method "overrides HttpRequest for the task".
    assert task.http_request.http_method == tasks_v2beta2.HttpMethod.PUT
    eventually(lambda: worker.received("/hook"))
    got = worker.received("/hook")[0]
    assert (got.method, got.body, got.header("X-Env")) == ("PUT", b"ping", "test")
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

