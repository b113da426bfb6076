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
from taskq.v1 import queue_service_pb2, task_pb2, task_service_pb2


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
