from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class RetryRecord(_message.Message):
    __slots__ = ("max_attempts", "max_retry_duration_us", "min_backoff_us", "max_backoff_us", "max_doublings")
    MAX_ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    MAX_RETRY_DURATION_US_FIELD_NUMBER: _ClassVar[int]
    MIN_BACKOFF_US_FIELD_NUMBER: _ClassVar[int]
    MAX_BACKOFF_US_FIELD_NUMBER: _ClassVar[int]
    MAX_DOUBLINGS_FIELD_NUMBER: _ClassVar[int]
    max_attempts: int
    max_retry_duration_us: int
    min_backoff_us: int
    max_backoff_us: int
    max_doublings: int
    def __init__(self, max_attempts: _Optional[int] = ..., max_retry_duration_us: _Optional[int] = ..., min_backoff_us: _Optional[int] = ..., max_backoff_us: _Optional[int] = ..., max_doublings: _Optional[int] = ...) -> None: ...

class QueueRecord(_message.Message):
    __slots__ = ("queue_id", "storage_id", "type", "state", "max_dispatches_per_second", "max_burst_size", "max_concurrent_dispatches", "retry", "dispatch_deadline_us", "dead_letter_queue", "task_ttl_us", "tombstone_ttl_us", "create_time_us", "update_time_us", "purge_time_us", "purging", "http_target", "cloud_parent")
    QUEUE_ID_FIELD_NUMBER: _ClassVar[int]
    STORAGE_ID_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    MAX_DISPATCHES_PER_SECOND_FIELD_NUMBER: _ClassVar[int]
    MAX_BURST_SIZE_FIELD_NUMBER: _ClassVar[int]
    MAX_CONCURRENT_DISPATCHES_FIELD_NUMBER: _ClassVar[int]
    RETRY_FIELD_NUMBER: _ClassVar[int]
    DISPATCH_DEADLINE_US_FIELD_NUMBER: _ClassVar[int]
    DEAD_LETTER_QUEUE_FIELD_NUMBER: _ClassVar[int]
    TASK_TTL_US_FIELD_NUMBER: _ClassVar[int]
    TOMBSTONE_TTL_US_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_US_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_US_FIELD_NUMBER: _ClassVar[int]
    PURGE_TIME_US_FIELD_NUMBER: _ClassVar[int]
    PURGING_FIELD_NUMBER: _ClassVar[int]
    HTTP_TARGET_FIELD_NUMBER: _ClassVar[int]
    CLOUD_PARENT_FIELD_NUMBER: _ClassVar[int]
    queue_id: str
    storage_id: int
    type: int
    state: int
    max_dispatches_per_second: float
    max_burst_size: int
    max_concurrent_dispatches: int
    retry: RetryRecord
    dispatch_deadline_us: int
    dead_letter_queue: str
    task_ttl_us: int
    tombstone_ttl_us: int
    create_time_us: int
    update_time_us: int
    purge_time_us: int
    purging: bool
    http_target: HttpTargetRecord
    cloud_parent: str
    def __init__(self, queue_id: _Optional[str] = ..., storage_id: _Optional[int] = ..., type: _Optional[int] = ..., state: _Optional[int] = ..., max_dispatches_per_second: _Optional[float] = ..., max_burst_size: _Optional[int] = ..., max_concurrent_dispatches: _Optional[int] = ..., retry: _Optional[_Union[RetryRecord, _Mapping]] = ..., dispatch_deadline_us: _Optional[int] = ..., dead_letter_queue: _Optional[str] = ..., task_ttl_us: _Optional[int] = ..., tombstone_ttl_us: _Optional[int] = ..., create_time_us: _Optional[int] = ..., update_time_us: _Optional[int] = ..., purge_time_us: _Optional[int] = ..., purging: _Optional[bool] = ..., http_target: _Optional[_Union[HttpTargetRecord, _Mapping]] = ..., cloud_parent: _Optional[str] = ...) -> None: ...

class HttpTargetRecord(_message.Message):
    __slots__ = ("uri", "method", "headers")
    class HeadersEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    URI_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    HEADERS_FIELD_NUMBER: _ClassVar[int]
    uri: str
    method: int
    headers: _containers.ScalarMap[str, str]
    def __init__(self, uri: _Optional[str] = ..., method: _Optional[int] = ..., headers: _Optional[_Mapping[str, str]] = ...) -> None: ...

class CountersRecord(_message.Message):
    __slots__ = ("scheduled", "ready", "leased", "failed", "promoted_through_us", "promoted_through_id", "next_promotion_us", "bucket_tokens", "bucket_updated_us")
    SCHEDULED_FIELD_NUMBER: _ClassVar[int]
    READY_FIELD_NUMBER: _ClassVar[int]
    LEASED_FIELD_NUMBER: _ClassVar[int]
    FAILED_FIELD_NUMBER: _ClassVar[int]
    PROMOTED_THROUGH_US_FIELD_NUMBER: _ClassVar[int]
    PROMOTED_THROUGH_ID_FIELD_NUMBER: _ClassVar[int]
    NEXT_PROMOTION_US_FIELD_NUMBER: _ClassVar[int]
    BUCKET_TOKENS_FIELD_NUMBER: _ClassVar[int]
    BUCKET_UPDATED_US_FIELD_NUMBER: _ClassVar[int]
    scheduled: int
    ready: int
    leased: int
    failed: int
    promoted_through_us: int
    promoted_through_id: str
    next_promotion_us: int
    bucket_tokens: float
    bucket_updated_us: int
    def __init__(self, scheduled: _Optional[int] = ..., ready: _Optional[int] = ..., leased: _Optional[int] = ..., failed: _Optional[int] = ..., promoted_through_us: _Optional[int] = ..., promoted_through_id: _Optional[str] = ..., next_promotion_us: _Optional[int] = ..., bucket_tokens: _Optional[float] = ..., bucket_updated_us: _Optional[int] = ...) -> None: ...
