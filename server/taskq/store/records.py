"""Encoding of domain objects into the stored values of records.proto, and back."""

from __future__ import annotations

import struct

from taskq.core.model import (
    Attempt,
    Counters,
    Queue,
    QueueState,
    QueueType,
    RequestRecord,
    RetryPolicy,
    Stage,
    Task,
)
from taskq.store.gen import records_pb2

_STAGES = {stage.value: stage for stage in Stage}


def encode_retry(policy: RetryPolicy, record: records_pb2.RetryRecord) -> None:
    if policy.max_attempts is not None:
        record.max_attempts = policy.max_attempts
    if policy.max_retry_duration_us is not None:
        record.max_retry_duration_us = policy.max_retry_duration_us
    if policy.min_backoff_us is not None:
        record.min_backoff_us = policy.min_backoff_us
    if policy.max_backoff_us is not None:
        record.max_backoff_us = policy.max_backoff_us
    if policy.max_doublings is not None:
        record.max_doublings = policy.max_doublings


def decode_retry(record: records_pb2.RetryRecord) -> RetryPolicy:
    has = record.HasField
    return RetryPolicy(
        max_attempts=record.max_attempts if has("max_attempts") else None,
        max_retry_duration_us=record.max_retry_duration_us if has("max_retry_duration_us") else None,
        min_backoff_us=record.min_backoff_us if has("min_backoff_us") else None,
        max_backoff_us=record.max_backoff_us if has("max_backoff_us") else None,
        max_doublings=record.max_doublings if has("max_doublings") else None,
    )


def encode_task(task: Task) -> bytes:
    record = records_pb2.TaskRecord(
        payload=task.payload,
        attributes=task.attributes,
        tag=task.tag,
        schedule_time_us=task.schedule_time_us,
        create_time_us=task.create_time_us,
        stage=task.stage.value,
        attempt_count=task.attempt_count,
        first_attempt_time_us=task.first_attempt_time_us,
        lease_token=task.lease_token,
        lease_expire_us=task.lease_expire_us,
        dispatch_deadline_us=task.dispatch_deadline_us,
        named=task.named,
        retain_until_us=task.retain_until_us,
    )
    attempt = task.last_attempt
    if attempt is not None:
        last = record.last_attempt
        last.dispatch_time_us = attempt.dispatch_time_us
        last.response_time_us = attempt.response_time_us
        last.error_code = attempt.error_code
        last.error_message = attempt.error_message
    if task.retry is not None:
        encode_retry(task.retry, record.retry)
    return record.SerializeToString()


def decode_task(task_id: str, data: bytes) -> Task:
    record = records_pb2.TaskRecord.FromString(data)
    last_attempt = None
    if record.HasField("last_attempt"):
        last = record.last_attempt
        last_attempt = Attempt(last.dispatch_time_us, last.response_time_us, last.error_code, last.error_message)
    attributes = record.attributes
    # Positional, in Task's field order: this runs for every task leased or acknowledged.
    return Task(
        task_id,
        record.schedule_time_us,
        record.create_time_us,
        record.payload,
        dict(attributes) if attributes else {},
        record.tag,
        _STAGES[record.stage],
        record.attempt_count,
        record.first_attempt_time_us,
        last_attempt,
        record.lease_token,
        record.lease_expire_us,
        decode_retry(record.retry) if record.HasField("retry") else None,
        record.dispatch_deadline_us,
        record.named,
        record.retain_until_us,
    )


def encode_queue(queue: Queue) -> bytes:
    record = records_pb2.QueueRecord(
        queue_id=queue.queue_id,
        storage_id=queue.storage_id,
        type=queue.type.value,
        state=queue.state.value,
        max_burst_size=queue.max_burst_size,
        max_concurrent_dispatches=queue.max_concurrent_dispatches,
        dispatch_deadline_us=queue.dispatch_deadline_us,
        dead_letter_queue=queue.dead_letter_queue,
        task_ttl_us=queue.task_ttl_us,
        tombstone_ttl_us=queue.tombstone_ttl_us,
        create_time_us=queue.create_time_us,
        update_time_us=queue.update_time_us,
        purge_time_us=queue.purge_time_us,
    )
    if queue.max_dispatches_per_second is not None:
        record.max_dispatches_per_second = queue.max_dispatches_per_second
    encode_retry(queue.retry, record.retry)
    return record.SerializeToString()


def decode_queue(data: bytes) -> Queue:
    record = records_pb2.QueueRecord.FromString(data)
    return Queue(
        queue_id=record.queue_id,
        type=QueueType(record.type),
        retry=decode_retry(record.retry),
        dispatch_deadline_us=record.dispatch_deadline_us,
        task_ttl_us=record.task_ttl_us,
        tombstone_ttl_us=record.tombstone_ttl_us,
        state=QueueState(record.state),
        max_dispatches_per_second=(
            record.max_dispatches_per_second if record.HasField("max_dispatches_per_second") else None
        ),
        max_burst_size=record.max_burst_size,
        max_concurrent_dispatches=record.max_concurrent_dispatches,
        dead_letter_queue=record.dead_letter_queue,
        create_time_us=record.create_time_us,
        update_time_us=record.update_time_us,
        purge_time_us=record.purge_time_us,
        storage_id=record.storage_id,
    )


def encode_counters(counters: Counters) -> bytes:
    return records_pb2.CountersRecord(
        scheduled=counters.scheduled,
        ready=counters.ready,
        leased=counters.leased,
        failed=counters.failed,
        promoted_through_us=counters.promoted_through_us,
    ).SerializeToString()


def decode_counters(data: bytes) -> Counters:
    record = records_pb2.CountersRecord.FromString(data)
    return Counters(
        scheduled=record.scheduled,
        ready=record.ready,
        leased=record.leased,
        failed=record.failed,
        promoted_through_us=record.promoted_through_us,
    )


_REQUEST_HEADER = struct.Struct(">qqH")


def encode_request(record: RequestRecord) -> bytes:
    task_id = record.task_id.encode()
    return _REQUEST_HEADER.pack(record.schedule_time_us, record.create_time_us, len(task_id)) + task_id + record.tag.encode()


def decode_request(data: bytes) -> RequestRecord:
    schedule_us, create_us, length = _REQUEST_HEADER.unpack_from(data)
    start = _REQUEST_HEADER.size
    return RequestRecord(
        data[start : start + length].decode(), data[start + length :].decode(), schedule_us, create_us
    )
