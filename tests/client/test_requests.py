"""The client's pure pieces: names, request building, error mapping, the channel config and the
retry backoff."""

from __future__ import annotations

import datetime

import grpc
import pytest
from google.rpc import code_pb2, error_details_pb2, status_pb2

from taskq.client import (
    Cancelled,
    FailedPrecondition,
    InvalidArgument,
    LeaseLost,
    NotFound,
    Unavailable,
    UnknownError,
    from_status,
    requests,
)
from taskq.client.call_retry import Backoff, CallRetry, is_retried, may_resend
from taskq.client.channel import channel_options
from taskq.client.names import queue_name, task_name_in
from taskq.client.times import to_duration
from taskq.v1 import http_pb2, queue_service_pb2, task_pb2, task_service_pb2


@pytest.mark.parametrize(("given", "expected"), [
    ("q", "queues/q"),
    ("queues/q", "queues/q"),
    ("queues/q/tasks/t", "queues/q"),
    ("other/q", "other/q"),  # left for the server to refuse, with its own message
])
def test_queue_name_accepts_an_id_or_a_name(given, expected):
    assert queue_name(given) == expected


def test_task_name_in_accepts_an_id_or_a_full_name():
    assert task_name_in("q", "t") == "queues/q/tasks/t"
    assert task_name_in("q", "queues/q/tasks/t") == "queues/q/tasks/t"


def test_durations_keep_fractions_of_a_second():
    assert to_duration(0.1).nanos == 100_000_000
    assert to_duration(datetime.timedelta(minutes=2)).seconds == 120


def test_create_task_request_gets_a_fresh_request_id_unless_given():
    first = requests.create_task_request("q", b"x")
    second = requests.create_task_request("q", b"x")
    assert first.request_id and second.request_id and first.request_id != second.request_id
    assert requests.create_task_request("q", request_id="mine").request_id == "mine"
    assert requests.create_task_request("q", request_id="").request_id == ""


def test_create_task_request_refuses_both_delay_and_schedule_time():
    with pytest.raises(ValueError):
        requests.create_task_request("q", delay=5, schedule_time=0)


def test_batch_items_without_a_request_id_each_get_one():
    batch = requests.batch_create_tasks_request("q", [task_pb2.Task(), {"payload": b"x"}])
    ids = [item.request_id for item in batch.requests]
    assert all(ids) and len(set(ids)) == 2


def test_update_queue_request_masks_exactly_the_given_settings():
    request = requests.update_queue_request("q", max_dispatches_per_second=None, min_backoff=1)
    assert list(request.update_mask.paths) == ["rate_limits.max_dispatches_per_second", "retry_config.min_backoff"]
    assert not request.queue.rate_limits.HasField("max_dispatches_per_second")
    assert request.queue.retry_config.min_backoff.seconds == 1


def test_unknown_queue_settings_are_refused():
    with pytest.raises(TypeError, match="rate"):
        requests.queue_message("q", rate=5)



# HTTP push fields ----------------------------------------------------------------------------


@pytest.mark.parametrize(("given", "expected"), [
    ("POST", http_pb2.HTTP_METHOD_POST),
    ("get", http_pb2.HTTP_METHOD_GET),
    (" Patch ", http_pb2.HTTP_METHOD_PATCH),
    ("http_method_delete", http_pb2.HTTP_METHOD_DELETE),
    ("OPTIONS", http_pb2.HTTP_METHOD_OPTIONS),
    ("head", http_pb2.HTTP_METHOD_HEAD),
    (http_pb2.HTTP_METHOD_PUT, http_pb2.HTTP_METHOD_PUT),
    (None, http_pb2.HTTP_METHOD_UNSPECIFIED),
])
def test_http_methods_are_taken_by_name_in_any_case(given, expected):
    assert requests.http_method_value(given) == expected


@pytest.mark.parametrize("bad", ["FETCH", "", "CONNECT", "TRACE", 99, -1, True])
def test_an_unknown_http_method_is_refused_with_the_known_ones(bad):
    with pytest.raises(ValueError, match=r"HTTP method must be one of POST, GET, HEAD, PUT, DELETE, PATCH, OPTIONS"):
        requests.http_method_value(bad)


def test_create_queue_request_takes_an_http_target_as_a_mapping_a_message_or_a_uri():
    headers = {"X-Env": "test", "Authorization": "Bearer a=b"}
    request = requests.create_queue_request(
        "hooks", http_target={"uri": "https://worker.example.com/base", "http_method": "put", "headers": headers})
    target = request.queue.http_target
    assert request.queue.HasField("http_target")
    assert (target.uri, target.http_method, dict(target.headers)) == (
        "https://worker.example.com/base", http_pb2.HTTP_METHOD_PUT, headers)
    message = http_pb2.HttpTarget(uri="https://worker.example.com/", http_method=http_pb2.HTTP_METHOD_PATCH)
    from_message = requests.create_queue_request("hooks", http_target=message).queue.http_target
    assert from_message == message and from_message is not message
    from_uri = requests.create_queue_request("hooks", http_target="https://worker.example.com/x").queue.http_target
    assert from_uri == http_pb2.HttpTarget(uri="https://worker.example.com/x")
    assert not requests.create_queue_request("hooks").queue.HasField("http_target")


def test_an_http_target_with_a_bad_method_or_an_unknown_field_is_refused():
    with pytest.raises(ValueError, match="'SEND'"):
        requests.queue_message("hooks", http_target={"uri": "https://worker.example.com/", "http_method": "SEND"})
    with pytest.raises(TypeError, match="'method'"):
        requests.queue_message("hooks", http_target={"uri": "https://worker.example.com/", "method": "PUT"})
    with pytest.raises(TypeError, match="headers"):
        requests.queue_message("hooks", http_target={"uri": "https://worker.example.com/", "headers": ["X-A: 1"]})
    with pytest.raises(TypeError, match="http_target"):
        requests.queue_message("hooks", http_target=42)


def test_update_queue_request_sets_or_removes_the_whole_http_target():
    update = requests.update_queue_request("hooks", http_target={"uri": "https://worker.example.com/v2"})
    assert list(update.update_mask.paths) == ["http_target"]
    assert update.queue.http_target.uri == "https://worker.example.com/v2"
    removal = requests.update_queue_request("hooks", http_target=None, max_attempts=3)
    assert list(removal.update_mask.paths) == ["http_target", "retry_config.max_attempts"]
    assert not removal.queue.HasField("http_target")


def test_create_task_request_takes_an_http_request_as_a_mapping_a_message_or_a_url():
    request = requests.create_task_request(
        "hooks", b"{}", http_request={"url": "/path?x=1", "http_method": "Post",
                                      "headers": {"Content-Type": "application/json"}})
    http = request.task.http_request
    assert (http.url, http.http_method, dict(http.headers)) == (
        "/path?x=1", http_pb2.HTTP_METHOD_POST, {"Content-Type": "application/json"})
    message = http_pb2.HttpRequest(url="https://other.example.com/x", http_method=http_pb2.HTTP_METHOD_GET)
    assert requests.create_task_request("hooks", http_request=message).task.http_request == message
    assert requests.create_task_request("hooks", http_request="/only/a/path").task.http_request.url == "/only/a/path"
    # Only the method: the URL and headers stay the queue's.
    just_method = requests.create_task_request("hooks", http_request={"http_method": "delete"}).task
    assert just_method.HasField("http_request") and just_method.http_request.url == ""
    assert not requests.create_task_request("hooks").task.HasField("http_request")
    with pytest.raises(ValueError, match="'YEET'"):
        requests.create_task_request("hooks", http_request={"url": "/", "http_method": "YEET"})
    with pytest.raises(TypeError, match="'uri'"):
        requests.create_task_request("hooks", http_request={"uri": "/"})


def test_batch_items_carry_their_http_requests():
    batch = requests.batch_create_tasks_request("hooks", [
        {"payload": b"a", "http_request": {"url": "/a", "http_method": "put"}},
        task_pb2.Task(http_request=http_pb2.HttpRequest(url="/b")),
        {"payload": b"c"},
    ])
    assert [item.task.http_request.url for item in batch.requests] == ["/a", "/b", ""]
    assert batch.requests[0].task.http_request.http_method == http_pb2.HTTP_METHOD_PUT
    assert not batch.requests[2].task.HasField("http_request")

@pytest.mark.parametrize(("arguments", "expected"), [
    ({"state": "ready"}, "state = READY"),
    ({"state": ["ready", "TASK_STATE_LEASED"]}, "state = (READY OR LEASED)"),
    ({"tag": 'say "hi" \\o/'}, 'tag = "say \\"hi\\" \\\\o/"'),
    ({"filter": "state = FAILED", "tag": "x"}, 'state = FAILED AND tag = "x"'),
])
def test_task_filter_combines_conditions(arguments, expected):
    assert requests.task_filter(**arguments) == expected


def test_task_filter_refuses_an_unknown_state():
    with pytest.raises(ValueError, match="done"):
        requests.task_filter(state="done")


def _status(code: int, reason: str, domain: str = "taskq.dev") -> status_pb2.Status:
    status = status_pb2.Status(code=code, message="m")
    status.details.add().Pack(error_details_pb2.ErrorInfo(reason=reason, domain=domain))
    return status


def test_from_status_picks_the_reason_class():
    error = from_status(_status(code_pb2.FAILED_PRECONDITION, "LEASE_LOST"))
    assert isinstance(error, LeaseLost) and error.code is grpc.StatusCode.FAILED_PRECONDITION


def test_a_reason_with_a_mismatched_code_or_foreign_domain_keeps_the_code_class():
    mismatched = from_status(_status(code_pb2.NOT_FOUND, "LEASE_LOST"))
    assert type(mismatched) is NotFound and mismatched.reason == "LEASE_LOST"
    foreign = from_status(_status(code_pb2.FAILED_PRECONDITION, "LEASE_LOST", domain="example.com"))
    assert type(foreign) is FailedPrecondition


def test_codes_without_a_class_fall_back_to_unknown_error():
    error = from_status(status_pb2.Status(code=code_pb2.DATA_LOSS, message="m"))
    assert isinstance(error, UnknownError) and error.code is grpc.StatusCode.DATA_LOSS


def test_channel_options_keep_pings_within_the_servers_policy():
    options = dict(channel_options())
    assert options["grpc.keepalive_time_ms"] >= 10_000  # the server's min_ping_interval_without_data
    assert options["grpc.max_receive_message_length"] == 32 * 1024 * 1024
    # The client retries calls itself; a service-config retry policy would multiply attempts.
    assert "grpc.service_config" not in options


def test_creates_are_resent_only_with_a_request_id_and_purges_never():
    create = requests.create_task_request("q", b"x")
    assert create.request_id and may_resend(create)
    assert not may_resend(requests.create_task_request("q", b"x", request_id=""))
    batch = requests.batch_create_tasks_request("q", [{"payload": b"a"}, task_pb2.Task(payload=b"b")])
    assert all(item.request_id for item in batch.requests) and may_resend(batch)
    batch.requests[1].request_id = ""
    assert not may_resend(batch)
    assert not may_resend(queue_service_pb2.PurgeQueueRequest(name="queues/q"))
    assert may_resend(task_service_pb2.DeleteTaskRequest(name="queues/q/tasks/t", lease_token="x"))


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_backoff_waits_with_full_jitter_up_to_the_budget():
    clock = _Clock()
    backoff = Backoff(CallRetry(budget=5, initial_backoff=0.1, max_backoff=1), None, clock=clock, rand=lambda: 1.0)
    waits = []
    while (wait := backoff.next_wait(Unavailable("down"))) is not None:
        waits.append(wait)
        clock.now += wait
    # Ceilings double from 0.1 s up to 1 s, until a wait would end past the 5 s budget.
    assert waits == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.0, 1.0, 1.0])  # 4.5 s; one more would end at 5.5 s
    low = Backoff(CallRetry(), None, clock=clock, rand=lambda: 0.0)
    assert low.next_wait(Unavailable("down")) == 0.0  # full jitter: anywhere from 0 up


def test_backoff_honours_retry_info_and_the_call_deadline():
    clock = _Clock()
    backoff = Backoff(CallRetry(budget=15), clock.now + 2.5, clock=clock, rand=lambda: 0.0)
    assert backoff.next_wait(Unavailable("starting", retry_delay=1.0)) == 1.0
    clock.now += 1.0
    assert backoff.next_wait(Unavailable("starting", retry_delay=1.0)) == 1.0
    clock.now += 1.0
    assert backoff.next_wait(Unavailable("starting", retry_delay=1.0)) is None  # would end past the deadline


def test_backoff_gives_up_at_once_on_other_errors_or_when_retries_are_off():
    assert Backoff(CallRetry(), None).next_wait(InvalidArgument("bad")) is None
    assert Backoff(CallRetry(budget=0), None).next_wait(Unavailable("down")) is None


def test_a_cancelled_the_caller_did_not_cause_is_retried_like_unavailable():
    # A server stopping gracefully cancels the calls it has not yet handed to its application.
    clock = _Clock()
    backoff = Backoff(CallRetry(budget=5), None, clock=clock, rand=lambda: 1.0)
    assert backoff.next_wait(Cancelled("server shutting down")) == pytest.approx(0.1)
    assert is_retried(Cancelled("server shutting down"))
    # The caller's own cancellation (its client was closed) is not.
    assert Backoff(CallRetry(), None).next_wait(Cancelled("closed"), cancelled_by_caller=True) is None
    assert not is_retried(Cancelled("closed"), cancelled_by_caller=True)
    assert is_retried(Unavailable("down"), cancelled_by_caller=True)
    assert Backoff(CallRetry(budget=0), None).next_wait(Cancelled("server shutting down")) is None
