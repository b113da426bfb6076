"""The client's pure pieces: names, request building, error mapping and the channel config."""

from __future__ import annotations

import datetime
import json

import grpc
import pytest
from google.rpc import code_pb2, error_details_pb2, status_pb2

from taskq.client import FailedPrecondition, LeaseLost, NotFound, UnknownError, from_status
from taskq.client import requests
from taskq.client.channel import channel_options, service_config
from taskq.client.names import queue_name, task_name_in
from taskq.client.times import to_duration
from taskq.v1 import task_pb2


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


def test_retries_cover_every_unary_method_and_no_stream():
    config = service_config()
    names = {(entry["service"], entry["method"]) for entry in config["methodConfig"][0]["name"]}
    assert ("taskq.v1.TaskService", "CreateTask") in names
    assert ("taskq.v1.QueueService", "GetQueueStats") in names
    assert ("taskq.v1.TaskService", "StreamTasks") not in names
    assert len(names) == 18
    assert config["methodConfig"][0]["retryPolicy"]["retryableStatusCodes"] == ["UNAVAILABLE"]


def test_channel_options_keep_pings_within_the_servers_policy():
    options = dict(channel_options())
    assert options["grpc.keepalive_time_ms"] >= 10_000  # the server's min_ping_interval_without_data
    assert options["grpc.max_receive_message_length"] == 32 * 1024 * 1024
    assert json.loads(options["grpc.service_config"]) == service_config()
