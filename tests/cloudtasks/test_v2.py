"""Google's official Cloud Tasks client (google-cloud-tasks, v2) against taskq, configured as an
emulator user would: an insecure channel to taskq's address, no credentials."""

from __future__ import annotations

import datetime

import grpc
import pytest
from google.api_core import exceptions
from google.cloud import tasks_v2
from google.protobuf import duration_pb2, field_mask_pb2, timestamp_pb2
from google.rpc import error_details_pb2

from harness import eventually
from taskq.v1 import queue_pb2, queue_service_pb2

PARENT = "projects/my-project/locations/us-central1"


@pytest.fixture
def server(app_server):
    return app_server


@pytest.fixture
def client(v2_client):
    return v2_client


def make_queue(client, queue_id="q", **fields):
    return client.create_queue(parent=PARENT, queue={"name": f"{PARENT}/queues/{queue_id}", **fields})


def test_a_queue_gets_cloud_tasks_defaults_and_its_name_round_trips(client):
    queue = make_queue(client)
    assert queue.name == f"{PARENT}/queues/q"
    assert queue.state == tasks_v2.Queue.State.RUNNING
    assert queue.rate_limits.max_dispatches_per_second == 500
    assert queue.rate_limits.max_concurrent_dispatches == 1000
    assert queue.rate_limits.max_burst_size == 100  # output only: from the rate
    assert queue.retry_config.max_attempts == 100
    assert queue.retry_config.min_backoff == datetime.timedelta(seconds=0.1)
    assert queue.retry_config.max_backoff == datetime.timedelta(seconds=3600)
    assert queue.retry_config.max_doublings == 16
    assert client.get_queue(name=queue.name) == queue
    with pytest.raises(exceptions.NotFound):  # the same id under another project is not this queue
        client.get_queue(name="projects/other/locations/us-central1/queues/q")
    with pytest.raises(exceptions.AlreadyExists):
        make_queue(client)


def test_a_state_given_to_create_queue_is_ignored_as_output_only(client):
    queue = make_queue(client, state=tasks_v2.Queue.State.PAUSED)
    assert queue.state == tasks_v2.Queue.State.RUNNING
    assert client.get_queue(name=queue.name).state == tasks_v2.Queue.State.RUNNING


def test_limits_are_cloud_tasks_own(client):
    with pytest.raises(exceptions.InvalidArgument):
        make_queue(client, rate_limits={"max_dispatches_per_second": 501})
    with pytest.raises(exceptions.InvalidArgument):
        make_queue(client, rate_limits={"max_concurrent_dispatches": 5001})
    with pytest.raises(exceptions.InvalidArgument):
        client.create_queue(parent=PARENT, queue={"name": "projects/my-project/locations/us-central1/queues/bad_name"})
    with pytest.raises(exceptions.InvalidArgument):
        client.create_queue(parent=PARENT, queue={"name": "projects/x/locations/y/queues/elsewhere"})
    queue = make_queue(client, retry_config={"max_attempts": -1})
    assert queue.retry_config.max_attempts == -1  # unlimited


def test_update_with_a_mask_changes_only_those_fields_and_creates_a_missing_queue(client):
    queue = make_queue(client, rate_limits={"max_dispatches_per_second": 10}, retry_config={"max_attempts": 5})
    updated = client.update_queue(queue={"name": queue.name, "rate_limits": {"max_dispatches_per_second": 20}},
                                  update_mask=field_mask_pb2.FieldMask(paths=["rate_limits.max_dispatches_per_second"]))
    assert updated.rate_limits.max_dispatches_per_second == 20
    assert updated.retry_config.max_attempts == 5
    created = client.update_queue(queue={"name": f"{PARENT}/queues/made-by-update"})
    assert created.name == f"{PARENT}/queues/made-by-update"
    with pytest.raises(exceptions.InvalidArgument):
        client.update_queue(queue={"name": queue.name}, update_mask=field_mask_pb2.FieldMask(paths=["state"]))


def test_queues_are_listed_a_page_at_a_time_and_filtered_by_state(client):
    for index in range(5):
        make_queue(client, f"q{index}")
    client.pause_queue(name=f"{PARENT}/queues/q3")
    pager = client.list_queues(request={"parent": PARENT, "page_size": 2})
    # (App Engine's default queue is there too: the server has an App Engine URL.)
    assert [queue.name.rsplit("/", 1)[1] for queue in pager] == ["default", "q0", "q1", "q2", "q3", "q4"]
    paused = client.list_queues(request={"parent": PARENT, "filter": "state: PAUSED"})
    assert [queue.name.rsplit("/", 1)[1] for queue in paused] == ["q3"]
    with pytest.raises(exceptions.InvalidArgument):
        list(client.list_queues(request={"parent": PARENT, "filter": "name: q1"}))


def test_http_tasks_reach_the_worker_with_cloud_tasks_headers(client, worker):
    queue = make_queue(client)
    task = client.create_task(parent=queue.name, task={
        "name": f"{queue.name}/tasks/order-7",
        "http_request": {"url": worker.url + "/orders?id=7", "http_method": tasks_v2.HttpMethod.PUT,
                         "headers": {"Content-Type": "application/json"}, "body": b'{"id": 7}'},
    })
    assert task.name == f"{queue.name}/tasks/order-7"
    eventually(lambda: worker.received("/orders"))
    got = worker.received("/orders")[0]
    assert (got.method, got.path, got.body) == ("PUT", "/orders?id=7", b'{"id": 7}')
    assert got.header("Content-Type") == "application/json"
    assert (got.header("X-CloudTasks-QueueName"), got.header("X-CloudTasks-TaskName")) == ("q", "order-7")
    eventually(lambda: list(client.list_tasks(parent=queue.name)) == [])
    with pytest.raises(exceptions.AlreadyExists) as raised:  # the name stays reserved after the task ran
        client.create_task(parent=queue.name, task={"name": task.name, "http_request": {"url": worker.url + "/x"}})
    assert task.name in raised.value.message


def test_app_engine_tasks_go_to_the_app(client, worker):
    queue = make_queue(client)
    client.create_task(parent=queue.name, task={"app_engine_http_request": {
        "relative_uri": "/handler?x=1", "body": b"payload", "headers": {"Content-Type": "text/plain"}}})
    eventually(lambda: worker.received("/handler"))
    got = worker.received("/handler")[0]
    assert (got.method, got.path, got.body, got.header("X-AppEngine-QueueName")) == ("POST", "/handler?x=1", b"payload", "q")


def test_tasks_are_read_in_basic_or_full_view_and_listed_a_page_at_a_time(client):
    queue = make_queue(client)
    client.pause_queue(name=queue.name)
    for index in range(5):
        client.create_task(parent=queue.name, task={
            "name": f"{queue.name}/tasks/t{index}",
            "http_request": {"url": "https://worker.example.com/t", "body": b"secret"},
            "dispatch_deadline": duration_pb2.Duration(seconds=60),
        })
    basic = client.get_task(name=f"{queue.name}/tasks/t0")
    assert basic.http_request.url == "https://worker.example.com/t" and basic.http_request.body == b""
    assert basic.view == tasks_v2.Task.View.BASIC
    assert basic.dispatch_deadline == datetime.timedelta(seconds=60)
    full = client.get_task(request={"name": f"{queue.name}/tasks/t0", "response_view": tasks_v2.Task.View.FULL})
    assert full.http_request.body == b"secret"
    listed = client.list_tasks(request={"parent": queue.name, "page_size": 2})
    assert sorted(task.name.rsplit("/", 1)[1] for task in listed) == ["t0", "t1", "t2", "t3", "t4"]
    client.delete_task(name=f"{queue.name}/tasks/t1")
    with pytest.raises(exceptions.NotFound):
        client.get_task(name=f"{queue.name}/tasks/t1")
    with pytest.raises(exceptions.NotFound):
        client.delete_task(name=f"{queue.name}/tasks/t1")
    client.purge_queue(name=queue.name)
    assert list(client.list_tasks(parent=queue.name)) == []


def test_pause_holds_tasks_until_resume_and_run_task_delivers_a_scheduled_one_now(client, worker):
    queue = make_queue(client)
    client.pause_queue(name=queue.name)
    client.create_task(parent=queue.name, task={"http_request": {"url": worker.url + "/held"}})
    later = timestamp_pb2.Timestamp(seconds=int(datetime.datetime.now().timestamp()) + 3600)
    scheduled = client.create_task(parent=queue.name, task={"http_request": {"url": worker.url + "/later"},
                                                            "schedule_time": later})
    assert worker.received() == []
    assert client.resume_queue(name=queue.name).state == tasks_v2.Queue.State.RUNNING
    eventually(lambda: worker.received("/held"))
    client.run_task(name=scheduled.name)
    eventually(lambda: worker.received("/later"))


def test_a_failing_handler_is_retried_and_its_attempts_show_on_the_task(client, worker):
    worker.answer("/fail", 500)
    queue = make_queue(client, retry_config={"min_backoff": duration_pb2.Duration(seconds=60)})
    task = client.create_task(parent=queue.name, task={"http_request": {"url": worker.url + "/fail"}})

    def answered():
        current = client.get_task(name=task.name)
        return current if current.response_count == 1 and current.last_attempt.response_time else None

    current = eventually_value(answered)
    assert current.dispatch_count == 1
    assert current.last_attempt.response_status.code == grpc.StatusCode.INTERNAL.value[0]
    assert "HTTP 500" in current.last_attempt.response_status.message
    assert current.first_attempt.dispatch_time


def eventually_value(condition, seconds: float = 30):
    found = []
    eventually(lambda: found.append(condition()) or found[-1] is not None, seconds)
    return found[-1]


def test_bad_requests_get_cloud_tasks_errors(client):
    queue = make_queue(client)
    with pytest.raises(exceptions.InvalidArgument):  # a task needs a target
        client.create_task(parent=queue.name, task={})
    with pytest.raises(exceptions.InvalidArgument):
        client.create_task(parent=queue.name, task={"http_request": {"url": "ftp://x.example.com/"}})
    with pytest.raises(exceptions.InvalidArgument):  # GET has no body
        client.create_task(parent=queue.name, task={"http_request": {
            "url": "https://x.example.com/", "http_method": tasks_v2.HttpMethod.GET, "body": b"x"}})
    with pytest.raises(exceptions.InvalidArgument):
        far = timestamp_pb2.Timestamp(seconds=int(datetime.datetime.now().timestamp()) + 31 * 86400)
        client.create_task(parent=queue.name, task={"http_request": {"url": "https://x.example.com/"},
                                                    "schedule_time": far})
    with pytest.raises(exceptions.InvalidArgument):  # HTTP targets: at most 30 minutes
        client.create_task(parent=queue.name, task={"http_request": {"url": "https://x.example.com/"},
                                                    "dispatch_deadline": duration_pb2.Duration(seconds=1801)})
    with pytest.raises(exceptions.NotFound):
        client.create_task(parent=f"{PARENT}/queues/missing", task={"http_request": {"url": "https://x.example.com/"}})
    with pytest.raises(exceptions.NotFound):
        client.get_task(name=f"{queue.name}/tasks/missing")
    with pytest.raises(exceptions.InvalidArgument):
        client.get_task(name="queues/q/tasks/x")  # a taskq.v1 name, not a Cloud Tasks one


def test_iam_is_answered_honestly(client):
    queue = make_queue(client)
    allowed = client.test_iam_permissions(resource=queue.name, permissions=["cloudtasks.tasks.create", "storage.x"])
    assert list(allowed.permissions) == ["cloudtasks.tasks.create"]
    # "If the resource does not exist, this will return an empty set of permissions, not a NOT_FOUND error."
    missing = client.test_iam_permissions(resource=f"{PARENT}/queues/missing", permissions=["cloudtasks.tasks.create"])
    assert list(missing.permissions) == []
    with pytest.raises(exceptions.MethodNotImplemented):
        client.get_iam_policy(resource=queue.name)
    with pytest.raises(exceptions.MethodNotImplemented):
        client.set_iam_policy(request={"resource": queue.name, "policy": {}})


def test_queues_made_through_taskq_v1_are_visible_under_any_project_and_the_same_queue(client, server):
    server.create_queue("shared", queue_pb2.QUEUE_TYPE_PUSH,
                        rate_limits=queue_pb2.RateLimits(max_dispatches_per_second=7))
    seen = client.get_queue(name=f"{PARENT}/queues/shared")
    assert seen.rate_limits.max_dispatches_per_second == 7
    client.pause_queue(name=seen.name)
    stored = server.queues.GetQueue(queue_service_pb2.GetQueueRequest(name="queues/shared")).queue
    assert stored.state == queue_pb2.QUEUE_STATE_PAUSED
    made = make_queue(client, "from-cloud-tasks")
    via_v1 = server.queues.GetQueue(queue_service_pb2.GetQueueRequest(name="queues/from-cloud-tasks")).queue
    assert via_v1.rate_limits.max_dispatches_per_second == 500 and made.name.endswith("/from-cloud-tasks")
    client.delete_queue(name=made.name)
    with pytest.raises(exceptions.NotFound):
        client.get_queue(name=made.name)


def test_error_details_name_queues_and_tasks_as_the_caller_did(client, server, worker):
    server.create_queue("streamed", queue_pb2.QUEUE_TYPE_PUSH)  # taskq.v1 workers' queue: no HTTP target
    with pytest.raises(exceptions.InvalidArgument) as refused:
        client.create_task(parent=f"{PARENT}/queues/streamed", task={"http_request": {"url": worker.url + "/x"}})
    [bad_request] = [d for d in refused.value.details if isinstance(d, error_details_pb2.BadRequest)]
    [violation] = bad_request.field_violations
    assert violation.description.startswith(f"{PARENT}/queues/streamed is not delivered over HTTP")

    # RunTask on a task being delivered: its PreconditionFailure names the task as the caller did.
    worker.answer("/slow", delay=30)
    queue = make_queue(client)
    task = client.create_task(parent=queue.name, task={"http_request": {"url": worker.url + "/slow"}})
    eventually(lambda: worker.received("/slow"))
    with pytest.raises(exceptions.FailedPrecondition) as leased:
        client.run_task(name=task.name)
    [failure] = [d for d in leased.value.details if isinstance(d, error_details_pb2.PreconditionFailure)]
    assert [v.subject for v in failure.violations] == [task.name]
