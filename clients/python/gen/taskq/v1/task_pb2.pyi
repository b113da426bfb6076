import datetime

from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.rpc import status_pb2 as _status_pb2
from taskq.v1 import http_pb2 as _http_pb2
from taskq.v1 import queue_pb2 as _queue_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class TaskState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TASK_STATE_UNSPECIFIED: _ClassVar[TaskState]
    TASK_STATE_SCHEDULED: _ClassVar[TaskState]
    TASK_STATE_READY: _ClassVar[TaskState]
    TASK_STATE_LEASED: _ClassVar[TaskState]
    TASK_STATE_FAILED: _ClassVar[TaskState]

class TaskView(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TASK_VIEW_UNSPECIFIED: _ClassVar[TaskView]
    TASK_VIEW_BASIC: _ClassVar[TaskView]
    TASK_VIEW_FULL: _ClassVar[TaskView]
TASK_STATE_UNSPECIFIED: TaskState
TASK_STATE_SCHEDULED: TaskState
TASK_STATE_READY: TaskState
TASK_STATE_LEASED: TaskState
TASK_STATE_FAILED: TaskState
TASK_VIEW_UNSPECIFIED: TaskView
TASK_VIEW_BASIC: TaskView
TASK_VIEW_FULL: TaskView

class Task(_message.Message):
    __slots__ = ("name", "payload", "attributes", "tag", "schedule_time", "retry_config", "dispatch_deadline", "state", "attempt_count", "first_attempt_time", "last_attempt", "lease_token", "lease_expire_time", "create_time", "view", "http_request", "response_count", "trace_parent", "trace_state")
    class AttributesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    ATTRIBUTES_FIELD_NUMBER: _ClassVar[int]
    TAG_FIELD_NUMBER: _ClassVar[int]
    SCHEDULE_TIME_FIELD_NUMBER: _ClassVar[int]
    RETRY_CONFIG_FIELD_NUMBER: _ClassVar[int]
    DISPATCH_DEADLINE_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_COUNT_FIELD_NUMBER: _ClassVar[int]
    FIRST_ATTEMPT_TIME_FIELD_NUMBER: _ClassVar[int]
    LAST_ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    LEASE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    LEASE_EXPIRE_TIME_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    VIEW_FIELD_NUMBER: _ClassVar[int]
    HTTP_REQUEST_FIELD_NUMBER: _ClassVar[int]
    RESPONSE_COUNT_FIELD_NUMBER: _ClassVar[int]
    TRACE_PARENT_FIELD_NUMBER: _ClassVar[int]
    TRACE_STATE_FIELD_NUMBER: _ClassVar[int]
    name: str
    payload: bytes
    attributes: _containers.ScalarMap[str, str]
    tag: str
    schedule_time: _timestamp_pb2.Timestamp
    retry_config: _queue_pb2.RetryConfig
    dispatch_deadline: _duration_pb2.Duration
    state: TaskState
    attempt_count: int
    first_attempt_time: _timestamp_pb2.Timestamp
    last_attempt: Attempt
    lease_token: str
    lease_expire_time: _timestamp_pb2.Timestamp
    create_time: _timestamp_pb2.Timestamp
    view: TaskView
    http_request: _http_pb2.HttpRequest
    response_count: int
    trace_parent: str
    trace_state: str
    def __init__(self, name: _Optional[str] = ..., payload: _Optional[bytes] = ..., attributes: _Optional[_Mapping[str, str]] = ..., tag: _Optional[str] = ..., schedule_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., retry_config: _Optional[_Union[_queue_pb2.RetryConfig, _Mapping]] = ..., dispatch_deadline: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., state: _Optional[_Union[TaskState, str]] = ..., attempt_count: _Optional[int] = ..., first_attempt_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_attempt: _Optional[_Union[Attempt, _Mapping]] = ..., lease_token: _Optional[str] = ..., lease_expire_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., view: _Optional[_Union[TaskView, str]] = ..., http_request: _Optional[_Union[_http_pb2.HttpRequest, _Mapping]] = ..., response_count: _Optional[int] = ..., trace_parent: _Optional[str] = ..., trace_state: _Optional[str] = ...) -> None: ...

class Attempt(_message.Message):
    __slots__ = ("dispatch_time", "response_time", "error", "http_status")
    DISPATCH_TIME_FIELD_NUMBER: _ClassVar[int]
    RESPONSE_TIME_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    HTTP_STATUS_FIELD_NUMBER: _ClassVar[int]
    dispatch_time: _timestamp_pb2.Timestamp
    response_time: _timestamp_pb2.Timestamp
    error: _status_pb2.Status
    http_status: int
    def __init__(self, dispatch_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., response_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., error: _Optional[_Union[_status_pb2.Status, _Mapping]] = ..., http_status: _Optional[int] = ...) -> None: ...
