"""The packed task record: every field survives encoding, and damage is reported, not guessed."""

import pytest

from taskq.core.model import Attempt, RetryPolicy, Stage, Task
from taskq.store.base import StoreError
from taskq.store.task_record import decode_task, encode_task


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
    )
    assert decode_task("t", encode_task(task)) == task


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
