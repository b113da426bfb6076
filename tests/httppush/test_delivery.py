"""HTTP push: tasks of a queue with an HTTP target reach a real HTTP worker on loopback, with
App Engine's and Cloud Tasks' headers and a signature; the answer decides the task's fate."""

from __future__ import annotations

import hashlib
import hmac
import time

import grpc
import pytest
from google.protobuf import duration_pb2
from httppush.conftest import SECRET

from harness import error_reason, eventually, seconds_to_duration
from taskq.v1 import http_pb2, queue_pb2, queue_service_pb2, task_pb2, task_service_pb2

PUSH = queue_pb2.QUEUE_TYPE_PUSH


def http_queue(server, worker, queue_id="web", uri_path="", **fields):
    target = http_pb2.HttpTarget(uri=worker.url + uri_path)
    return server.create_queue(queue_id, PUSH, http_target=target, **fields)


def task_named(server, name):
    return server.tasks.GetTask(task_service_pb2.GetTaskRequest(name=name, view=task_pb2.TASK_VIEW_FULL)).task


def gone(server, name) -> bool:
    try:
        task_named(server, name)
    except grpc.RpcError as error:
        return error.code() == grpc.StatusCode.NOT_FOUND
    return False


def expected_signature(received, queue_id: str, task_id: str) -> str:
    header = received.header("X-Taskq-Signature")
    fields = dict(part.split("=", 1) for part in header.split(","))
    message = "\n".join([
        fields["t"], received.method, received.path, queue_id, task_id, hashlib.sha256(received.body).hexdigest(),
    ]).encode()
    return hmac.new(SECRET.encode(), message, hashlib.sha256).hexdigest()


def test_a_task_becomes_a_request_with_app_engine_and_cloud_tasks_headers_and_is_deleted_on_2xx(http_server, worker):
    target = http_pb2.HttpTarget(uri=worker.url + "/app", headers={"X-Env": "test"})
    http_server.create_queue("web", PUSH, http_target=target)
    task = http_server.create_task(
        "web", b'{"n": 1}', name="queues/web/tasks/order-1",
        http_request=http_pb2.HttpRequest(url="/work?x=1&y=%20z", http_method=http_pb2.HTTP_METHOD_PUT,
                                          headers={"Content-Type": "application/json", "X-Env": "task"}),
    )
    eventually(lambda: worker.received("/app/work"))
    got = worker.received("/app/work")[0]
    assert got.method == "PUT"
    assert got.path == "/app/work?x=1&y=%20z"
    assert got.body == b'{"n": 1}'
    assert got.header("Content-Type") == "application/json"
    assert got.header("X-Env") == "test"  # the queue's headers win over the task's
    for prefix in ("X-AppEngine-", "X-CloudTasks-"):
        assert got.header(prefix + "QueueName") == "web"
        assert got.header(prefix + "TaskName") == "order-1"
        assert got.header(prefix + "TaskRetryCount") == "0"
        assert got.header(prefix + "TaskExecutionCount") == "0"
        assert abs(float(got.header(prefix + "TaskETA")) - time.time()) < 60
        assert got.header(prefix + "TaskPreviousResponse") is None
    assert got.header("X-AppEngine-Api-Ticket")
    assert got.header("X-AppEngine-User-IP") == "0.1.0.2"  # App Engine's task queue address
    signature = got.header("X-Taskq-Signature")
    assert f"v1={expected_signature(got, 'web', 'order-1')}" in signature.split(",")
    eventually(lambda: gone(http_server, task.name))
    assert http_server.stats("web").tasks_count == 0


def test_a_task_without_its_own_request_goes_to_the_queues_uri_with_its_payload(http_server, worker):
    http_queue(http_server, worker, uri_path="/hook")
    http_server.create_task("web", b"raw bytes")
    eventually(lambda: worker.received("/hook"))
    got = worker.received("/hook")[0]
    assert (got.method, got.body, got.header("Content-Type")) == ("POST", b"raw bytes", "application/octet-stream")


def test_a_failed_answer_is_retried_with_its_status_recorded_and_told_to_the_next_attempt(fake_http_server, clock, worker):
    worker.answer("/", 500, body=b"database is down\nretry later")
    http_queue(fake_http_server, worker)
    task = fake_http_server.create_task("web", b"x")

    def attempted(count):
        current = task_named(fake_http_server, task.name)
        return current.attempt_count == count and current.state == task_pb2.TASK_STATE_SCHEDULED

    eventually(lambda: attempted(1))
    failed = task_named(fake_http_server, task.name)
    assert failed.last_attempt.http_status == 500
    assert failed.last_attempt.error.code == grpc.StatusCode.INTERNAL.value[0]
    assert failed.last_attempt.error.message == "HTTP 500 Internal Server Error: database is down retry later"
    assert failed.response_count == 1
    worker.answer("/", 200)
    clock.advance(1)  # past the 0.1 s backoff
    eventually(lambda: len(worker.received("/")) == 2)
    second = worker.received("/")[1]
    for prefix in ("X-AppEngine-", "X-CloudTasks-"):
        assert second.header(prefix + "TaskRetryCount") == "1"
        assert second.header(prefix + "TaskExecutionCount") == "1"
        assert second.header(prefix + "TaskPreviousResponse") == "500"
        assert second.header(prefix + "TaskRetryReason") == failed.last_attempt.error.message
    eventually(lambda: gone(fake_http_server, task.name))


@pytest.mark.parametrize("status, code", [(404, grpc.StatusCode.NOT_FOUND), (403, grpc.StatusCode.PERMISSION_DENIED),
                                          (302, grpc.StatusCode.UNKNOWN), (503, grpc.StatusCode.UNAVAILABLE)])
@pytest.mark.engines("rocksdb")
def test_any_status_but_2xx_is_a_failed_attempt_mapped_to_its_code(fake_http_server, worker, status, code):
    worker.answer("/", status, headers={"Location": "http://example.com/"} if status == 302 else None)
    http_queue(fake_http_server, worker)
    task = fake_http_server.create_task("web")
    eventually(lambda: task_named(fake_http_server, task.name).attempt_count == 1
               and task_named(fake_http_server, task.name).state == task_pb2.TASK_STATE_SCHEDULED)
    attempt = task_named(fake_http_server, task.name).last_attempt
    assert (attempt.http_status, attempt.error.code) == (status, code.value[0])
    assert len(worker.received()) == 1  # the redirect was not followed


def test_retry_after_on_429_and_503_delays_the_retry_at_least_that_long(fake_http_server, clock, worker):
    worker.answer("/seconds", 429, headers={"Retry-After": "120"})
    date = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 600))
    worker.answer("/date", 503, headers={"Retry-After": date})
    worker.answer("/ignored", 500, headers={"Retry-After": "120"})
    http_queue(fake_http_server, worker, uri_path="")
    tasks = {path: fake_http_server.create_task("web", http_request=http_pb2.HttpRequest(url=path))
             for path in ("/seconds", "/date", "/ignored")}
    for task in tasks.values():
        eventually(lambda task=task: task_named(fake_http_server, task.name).state == task_pb2.TASK_STATE_SCHEDULED
                   and task_named(fake_http_server, task.name).attempt_count == 1)

    def delay(path):
        task = task_named(fake_http_server, tasks[path].name)
        return task.schedule_time.ToMicroseconds() - task.last_attempt.response_time.ToMicroseconds()

    assert delay("/seconds") == 120_000_000
    assert 590_000_000 <= delay("/date") <= 600_000_000
    assert delay("/ignored") == 100_000  # the queue's backoff: Retry-After only counts on 429 and 503


@pytest.mark.engines("rocksdb")
def test_the_retries_follow_app_engines_backoff(fake_http_server, clock, worker):
    worker.answer("/", 500)
    retry = queue_pb2.RetryConfig(min_backoff=seconds_to_duration(1), max_backoff=seconds_to_duration(10),
                                  max_doublings=2, max_attempts=6)
    http_queue(fake_http_server, worker, retry_config=retry)
    task = fake_http_server.create_task("web")
    delays = []
    for attempt in range(1, 6):
        eventually(lambda attempt=attempt: task_named(fake_http_server, task.name).attempt_count == attempt
                   and task_named(fake_http_server, task.name).state == task_pb2.TASK_STATE_SCHEDULED)
        current = task_named(fake_http_server, task.name)
        delays.append((current.schedule_time.ToMicroseconds() - current.last_attempt.response_time.ToMicroseconds()) / 1e6)
        clock.advance(delays[-1])
    assert delays == [1, 2, 4, 8, 10]  # doubling twice, then linear (4 * 2), then the cap
    eventually(lambda: task_named(fake_http_server, task.name).state == task_pb2.TASK_STATE_FAILED)
    assert len(worker.received()) == 6


def test_a_connection_refused_is_a_failed_attempt_without_a_response(fake_http_server, worker):
    port = worker.port
    worker.close()  # nothing listens there any more
    fake_http_server.create_queue("web", PUSH, http_target=http_pb2.HttpTarget(uri=f"http://127.0.0.1:{port}/"))
    task = fake_http_server.create_task("web")
    eventually(lambda: task_named(fake_http_server, task.name).state == task_pb2.TASK_STATE_SCHEDULED)
    current = task_named(fake_http_server, task.name)
    assert current.last_attempt.error.code == grpc.StatusCode.UNAVAILABLE.value[0]
    assert "cannot connect" in current.last_attempt.error.message
    assert (current.last_attempt.http_status, current.response_count) == (0, 0)


@pytest.mark.engines("rocksdb")
def test_a_handler_that_does_not_answer_within_the_dispatch_deadline_fails_the_attempt(fake_http_server, worker):
    worker.answer("/", 200, delay=60)
    http_queue(fake_http_server, worker, dispatch_deadline=duration_pb2.Duration(seconds=15))
    task = fake_http_server.create_task("web")
    eventually(lambda: task_named(fake_http_server, task.name).state == task_pb2.TASK_STATE_SCHEDULED, seconds=40)
    current = task_named(fake_http_server, task.name)
    assert current.last_attempt.error.code == grpc.StatusCode.DEADLINE_EXCEEDED.value[0]
    assert current.last_attempt.http_status == 0


def test_a_hung_handler_does_not_hold_up_another_queue(http_server, worker):
    worker.answer("/hung", 200, delay=60)
    http_server.create_queue("stuck", PUSH, http_target=http_pb2.HttpTarget(uri=worker.url + "/hung"),
                             rate_limits=queue_pb2.RateLimits(max_concurrent_dispatches=10))
    http_server.create_queue("fine", PUSH, http_target=http_pb2.HttpTarget(uri=worker.url + "/fine"))
    for _ in range(30):
        http_server.create_task("stuck")
    eventually(lambda: len(worker.received("/hung")) == 10)
    for _ in range(20):
        http_server.create_task("fine")
    eventually(lambda: len(worker.received("/fine")) == 20)
    assert len(worker.received("/hung")) == 10  # still capped, still hanging
    eventually(lambda: http_server.stats("fine").tasks_count == 0)


def test_connections_to_a_worker_are_kept_alive_and_reused(http_server, worker):
    http_queue(http_server, worker, rate_limits=queue_pb2.RateLimits(max_concurrent_dispatches=1))
    for _ in range(20):
        http_server.create_task("web")
    eventually(lambda: len(worker.received()) == 20)
    assert len({request.connection for request in worker.received()}) == 1


@pytest.mark.engines("rocksdb")
def test_the_rate_limit_holds_for_http_deliveries(http_server, worker):
    rate = 50.0
    http_queue(http_server, worker, rate_limits=queue_pb2.RateLimits(max_dispatches_per_second=rate, max_burst_size=5))
    requests = [task_service_pb2.CreateTaskRequest(task=task_pb2.Task()) for _ in range(255)]
    http_server.tasks.BatchCreateTasks(task_service_pb2.BatchCreateTasksRequest(parent="queues/web", requests=requests))
    eventually(lambda: len(worker.received()) == 255, seconds=30)
    arrivals = sorted(request.at for request in worker.received())[5:]  # after the burst of 5
    measured = (len(arrivals) - 1) / (arrivals[-1] - arrivals[0])
    assert abs(measured - rate) / rate <= 0.03, measured


@pytest.mark.engines("rocksdb")
def test_the_concurrency_cap_holds_for_http_deliveries(http_server, worker):
    worker.answer("/", 200, delay=0.2)
    http_queue(http_server, worker, rate_limits=queue_pb2.RateLimits(max_concurrent_dispatches=7))
    for _ in range(40):
        http_server.create_task("web")
    peak = 0

    def done() -> bool:
        nonlocal peak
        peak = max(peak, http_server.stats("web").concurrent_dispatches)
        return len(worker.received()) == 40

    eventually(done, seconds=30)
    # Seen by the worker: never more than 7 requests open at once, and 7 at some moment (the
    # cap, not something lower, is what limited it).
    assert worker.max_open == 7
    assert peak <= 7


def test_a_queue_with_an_http_target_refuses_streams_and_tasks_of_other_queues_refuse_http_requests(http_server, worker):
    http_queue(http_server, worker)
    http_server.create_queue("streamed", PUSH)
    from harness import Stream

    stream = Stream(http_server.channel, "web", 10)
    assert stream.ended.wait(10)
    error = stream.error
    assert error is not None and error.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert error_reason(error) == "HTTP_QUEUE"
    with pytest.raises(grpc.RpcError) as refused:
        http_server.create_task("streamed", http_request=http_pb2.HttpRequest(url="https://example.com/"))
    assert error_reason(refused.value) == "NOT_AN_HTTP_QUEUE"
    with pytest.raises(grpc.RpcError) as refused:
        http_server.create_task("web", b"body", http_request=http_pb2.HttpRequest(http_method=http_pb2.HTTP_METHOD_GET))
    assert error_reason(refused.value) == "PAYLOAD_NOT_ALLOWED"
    with pytest.raises(grpc.RpcError) as refused:
        http_server.create_queue("pulled", queue_pb2.QUEUE_TYPE_PULL, http_target=http_pb2.HttpTarget(uri=worker.url))
    assert error_reason(refused.value) == "HTTP_TARGET_ON_PULL_QUEUE"


def test_removing_the_target_hands_the_queue_to_streams_and_setting_one_ends_them(http_server, worker):
    from harness import Stream

    http_server.create_queue("web", PUSH)
    stream = Stream(http_server.channel, "web", 10)
    mask = {"update_mask": {"paths": ["http_target"]}}
    http_server.queues.UpdateQueue(queue_service_pb2.UpdateQueueRequest(
        queue=queue_pb2.Queue(name="queues/web", http_target=http_pb2.HttpTarget(uri=worker.url)), **mask))
    assert stream.ended.wait(10)
    assert stream.error is not None and error_reason(stream.error) == "HTTP_QUEUE"
    http_server.create_task("web", b"over http")
    eventually(lambda: len(worker.received()) == 1)
    http_server.queues.UpdateQueue(queue_service_pb2.UpdateQueueRequest(queue=queue_pb2.Queue(name="queues/web"), **mask))
    http_server.create_task("web", b"over a stream")
    stream = Stream(http_server.channel, "web", 10)
    tasks = stream.tasks(1)
    assert [t.payload for t in tasks] == [b"over a stream"]
    stream.close()
