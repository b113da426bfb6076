"""The sync Client against a real server: every method, and errors as typed exceptions."""

from __future__ import annotations

import asyncio
import datetime
import threading
import time

import grpc
import pytest

from taskq.client import (
    CallRetry,
    Client,
    InvalidArgument,
    LeaseLost,
    QueueAlreadyExists,
    QueueNotFound,
    QueuePaused,
    TaskAlreadyExists,
    TaskLeased,
    TaskNotFound,
    TaskTombstoned,
    Unavailable,
    WrongQueueType,
    from_rpc_error,
)
from taskq.v1 import http_pb2, queue_pb2, queue_service_pb2, queue_service_pb2_grpc, task_pb2


@pytest.fixture
def client(server):
    with Client(server.address, timeout=10) as client:
        yield client


@pytest.fixture
def pull(client):
    """A pull queue named "work"."""
    return client.create_queue("work", type="pull")


# Queues --------------------------------------------------------------------------------------


def test_create_queue_applies_settings_and_returns_effective_values(client):
    queue = client.create_queue("jobs", type="pull", max_attempts=3, min_backoff=0.5,
                                max_retry_duration=datetime.timedelta(hours=2), task_ttl=86400)
    assert queue.name == "queues/jobs"
    assert queue.type == queue_pb2.QUEUE_TYPE_PULL
    assert queue.retry_config.max_attempts == 3
    assert queue.retry_config.min_backoff.ToMilliseconds() == 500
    assert queue.retry_config.max_retry_duration.seconds == 7200
    assert queue.task_ttl.seconds == 86400
    assert queue.retry_config.max_backoff.seconds == 3600  # a default, filled in by the server


def test_create_queue_accepts_a_full_name_and_a_queue_message(client):
    assert client.create_queue("queues/a").name == "queues/a"
    message = queue_pb2.Queue(name="queues/b", type=queue_pb2.QUEUE_TYPE_PULL)
    assert client.create_queue(message).type == queue_pb2.QUEUE_TYPE_PULL


def test_creating_an_existing_queue_raises_queue_already_exists(client, pull):
    with pytest.raises(QueueAlreadyExists) as caught:
        client.create_queue("work")
    assert caught.value.code is grpc.StatusCode.ALREADY_EXISTS
    assert caught.value.reason == "QUEUE_ALREADY_EXISTS"
    assert caught.value.metadata == {"queue": "queues/work"}


def test_get_queue_of_a_missing_queue_raises_queue_not_found(client):
    with pytest.raises(QueueNotFound) as caught:
        client.get_queue("nope")
    assert str(caught.value) == "NOT_FOUND QUEUE_NOT_FOUND: queue queues/nope does not exist"


def test_get_queue_returns_the_queue(client, pull):
    assert client.get_queue("queues/work") == pull


def test_list_queues_follows_pages_to_the_end(client):
    names = [f"q{index}" for index in range(7)]
    for name in names:
        client.create_queue(name)
    listed = [queue.name for queue in client.list_queues(page_size=3)]
    assert listed == [f"queues/{name}" for name in sorted(names)]


def test_update_queue_changes_only_the_given_settings(client):
    client.create_queue("push", max_dispatches_per_second=5, max_burst_size=7, max_attempts=4)
    updated = client.update_queue("push", max_dispatches_per_second=0.5)
    assert updated.rate_limits.max_dispatches_per_second == 0.5
    assert updated.rate_limits.max_burst_size == 7
    assert updated.retry_config.max_attempts == 4


def test_update_queue_with_none_resets_a_setting_to_its_default(client):
    client.create_queue("push", max_dispatches_per_second=5, max_backoff=60)
    updated = client.update_queue("push", max_dispatches_per_second=None)
    assert not updated.rate_limits.HasField("max_dispatches_per_second")
    assert updated.retry_config.max_backoff.seconds == 60


# HTTP push (the server refuses loopback and private hosts: these look public and are never
# reached, the queue being paused).

HTTP_TARGET = {"uri": "https://worker.example.com/base", "http_method": "put", "headers": {"X-Env": "test"}}


def test_an_http_target_and_an_http_request_round_trip(client):
    created = client.create_queue("hooks", http_target=HTTP_TARGET)
    assert created.http_target == http_pb2.HttpTarget(
        uri="https://worker.example.com/base", http_method=http_pb2.HTTP_METHOD_PUT, headers={"X-Env": "test"})
    client.pause_queue("hooks")
    assert client.get_queue("hooks").http_target == created.http_target
    task = client.create_task("hooks", b'{"a": 1}', name="t1", http_request={
        "url": "/path?x=1", "http_method": "PUT", "headers": {"Content-Type": "application/json"}})
    expected = http_pb2.HttpRequest(url="/path?x=1", http_method=http_pb2.HTTP_METHOD_PUT,
                                    headers={"Content-Type": "application/json"})
    assert task.http_request == expected
    fetched = client.get_task(task)
    assert fetched.http_request == expected and fetched.payload == b'{"a": 1}'
    assert fetched.response_count == 0
    [batched, plain] = client.create_tasks("hooks", [
        {"payload": b"b", "http_request": {"url": "https://other.example.com/x", "http_method": "post"}},
        {"payload": b"c"},
    ])
    assert client.get_task(batched).http_request == http_pb2.HttpRequest(
        url="https://other.example.com/x", http_method=http_pb2.HTTP_METHOD_POST)
    assert not client.get_task(plain).HasField("http_request")


def test_update_queue_replaces_or_removes_the_http_target(client):
    client.create_queue("hooks", http_target=HTTP_TARGET, max_attempts=4)
    updated = client.update_queue("hooks", http_target={"uri": "https://worker.example.com/v2"})
    # The whole target is replaced: the method is the default again (the server may show it as POST).
    assert updated.http_target.uri == "https://worker.example.com/v2" and not updated.http_target.headers
    assert updated.http_target.http_method in (http_pb2.HTTP_METHOD_UNSPECIFIED, http_pb2.HTTP_METHOD_POST)
    assert updated.retry_config.max_attempts == 4
    removed = client.update_queue("hooks", http_target=None)
    assert not removed.HasField("http_target") and not client.get_queue("hooks").HasField("http_target")
    added = client.update_queue("hooks", http_target="https://worker.example.com/v3")
    assert added.http_target.uri == "https://worker.example.com/v3"


def test_http_fields_where_they_do_not_belong_are_refused(client, pull):
    client.create_queue("streamed")
    with pytest.raises(InvalidArgument) as refused:
        client.create_task("streamed", http_request={"url": "/path"})
    assert refused.value.reason == "NOT_AN_HTTP_QUEUE"
    with pytest.raises(InvalidArgument):
        client.create_queue("pulled", type="pull", http_target=HTTP_TARGET)
    with pytest.raises(ValueError, match="HTTP method"):
        client.create_queue("hooks", http_target={"uri": "https://worker.example.com/", "http_method": "FETCH"})

def test_update_queue_without_settings_is_refused_before_any_call(client, pull):
    with pytest.raises(ValueError):
        client.update_queue("work")


def test_pause_and_resume_change_the_queue_state(client, pull):
    assert client.pause_queue("work").state == queue_pb2.QUEUE_STATE_PAUSED
    with pytest.raises(QueuePaused):
        client.lease_tasks("work", lease_duration=60)
    assert client.resume_queue("work").state == queue_pb2.QUEUE_STATE_RUNNING


def test_purge_queue_reports_how_many_tasks_it_deleted(client, pull):
    for _ in range(3):
        client.create_task("work", b"x")
    response = client.purge_queue("work")
    assert response.purged_count == 3
    assert response.queue.HasField("purge_time")
    assert client.get_queue_stats("work").tasks_count == 0


def test_delete_queue_removes_it(client, pull):
    client.delete_queue("work")
    with pytest.raises(QueueNotFound):
        client.get_queue("work")


def test_queue_stats_count_tasks_by_state(client, pull):
    client.create_task("work", b"now")
    client.create_task("work", b"later", delay=3600)
    stats = client.get_queue_stats("work")
    assert (stats.tasks_count, stats.ready_count, stats.scheduled_count) == (2, 1, 1)


# Creating tasks ------------------------------------------------------------------------------


def test_create_task_sets_every_given_field(client, pull):
    when = datetime.datetime.now(datetime.UTC) + datetime.timedelta(hours=1)
    task = client.create_task("work", "héllo", name="t1", tag="reports", schedule_time=when,
                              attributes={"content-type": "text/plain"}, max_attempts=2, view="full")
    assert task.name == "queues/work/tasks/t1"
    assert task.payload == "héllo".encode()
    assert task.tag == "reports"
    assert task.attributes == {"content-type": "text/plain"}
    assert task.retry_config.max_attempts == 2
    assert task.state == task_pb2.TASK_STATE_SCHEDULED
    assert abs(task.schedule_time.ToDatetime(datetime.UTC) - when) < datetime.timedelta(milliseconds=1)


def test_create_task_with_a_delay_schedules_it_that_far_ahead(client, pull):
    before = time.time()
    task = client.create_task("work", delay=120)
    assert task.state == task_pb2.TASK_STATE_SCHEDULED
    assert before + 119 < task.schedule_time.ToNanoseconds() / 1e9 < time.time() + 121


def test_create_task_refuses_a_naive_datetime(client, pull):
    with pytest.raises(ValueError, match="naive"):
        client.create_task("work", schedule_time=datetime.datetime.now())


def test_a_repeated_request_id_returns_the_first_task(client, pull):
    first = client.create_task("work", b"once", request_id="order-17")
    second = client.create_task("work", b"once", request_id="order-17")
    assert second.name == first.name
    assert client.get_queue_stats("work").tasks_count == 1


def test_tasks_created_without_a_request_id_are_distinct(client, pull):
    first = client.create_task("work", b"same")
    second = client.create_task("work", b"same")
    assert first.name != second.name


def test_a_taken_task_name_raises_task_already_exists(client, pull):
    client.create_task("work", name="t1")
    with pytest.raises(TaskAlreadyExists) as caught:
        client.create_task("work", name="t1")
    assert caught.value.metadata == {"task": "queues/work/tasks/t1"}


def test_a_recently_finished_task_name_raises_task_tombstoned(client, pull):
    client.create_task("work", name="t1")
    client.delete_task("queues/work/tasks/t1")
    with pytest.raises(TaskTombstoned):
        client.create_task("work", name="t1")


def test_an_invalid_argument_lists_the_field_violations(client, pull):
    with pytest.raises(InvalidArgument) as caught:
        client.create_task("work", name="not valid!")
    assert caught.value.reason == "INVALID_NAME"
    [violation] = caught.value.field_violations
    assert violation.field == "task.name"
    assert "not a task name" in violation.description


def test_create_task_in_a_missing_queue_raises_queue_not_found(client):
    with pytest.raises(QueueNotFound):
        client.create_task("nope", b"x")


def test_create_tasks_reports_each_item_and_creates_the_valid_ones(client, pull):
    client.create_task("work", name="taken")
    results = client.create_tasks("work", [
        {"payload": b"a", "name": "fresh"},
        task_pb2.Task(name="queues/work/tasks/taken"),
        {"name": "bad name!"},
    ])
    assert isinstance(results[0], task_pb2.Task) and results[0].name == "queues/work/tasks/fresh"
    assert isinstance(results[1], TaskAlreadyExists)
    assert isinstance(results[2], InvalidArgument)
    assert results[2].field_violations[0].field == "requests[2].task.name"
    assert client.get_queue_stats("work").tasks_count == 2


# Reading tasks -------------------------------------------------------------------------------


def test_get_task_returns_the_payload_unless_basic_view_is_asked(client, pull):
    created = client.create_task("work", b"body")
    assert client.get_task(created.name).payload == b"body"
    basic = client.get_task(created, view="basic")
    assert basic.payload == b"" and basic.view == task_pb2.TASK_VIEW_BASIC


def test_get_task_of_a_missing_task_raises_task_not_found(client, pull):
    with pytest.raises(TaskNotFound) as caught:
        client.get_task("queues/work/tasks/nope")
    assert caught.value.reason == "TASK_NOT_FOUND"


def test_list_tasks_follows_pages_to_the_end(client, pull):
    names = sorted(client.create_task("work", name=f"t{index:02}").name for index in range(12))
    assert [task.name for task in client.list_tasks("work", page_size=5)] == names


def test_list_tasks_filters_by_state_and_tag(client, pull):
    client.create_task("work", name="ready-a", tag="a")
    client.create_task("work", name="ready-b", tag="b")
    client.create_task("work", name="later-a", tag="a", delay=3600)
    assert [task.name for task in client.list_tasks("work", state="ready", tag="a")] == ["queues/work/tasks/ready-a"]
    both = client.list_tasks("work", state=["ready", "scheduled"], tag="a")
    assert [task.name for task in both] == ["queues/work/tasks/later-a", "queues/work/tasks/ready-a"]


def test_list_tasks_with_a_bad_filter_raises_invalid_argument(client, pull):
    with pytest.raises(InvalidArgument) as caught:
        list(client.list_tasks("work", filter="colour = red"))
    assert caught.value.field_violations[0].field == "filter"


# Leases --------------------------------------------------------------------------------------


def test_a_leased_task_can_be_acknowledged_with_its_token(client, pull):
    client.create_task("work", b"job")
    [task] = client.lease_tasks("work", lease_duration=60, max_tasks=5)
    assert task.payload == b"job" and task.lease_token
    client.delete_task(task)
    assert client.get_queue_stats("work").tasks_count == 0


def test_acknowledging_with_a_stale_token_raises_lease_lost(client, pull):
    client.create_task("work", name="t1")
    [first] = client.lease_tasks("work", lease_duration=60)
    client.modify_lease(first, lease_duration=0)  # releases it
    [second] = client.lease_tasks("work", lease_duration=60)
    with pytest.raises(LeaseLost) as caught:
        client.delete_task(first.name, lease_token=first.lease_token)
    assert caught.value.code is grpc.StatusCode.FAILED_PRECONDITION
    client.delete_task(second)


def test_modify_lease_extends_the_lease_and_keeps_the_token(client, pull):
    client.create_task("work")
    [task] = client.lease_tasks("work", lease_duration=10)
    extended = client.modify_lease(task, lease_duration=3600)
    assert extended.lease_token == task.lease_token
    assert extended.lease_expire_time.seconds > task.lease_expire_time.seconds + 3000


def test_lease_tasks_by_tag_and_by_oldest_tag(client, pull):
    client.create_task("work", name="a1", tag="a")
    client.create_task("work", name="b1", tag="b")
    client.create_task("work", name="a2", tag="a")
    assert [task.name for task in client.lease_tasks("work", lease_duration=60, max_tasks=5, tag="b")] == [
        "queues/work/tasks/b1"]
    leased = client.lease_tasks("work", lease_duration=60, max_tasks=5, oldest_tag=True)
    assert sorted(task.name for task in leased) == ["queues/work/tasks/a1", "queues/work/tasks/a2"]


def test_lease_tasks_waits_for_a_task_longer_than_the_client_timeout(server, pull):
    # The wait is added to the deadline, so a wait beyond the client's timeout still returns.
    with Client(server.address, timeout=0.5) as short:
        threading.Timer(1.0, lambda: server.create_task("work", b"late")).start()
        [task] = short.lease_tasks("work", lease_duration=60, wait=5)
    assert task.payload == b"late"


def test_lease_tasks_on_a_push_queue_raises_wrong_queue_type(client):
    client.create_queue("push")
    with pytest.raises(WrongQueueType):
        client.lease_tasks("push", lease_duration=60)


def test_delete_tasks_reports_each_item(client, pull):
    client.create_task("work", name="t1")
    client.create_task("work", name="t2")
    [leased] = client.lease_tasks("work", lease_duration=60)
    results = client.delete_tasks("work", [leased, "queues/work/tasks/t2", "queues/work/tasks/missing"])
    assert results[:2] == [None, None]
    assert isinstance(results[2], TaskNotFound)


def test_run_task_makes_a_scheduled_task_ready(client, pull):
    task = client.create_task("work", delay=3600)
    assert client.run_task(task).state == task_pb2.TASK_STATE_READY


def test_run_task_on_a_leased_task_raises_task_leased(client, pull):
    client.create_task("work")
    [task] = client.lease_tasks("work", lease_duration=60)
    with pytest.raises(TaskLeased):
        client.run_task(task.name)


# Transport -----------------------------------------------------------------------------------


def test_an_unreachable_server_raises_unavailable_once_the_retry_budget_is_spent():
    started = time.monotonic()
    with Client("127.0.0.1:1", timeout=10, call_retry=CallRetry(budget=1)) as client, \
            pytest.raises(Unavailable) as caught:
        client.get_queue("q")
    assert caught.value.reason == ""
    assert time.monotonic() - started < 8  # the 1 s budget ended the retries, not the 10 s deadline


def test_calls_are_retried_while_the_server_answers_unavailable(server, pull):
    # While the engine is detached the server answers UNAVAILABLE (reason NOT_READY).
    engine = server.engine
    server.server.engine_ref.set(None)
    try:
        with Client(server.address, call_retry=None) as client, pytest.raises(Unavailable) as caught:
            client.get_queue("work")
        assert caught.value.reason == "NOT_READY" and caught.value.retry_delay == 1.0
        threading.Timer(0.1, server.server.engine_ref.set, [engine]).start()
        with Client(server.address) as client:
            assert client.get_queue("work").name == "queues/work"
    finally:
        server.server.engine_ref.set(engine)


def test_from_rpc_error_reads_asyncio_errors_too(server):
    async def get_missing_queue() -> grpc.aio.AioRpcError:
        async with grpc.aio.insecure_channel(server.address) as channel:
            stub = queue_service_pb2_grpc.QueueServiceStub(channel)
            try:
                await stub.GetQueue(queue_service_pb2.GetQueueRequest(name="queues/nope"))
            except grpc.aio.AioRpcError as error:
                return error
        raise AssertionError("GetQueue of a missing queue succeeded")

    error = from_rpc_error(asyncio.run(get_missing_queue()))
    assert isinstance(error, QueueNotFound)
    assert error.metadata == {"queue": "queues/nope"}
