"""Encoding of queues, counters and request ids into their stored values, and back. Tasks, the
hot path, have their own compact format in task_record.py."""

from __future__ import annotations

import struct

from taskq.core.model import (
    Counters,
    HttpMethod,
    HttpTarget,
    Queue,
    QueueState,
    QueueType,
    RequestRecord,
    RetryPolicy,
    TokenState,
)
from taskq.store.gen import records_pb2


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
        purging=queue.purging,
        cloud_parent=queue.cloud_parent,
    )
    if queue.max_dispatches_per_second is not None:
        record.max_dispatches_per_second = queue.max_dispatches_per_second
    encode_retry(queue.retry, record.retry)
    if queue.http_target is not None:
        target = record.http_target
        target.uri = queue.http_target.uri
        target.method = queue.http_target.method.value
        target.headers.update(queue.http_target.headers)
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
        purging=record.purging,
        storage_id=record.storage_id,
        http_target=(
            HttpTarget(record.http_target.uri, HttpMethod(record.http_target.method), dict(record.http_target.headers))
            if record.HasField("http_target") else None
        ),
        cloud_parent=record.cloud_parent,
    )


def encode_counters(counters: Counters, bucket: TokenState | None) -> bytes:
    record = records_pb2.CountersRecord(
        scheduled=counters.scheduled,
        ready=counters.ready,
        leased=counters.leased,
        failed=counters.failed,
        promoted_through_us=counters.promoted_through_us,
        promoted_through_id=counters.promoted_through_id,
        next_promotion_us=counters.next_promotion_us,
    )
    if bucket is not None:
        record.bucket_tokens = bucket.tokens
        record.bucket_updated_us = bucket.updated_us
    return record.SerializeToString()


def decode_counters(data: bytes) -> tuple[Counters, TokenState | None]:
    record = records_pb2.CountersRecord.FromString(data)
    counters = Counters(
        scheduled=record.scheduled,
        ready=record.ready,
        leased=record.leased,
        failed=record.failed,
        promoted_through_us=record.promoted_through_us,
        promoted_through_id=record.promoted_through_id,
        next_promotion_us=record.next_promotion_us,
    )
    bucket = TokenState(record.bucket_tokens, record.bucket_updated_us) if record.HasField("bucket_tokens") else None
    return counters, bucket


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
