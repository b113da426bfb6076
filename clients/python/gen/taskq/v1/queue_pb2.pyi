import datetime

from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from taskq.v1 import http_pb2 as _http_pb2
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class QueueType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    QUEUE_TYPE_UNSPECIFIED: _ClassVar[QueueType]
    QUEUE_TYPE_PUSH: _ClassVar[QueueType]
    QUEUE_TYPE_PULL: _ClassVar[QueueType]

class QueueState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    QUEUE_STATE_UNSPECIFIED: _ClassVar[QueueState]
    QUEUE_STATE_RUNNING: _ClassVar[QueueState]
    QUEUE_STATE_PAUSED: _ClassVar[QueueState]
QUEUE_TYPE_UNSPECIFIED: QueueType
QUEUE_TYPE_PUSH: QueueType
QUEUE_TYPE_PULL: QueueType
QUEUE_STATE_UNSPECIFIED: QueueState
QUEUE_STATE_RUNNING: QueueState
QUEUE_STATE_PAUSED: QueueState

class Queue(_message.Message):
    __slots__ = ("name", "type", "rate_limits", "retry_config", "dispatch_deadline", "dead_letter_queue", "task_ttl", "tombstone_ttl", "state", "create_time", "update_time", "purge_time", "http_target")
    NAME_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    RATE_LIMITS_FIELD_NUMBER: _ClassVar[int]
    RETRY_CONFIG_FIELD_NUMBER: _ClassVar[int]
    DISPATCH_DEADLINE_FIELD_NUMBER: _ClassVar[int]
    DEAD_LETTER_QUEUE_FIELD_NUMBER: _ClassVar[int]
    TASK_TTL_FIELD_NUMBER: _ClassVar[int]
    TOMBSTONE_TTL_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    PURGE_TIME_FIELD_NUMBER: _ClassVar[int]
    HTTP_TARGET_FIELD_NUMBER: _ClassVar[int]
    name: str
    type: QueueType
    rate_limits: RateLimits
    retry_config: RetryConfig
    dispatch_deadline: _duration_pb2.Duration
    dead_letter_queue: str
    task_ttl: _duration_pb2.Duration
    tombstone_ttl: _duration_pb2.Duration
    state: QueueState
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    purge_time: _timestamp_pb2.Timestamp
    http_target: _http_pb2.HttpTarget
    def __init__(self, name: _Optional[str] = ..., type: _Optional[_Union[QueueType, str]] = ..., rate_limits: _Optional[_Union[RateLimits, _Mapping]] = ..., retry_config: _Optional[_Union[RetryConfig, _Mapping]] = ..., dispatch_deadline: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., dead_letter_queue: _Optional[str] = ..., task_ttl: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., tombstone_ttl: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., state: _Optional[_Union[QueueState, str]] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., purge_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., http_target: _Optional[_Union[_http_pb2.HttpTarget, _Mapping]] = ...) -> None: ...

class RateLimits(_message.Message):
    __slots__ = ("max_dispatches_per_second", "max_burst_size", "max_concurrent_dispatches")
    MAX_DISPATCHES_PER_SECOND_FIELD_NUMBER: _ClassVar[int]
    MAX_BURST_SIZE_FIELD_NUMBER: _ClassVar[int]
    MAX_CONCURRENT_DISPATCHES_FIELD_NUMBER: _ClassVar[int]
    max_dispatches_per_second: float
    max_burst_size: int
    max_concurrent_dispatches: int
    def __init__(self, max_dispatches_per_second: _Optional[float] = ..., max_burst_size: _Optional[int] = ..., max_concurrent_dispatches: _Optional[int] = ...) -> None: ...

class RetryConfig(_message.Message):
    __slots__ = ("max_attempts", "max_retry_duration", "min_backoff", "max_backoff", "max_doublings")
    MAX_ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    MAX_RETRY_DURATION_FIELD_NUMBER: _ClassVar[int]
    MIN_BACKOFF_FIELD_NUMBER: _ClassVar[int]
    MAX_BACKOFF_FIELD_NUMBER: _ClassVar[int]
    MAX_DOUBLINGS_FIELD_NUMBER: _ClassVar[int]
    max_attempts: int
    max_retry_duration: _duration_pb2.Duration
    min_backoff: _duration_pb2.Duration
    max_backoff: _duration_pb2.Duration
    max_doublings: int
    def __init__(self, max_attempts: _Optional[int] = ..., max_retry_duration: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., min_backoff: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., max_backoff: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., max_doublings: _Optional[int] = ...) -> None: ...

class QueueStats(_message.Message):
    __slots__ = ("tasks_count", "scheduled_count", "ready_count", "leased_count", "failed_count", "oldest_schedule_time", "executed_last_minute", "leased_last_minute", "concurrent_dispatches", "effective_dispatch_rate")
    TASKS_COUNT_FIELD_NUMBER: _ClassVar[int]
    SCHEDULED_COUNT_FIELD_NUMBER: _ClassVar[int]
    READY_COUNT_FIELD_NUMBER: _ClassVar[int]
    LEASED_COUNT_FIELD_NUMBER: _ClassVar[int]
    FAILED_COUNT_FIELD_NUMBER: _ClassVar[int]
    OLDEST_SCHEDULE_TIME_FIELD_NUMBER: _ClassVar[int]
    EXECUTED_LAST_MINUTE_FIELD_NUMBER: _ClassVar[int]
    LEASED_LAST_MINUTE_FIELD_NUMBER: _ClassVar[int]
    CONCURRENT_DISPATCHES_FIELD_NUMBER: _ClassVar[int]
    EFFECTIVE_DISPATCH_RATE_FIELD_NUMBER: _ClassVar[int]
    tasks_count: int
    scheduled_count: int
    ready_count: int
    leased_count: int
    failed_count: int
    oldest_schedule_time: _timestamp_pb2.Timestamp
    executed_last_minute: int
    leased_last_minute: int
    concurrent_dispatches: int
    effective_dispatch_rate: float
    def __init__(self, tasks_count: _Optional[int] = ..., scheduled_count: _Optional[int] = ..., ready_count: _Optional[int] = ..., leased_count: _Optional[int] = ..., failed_count: _Optional[int] = ..., oldest_schedule_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., executed_last_minute: _Optional[int] = ..., leased_last_minute: _Optional[int] = ..., concurrent_dispatches: _Optional[int] = ..., effective_dispatch_rate: _Optional[float] = ...) -> None: ...
