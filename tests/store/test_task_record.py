"""The packed task record: every field survives encoding, and damage is reported, not guessed."""

import struct

import pytest

from taskq.core.model import Attempt, RetryPolicy, Stage, Task
from taskq.store.base import StoreError
from taskq.store.task_record import VERSION, decode_task, encode_task

TRACE_PARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def test_a_minimal_task_round_trips():
    task = Task("t", schedule_time_us=5, create_time_us=4)
    assert decode_task("t", encode_task(task)) == task


def test_every_field_round_trips():
    task = Task(
        task_id="t",
        schedule_time_us=1_800_000_000_000_001,
        create_time_us=1_799_999_999_999_999,
        payload=b"\x00\xffpayload",
        attributes={"content-type": "text/plain", "é": "ü" * 300, "empty": ""},
        tag="tâg",
        stage=Stage.LEASED,
        attempt_count=7,
        first_attempt_time_us=1_800_000_000_000_002,
        last_attempt=Attempt(1_800_000_000_000_003, 1_800_000_000_000_004, 13, "boom ✗"),
        lease_token="Ab-_0123456789xy",
        lease_expire_us=1_800_000_600_000_000,
        retry=RetryPolicy(max_attempts=3, max_retry_duration_us=None, min_backoff_us=0, max_backoff_us=9,
                          max_doublings=None),
        dispatch_deadline_us=15_000_000,
        named=True,
        retain_until_us=42,
        trace_parent=TRACE_PARENT,
        trace_state="congo=t61rcWkgMzE," + "x" * 490,
    )
    assert decode_task("t", encode_task(task)) == task


def test_a_trace_context_round_trips_with_and_without_a_tracestate():
    for state in ("", "vendor=value"):
        task = Task("t", 1, 1, payload=b"body", trace_parent=TRACE_PARENT, trace_state=state)
        decoded = decode_task("t", encode_task(task))
        assert (decoded.trace_parent, decoded.trace_state, decoded.payload) == (TRACE_PARENT, state, b"body")


def test_a_version_2_record_written_before_tracing_is_still_read():
    # Written by hand as the previous release did: header, empty token, empty tag, payload.
    header = struct.pack(">BBBiqqqqqq", 2, Stage.WAITING.value, 0, 0, 5, 4, 0, 0, 0, 0)
    decoded = decode_task("t", header + b"\x00" + b"\x00\x00" + b"payload")
    assert decoded == Task("t", 5, 4, payload=b"payload")
    assert (decoded.trace_parent, decoded.trace_state) == ("", "")


def test_only_a_traced_task_needs_the_new_record_version():
    # Servers of the previous release (sharing a PostgreSQL database during a rolling
    # upgrade) read version 2: untraced tasks stay readable to them.
    assert encode_task(Task("t", 1, 1))[0] == 2
    assert encode_task(Task("t", 1, 1, trace_parent=TRACE_PARENT))[0] == VERSION == 3


def test_a_retry_override_keeps_which_fields_are_set():
    task = Task("t", 1, 1, retry=RetryPolicy(max_attempts=0))
    assert decode_task("t", encode_task(task)).retry == RetryPolicy(max_attempts=0)


def test_a_truncated_record_is_reported_as_corrupt():
    data = encode_task(Task("t", 1, 1, tag="x" * 50))
    with pytest.raises(StoreError, match="corrupt"):
        decode_task("t", data[:40])


def test_a_record_of_an_unknown_version_is_refused():
    data = bytearray(encode_task(Task("t", 1, 1)))
    data[0] = 99
    with pytest.raises(StoreError, match="version 99"):
        decode_task("t", bytes(data))
