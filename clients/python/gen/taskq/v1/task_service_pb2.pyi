import datetime

from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.rpc import status_pb2 as _status_pb2
from taskq.v1 import task_pb2 as _task_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class CreateTaskRequest(_message.Message):
    __slots__ = ("parent", "task", "request_id", "response_view")
    PARENT_FIELD_NUMBER: _ClassVar[int]
    TASK_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    RESPONSE_VIEW_FIELD_NUMBER: _ClassVar[int]
    parent: str
    task: _task_pb2.Task
    request_id: str
    response_view: _task_pb2.TaskView
    def __init__(self, parent: _Optional[str] = ..., task: _Optional[_Union[_task_pb2.Task, _Mapping]] = ..., request_id: _Optional[str] = ..., response_view: _Optional[_Union[_task_pb2.TaskView, str]] = ...) -> None: ...

class CreateTaskResponse(_message.Message):
    __slots__ = ("task",)
    TASK_FIELD_NUMBER: _ClassVar[int]
    task: _task_pb2.Task
    def __init__(self, task: _Optional[_Union[_task_pb2.Task, _Mapping]] = ...) -> None: ...

class BatchCreateTasksRequest(_message.Message):
    __slots__ = ("parent", "requests")
    PARENT_FIELD_NUMBER: _ClassVar[int]
    REQUESTS_FIELD_NUMBER: _ClassVar[int]
    parent: str
    requests: _containers.RepeatedCompositeFieldContainer[CreateTaskRequest]
    def __init__(self, parent: _Optional[str] = ..., requests: _Optional[_Iterable[_Union[CreateTaskRequest, _Mapping]]] = ...) -> None: ...

class BatchCreateTasksResponse(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[BatchCreateTasksResult]
    def __init__(self, results: _Optional[_Iterable[_Union[BatchCreateTasksResult, _Mapping]]] = ...) -> None: ...

class BatchCreateTasksResult(_message.Message):
    __slots__ = ("task", "error")
    TASK_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    task: _task_pb2.Task
    error: _status_pb2.Status
    def __init__(self, task: _Optional[_Union[_task_pb2.Task, _Mapping]] = ..., error: _Optional[_Union[_status_pb2.Status, _Mapping]] = ...) -> None: ...

class GetTaskRequest(_message.Message):
    __slots__ = ("name", "view")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VIEW_FIELD_NUMBER: _ClassVar[int]
    name: str
    view: _task_pb2.TaskView
    def __init__(self, name: _Optional[str] = ..., view: _Optional[_Union[_task_pb2.TaskView, str]] = ...) -> None: ...

class GetTaskResponse(_message.Message):
    __slots__ = ("task",)
    TASK_FIELD_NUMBER: _ClassVar[int]
    task: _task_pb2.Task
    def __init__(self, task: _Optional[_Union[_task_pb2.Task, _Mapping]] = ...) -> None: ...

class ListTasksRequest(_message.Message):
    __slots__ = ("parent", "filter", "view", "page_size", "page_token")
    PARENT_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    VIEW_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    parent: str
    filter: str
    view: _task_pb2.TaskView
    page_size: int
    page_token: str
    def __init__(self, parent: _Optional[str] = ..., filter: _Optional[str] = ..., view: _Optional[_Union[_task_pb2.TaskView, str]] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListTasksResponse(_message.Message):
    __slots__ = ("tasks", "next_page_token")
    TASKS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    tasks: _containers.RepeatedCompositeFieldContainer[_task_pb2.Task]
    next_page_token: str
    def __init__(self, tasks: _Optional[_Iterable[_Union[_task_pb2.Task, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class DeleteTaskRequest(_message.Message):
    __slots__ = ("name", "lease_token")
    NAME_FIELD_NUMBER: _ClassVar[int]
    LEASE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    name: str
    lease_token: str
    def __init__(self, name: _Optional[str] = ..., lease_token: _Optional[str] = ...) -> None: ...

class DeleteTaskResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class BatchDeleteTasksRequest(_message.Message):
    __slots__ = ("parent", "requests")
    PARENT_FIELD_NUMBER: _ClassVar[int]
    REQUESTS_FIELD_NUMBER: _ClassVar[int]
    parent: str
    requests: _containers.RepeatedCompositeFieldContainer[DeleteTaskRequest]
    def __init__(self, parent: _Optional[str] = ..., requests: _Optional[_Iterable[_Union[DeleteTaskRequest, _Mapping]]] = ...) -> None: ...

class BatchDeleteTasksResponse(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[_status_pb2.Status]
    def __init__(self, results: _Optional[_Iterable[_Union[_status_pb2.Status, _Mapping]]] = ...) -> None: ...

class LeaseTasksRequest(_message.Message):
    __slots__ = ("parent", "lease_duration", "max_tasks", "tag", "oldest_tag", "wait", "response_view")
    PARENT_FIELD_NUMBER: _ClassVar[int]
    LEASE_DURATION_FIELD_NUMBER: _ClassVar[int]
    MAX_TASKS_FIELD_NUMBER: _ClassVar[int]
    TAG_FIELD_NUMBER: _ClassVar[int]
    OLDEST_TAG_FIELD_NUMBER: _ClassVar[int]
    WAIT_FIELD_NUMBER: _ClassVar[int]
    RESPONSE_VIEW_FIELD_NUMBER: _ClassVar[int]
    parent: str
    lease_duration: _duration_pb2.Duration
    max_tasks: int
    tag: str
    oldest_tag: bool
    wait: _duration_pb2.Duration
    response_view: _task_pb2.TaskView
    def __init__(self, parent: _Optional[str] = ..., lease_duration: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., max_tasks: _Optional[int] = ..., tag: _Optional[str] = ..., oldest_tag: _Optional[bool] = ..., wait: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., response_view: _Optional[_Union[_task_pb2.TaskView, str]] = ...) -> None: ...

class LeaseTasksResponse(_message.Message):
    __slots__ = ("tasks",)
    TASKS_FIELD_NUMBER: _ClassVar[int]
    tasks: _containers.RepeatedCompositeFieldContainer[_task_pb2.Task]
    def __init__(self, tasks: _Optional[_Iterable[_Union[_task_pb2.Task, _Mapping]]] = ...) -> None: ...

class ModifyLeaseRequest(_message.Message):
    __slots__ = ("name", "lease_token", "lease_duration")
    NAME_FIELD_NUMBER: _ClassVar[int]
    LEASE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    LEASE_DURATION_FIELD_NUMBER: _ClassVar[int]
    name: str
    lease_token: str
    lease_duration: _duration_pb2.Duration
    def __init__(self, name: _Optional[str] = ..., lease_token: _Optional[str] = ..., lease_duration: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class ModifyLeaseResponse(_message.Message):
    __slots__ = ("task",)
    TASK_FIELD_NUMBER: _ClassVar[int]
    task: _task_pb2.Task
    def __init__(self, task: _Optional[_Union[_task_pb2.Task, _Mapping]] = ...) -> None: ...

class RunTaskRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class RunTaskResponse(_message.Message):
    __slots__ = ("task",)
    TASK_FIELD_NUMBER: _ClassVar[int]
    task: _task_pb2.Task
    def __init__(self, task: _Optional[_Union[_task_pb2.Task, _Mapping]] = ...) -> None: ...

class StreamTasksRequest(_message.Message):
    __slots__ = ("subscription", "acks", "nacks", "lease_extensions")
    SUBSCRIPTION_FIELD_NUMBER: _ClassVar[int]
    ACKS_FIELD_NUMBER: _ClassVar[int]
    NACKS_FIELD_NUMBER: _ClassVar[int]
    LEASE_EXTENSIONS_FIELD_NUMBER: _ClassVar[int]
    subscription: StreamSubscription
    acks: _containers.RepeatedCompositeFieldContainer[TaskAck]
    nacks: _containers.RepeatedCompositeFieldContainer[TaskNack]
    lease_extensions: _containers.RepeatedCompositeFieldContainer[LeaseExtension]
    def __init__(self, subscription: _Optional[_Union[StreamSubscription, _Mapping]] = ..., acks: _Optional[_Iterable[_Union[TaskAck, _Mapping]]] = ..., nacks: _Optional[_Iterable[_Union[TaskNack, _Mapping]]] = ..., lease_extensions: _Optional[_Iterable[_Union[LeaseExtension, _Mapping]]] = ...) -> None: ...

class StreamSubscription(_message.Message):
    __slots__ = ("queue", "max_outstanding")
    QUEUE_FIELD_NUMBER: _ClassVar[int]
    MAX_OUTSTANDING_FIELD_NUMBER: _ClassVar[int]
    queue: str
    max_outstanding: int
    def __init__(self, queue: _Optional[str] = ..., max_outstanding: _Optional[int] = ...) -> None: ...

class TaskAck(_message.Message):
    __slots__ = ("name", "lease_token")
    NAME_FIELD_NUMBER: _ClassVar[int]
    LEASE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    name: str
    lease_token: str
    def __init__(self, name: _Optional[str] = ..., lease_token: _Optional[str] = ...) -> None: ...

class TaskNack(_message.Message):
    __slots__ = ("name", "lease_token", "error", "retry_delay", "permanent")
    NAME_FIELD_NUMBER: _ClassVar[int]
    LEASE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    RETRY_DELAY_FIELD_NUMBER: _ClassVar[int]
    PERMANENT_FIELD_NUMBER: _ClassVar[int]
    name: str
    lease_token: str
    error: _status_pb2.Status
    retry_delay: _duration_pb2.Duration
    permanent: bool
    def __init__(self, name: _Optional[str] = ..., lease_token: _Optional[str] = ..., error: _Optional[_Union[_status_pb2.Status, _Mapping]] = ..., retry_delay: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., permanent: _Optional[bool] = ...) -> None: ...

class LeaseExtension(_message.Message):
    __slots__ = ("name", "lease_token", "lease_duration")
    NAME_FIELD_NUMBER: _ClassVar[int]
    LEASE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    LEASE_DURATION_FIELD_NUMBER: _ClassVar[int]
    name: str
    lease_token: str
    lease_duration: _duration_pb2.Duration
    def __init__(self, name: _Optional[str] = ..., lease_token: _Optional[str] = ..., lease_duration: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class StreamTasksResponse(_message.Message):
    __slots__ = ("tasks", "errors", "heartbeat_time")
    TASKS_FIELD_NUMBER: _ClassVar[int]
    ERRORS_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_TIME_FIELD_NUMBER: _ClassVar[int]
    tasks: _containers.RepeatedCompositeFieldContainer[_task_pb2.Task]
    errors: _containers.RepeatedCompositeFieldContainer[StreamError]
    heartbeat_time: _timestamp_pb2.Timestamp
    def __init__(self, tasks: _Optional[_Iterable[_Union[_task_pb2.Task, _Mapping]]] = ..., errors: _Optional[_Iterable[_Union[StreamError, _Mapping]]] = ..., heartbeat_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class StreamError(_message.Message):
    __slots__ = ("name", "lease_token", "status")
    NAME_FIELD_NUMBER: _ClassVar[int]
    LEASE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    name: str
    lease_token: str
    status: _status_pb2.Status
    def __init__(self, name: _Optional[str] = ..., lease_token: _Optional[str] = ..., status: _Optional[_Union[_status_pb2.Status, _Mapping]] = ...) -> None: ...
