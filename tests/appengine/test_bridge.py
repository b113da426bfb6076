"""The App Engine API bridge through Google's own SDK: every served call of
google.appengine.api.taskqueue, and its errors arriving as the SDK's exceptions."""

from __future__ import annotations

import datetime
import time
import urllib.request

import pytest

from harness import eventually
from taskq.v1 import queue_pb2, queue_service_pb2, task_pb2, task_service_pb2

pytestmark = pytest.mark.engines("rocksdb")


def pull_queue(server, queue_id="pull"):
    server.create_queue(queue_id, queue_pb2.QUEUE_TYPE_PULL)
    return queue_id


def test_add_to_the_implicit_default_queue_pushes_to_the_app_with_app_engine_headers(sdk, bridge_server, worker):
    default = bridge_server.queues.GetQueue(queue_service_pb2.GetQueueRequest(name="queues/default")).queue
    assert (default.rate_limits.max_dispatches_per_second, default.rate_limits.max_burst_size) == (5, 5)
    assert default.http_target.uri == worker.url
    task = sdk.add(url="/worker", params={"key": "v"}, headers={"X-Custom": "yes"})
    assert task.was_enqueued and task.name and task.queue_name == "default"
    eventually(lambda: worker.received("/worker"))
    got = worker.received("/worker")[0]
    assert (got.method, got.path, got.body) == ("POST", "/worker", b"key=v")
    assert got.header("Content-Type") == "application/x-www-form-urlencoded"
    assert got.header("X-Custom") == "yes"
    assert got.header("X-AppEngine-QueueName") == "default"
    assert got.header("X-AppEngine-TaskName") == task.name
    assert got.header("X-AppEngine-Api-Ticket")  # so the handler may call the API itself
    assert got.header("Host") == f"127.0.0.1:{worker.port}"  # not the SDK's Host header


def test_get_tasks_carry_their_params_in_the_url_and_named_tasks_deduplicate(sdk, bridge_server, worker):
    bridge_server.queues.PauseQueue(queue_service_pb2.PauseQueueRequest(name="queues/default"))
    sdk.add(url="/get", method="GET", params={"a": "1"}, name="only-once")
    with pytest.raises(sdk.TaskAlreadyExistsError):
        sdk.add(url="/get", method="GET", name="only-once")
    bridge_server.queues.ResumeQueue(queue_service_pb2.ResumeQueueRequest(name="queues/default"))
    eventually(lambda: worker.received("/get"))
    assert worker.received("/get")[0].path == "/get?a=1"
    assert worker.received("/get")[0].method == "GET"
    eventually(lambda: bridge_server.stats("default").tasks_count == 0)
    with pytest.raises(sdk.TombstonedTaskError):  # finished: its name stays reserved
        sdk.add(url="/get", method="GET", name="only-once")


def test_countdown_and_eta_schedule_the_task(sdk, bridge_server):
    bridge_server.queues.PauseQueue(queue_service_pb2.PauseQueueRequest(name="queues/default"))
    later = sdk.add(url="/later", countdown=600)
    eta = datetime.datetime.now(datetime.UTC) + datetime.timedelta(hours=2)
    at = sdk.add(url="/at", eta=eta)
    stored = bridge_server.get_task(f"queues/default/tasks/{later.name}")
    assert abs(stored.schedule_time.ToSeconds() - (time.time() + 600)) < 30
    stored = bridge_server.get_task(f"queues/default/tasks/{at.name}")
    assert abs(stored.schedule_time.ToSeconds() - eta.timestamp()) < 1
    assert stored.state == task_pb2.TASK_STATE_SCHEDULED


def test_queue_add_with_many_tasks_adds_all_or_names_the_failure(sdk, bridge_server):
    queue = sdk.Queue("default")
    bridge_server.queues.PauseQueue(queue_service_pb2.PauseQueueRequest(name="queues/default"))
    added = queue.add([sdk.Task(url=f"/t/{i}", payload=f"p{i}") for i in range(50)])
    assert all(task.was_enqueued for task in added)
    assert bridge_server.stats("default").tasks_count == 50
    queue.add(sdk.Task(url="/x", name="taken"))
    with pytest.raises(sdk.TaskAlreadyExistsError):
        queue.add([sdk.Task(url="/x", name="fresh"), sdk.Task(url="/x", name="taken")])
    assert bridge_server.get_task("queues/default/tasks/fresh").name  # added on its own (not transactional)


def test_a_task_with_retry_options_and_a_dispatch_deadline_keeps_them(sdk, bridge_server):
    bridge_server.queues.PauseQueue(queue_service_pb2.PauseQueueRequest(name="queues/default"))
    options = sdk.TaskRetryOptions(task_retry_limit=3, min_backoff_seconds=2, max_backoff_seconds=20,
                                   max_doublings=1, task_age_limit=3600)
    task = sdk.add(url="/r", retry_options=options, dispatch_deadline_usec=60_000_000)
    stored = bridge_server.get_task(f"queues/default/tasks/{task.name}")
    retry = stored.retry_config
    assert (retry.max_attempts, retry.min_backoff.seconds, retry.max_backoff.seconds, retry.max_doublings) == (4, 2, 20, 1)
    assert retry.max_retry_duration.seconds == 3600
    assert stored.dispatch_deadline.seconds == 60


def test_pull_tasks_are_leased_by_tag_renewed_and_deleted(sdk, bridge_server):
    queue = sdk.Queue(pull_queue(bridge_server))
    queue.add([sdk.Task(payload=f"a{i}", method="PULL", tag="alpha") for i in range(3)]
              + [sdk.Task(payload="b", method="PULL", tag="beta")])
    leased = queue.lease_tasks_by_tag(60, 10, tag="beta")
    assert [(t.payload, t.tag) for t in leased] == [(b"b", "beta")]
    oldest = queue.lease_tasks_by_tag(60, 10)  # the oldest task's tag, which is alpha
    assert sorted(t.payload for t in oldest) == [b"a0", b"a1", b"a2"]
    assert all(t.retry_count == 1 for t in oldest)
    assert queue.lease_tasks(60, 10) == []  # everything is leased
    task = oldest[0]
    before = task.eta_posix
    queue.modify_task_lease(task, 600)
    assert task.eta_posix > before + 500
    queue.delete_tasks(oldest)
    assert all(t.was_deleted for t in oldest)
    assert bridge_server.stats("pull").tasks_count == 1


def test_modifying_a_lease_that_is_no_longer_held_raises_task_lease_expired(sdk, bridge_server):
    queue = sdk.Queue(pull_queue(bridge_server))
    queue.add(sdk.Task(payload="x", method="PULL"))
    task = queue.lease_tasks(60, 1)[0]
    queue.modify_task_lease(task, 0)  # released: leasable again
    again = queue.lease_tasks(60, 1)[0]
    with pytest.raises(sdk.TaskLeaseExpiredError):
        queue.modify_task_lease(task, 60)  # the first lease is gone
    queue.modify_task_lease(again, 60)


def test_wrong_queue_modes_unknown_queues_and_paused_queues_raise_the_sdks_errors(sdk, bridge_server):
    pull = sdk.Queue(pull_queue(bridge_server))
    with pytest.raises(sdk.InvalidQueueModeError):
        pull.add(sdk.Task(url="/push-task"))
    with pytest.raises(sdk.InvalidQueueModeError):
        sdk.Queue("default").add(sdk.Task(payload="x", method="PULL"))
    with pytest.raises(sdk.InvalidQueueModeError):
        sdk.Queue("default").lease_tasks(60, 1)
    with pytest.raises(sdk.UnknownQueueError):
        sdk.Queue("missing").add(sdk.Task(url="/x"))
    with pytest.raises(sdk.UnknownQueueError):
        sdk.Queue("missing").lease_tasks(60, 1)
    bridge_server.queues.PauseQueue(queue_service_pb2.PauseQueueRequest(name="queues/pull"))
    with pytest.raises(sdk.QueuePausedError):
        pull.lease_tasks(60, 1)


def test_a_task_over_the_size_limit_raises_task_too_large(sdk, bridge_server):
    with pytest.raises(sdk.TaskTooLargeError):
        sdk.Queue(pull_queue(bridge_server)).add(sdk.Task(payload=b"x" * (1024 * 1024 + 1), method="PULL"))


def test_an_eta_beyond_the_schedule_horizon_raises_invalid_eta(sdk):
    with pytest.raises(sdk.InvalidEtaError):
        sdk.add(url="/far", eta=datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=400))


def test_purge_and_fetch_statistics(sdk, bridge_server):
    queue = sdk.Queue(pull_queue(bridge_server))
    queue.add([sdk.Task(payload=str(i), method="PULL") for i in range(7)])
    stats = queue.fetch_statistics()
    assert stats.tasks == 7 and stats.oldest_eta_usec is not None
    both = sdk.QueueStatistics.fetch([queue, sdk.Queue("default")])
    assert [s.tasks for s in both] == [7, 0]
    queue.purge()
    eventually(lambda: queue.fetch_statistics().tasks == 0)
    assert queue.fetch_statistics().oldest_eta_usec is None


def test_other_services_and_unserved_methods_answer_call_not_found(sdk, bridge_server):
    from google.appengine.api import apiproxy_stub_map, memcache
    from google.appengine.api.taskqueue import taskqueue_service_bytes_pb2 as pb
    from google.appengine.runtime import apiproxy_errors

    with pytest.raises(apiproxy_errors.CallNotFoundError):
        apiproxy_stub_map.MakeSyncCall("memcache", "Get", memcache.memcache_service_pb2.MemcacheGetRequest(),
                                       memcache.memcache_service_pb2.MemcacheGetResponse())
    with pytest.raises(apiproxy_errors.CallNotFoundError):
        apiproxy_stub_map.MakeSyncCall("taskqueue", "DeleteQueue", pb.TaskQueueDeleteQueueRequest(app_id=b"a", queue_name=b"q"),
                                       pb.TaskQueueDeleteQueueResponse())


def test_an_unreadable_request_is_answered_with_a_parse_error_not_a_crash(bridge_server):
    from google.appengine.ext.remote_api import remote_api_bytes_pb2 as remote_api

    port = bridge_server.server.http_port.port
    bodies = [b"\xff\xfe not a protobuf", remote_api.Request(service_name="taskqueue", method="BulkAdd",
                                                             request=b"\xff\xff\xff").SerializeToString()]
    for body in bodies:
        request = urllib.request.Request(f"http://127.0.0.1:{port}/rpc_http", data=body, method="POST")
        with urllib.request.urlopen(request, timeout=10) as answer:
            assert answer.status == 200
            response = remote_api.Response.FromString(answer.read())
        assert response.rpc_error.code == remote_api.RpcError.PARSE_ERROR


def test_tasks_added_through_the_api_and_the_sdk_are_the_same_tasks(sdk, bridge_server):
    pull_queue(bridge_server)
    bridge_server.create_task("pull", b"from grpc", tag="t")
    leased = sdk.Queue("pull").lease_tasks_by_tag(30, 5, tag="t")
    assert [t.payload for t in leased] == [b"from grpc"]
    listed = bridge_server.tasks.ListTasks(task_service_pb2.ListTasksRequest(parent="queues/pull")).tasks
    assert listed[0].state == task_pb2.TASK_STATE_LEASED
