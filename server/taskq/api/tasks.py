"""TaskService: validate, call core.tasks, convert. Nothing else.

StreamTasks lives in api/stream.py.
"""

from __future__ import annotations

from google.rpc import status_pb2

from taskq.api import convert, validate
from taskq.api.engine_ref import EngineRef
from taskq.api.status import guarded, to_status
from taskq.api.stream import StreamHandler
from taskq.api.trace_context import creating_trace
from taskq.core import limits, pagination
from taskq.core.errors import InvalidArgument, TaskqError
from taskq.core.filter import parse as parse_filter
from taskq.core.tasks import DeleteRequest, NewTask
from taskq.v1 import task_pb2, task_service_pb2, task_service_pb2_grpc

_OK = status_pb2.Status(code=0)


class TaskServicer(task_service_pb2_grpc.TaskServiceServicer):
    def __init__(self, engine: EngineRef, stream_handler: StreamHandler) -> None:
        self._engine = engine
        self._stream_handler = stream_handler

    @guarded
    async def CreateTask(self, request, context):
        engine = self._engine.get()
        queue_id = validate.queue_id(request.parent, "parent")
        new_task = validate.new_task(request, queue_id, "", engine.limits)
        new_task.trace_parent, new_task.trace_state = creating_trace(context)
        view = validate.view(request.response_view, "response_view", task_pb2.TASK_VIEW_BASIC)
        [result] = await engine.tasks.create(queue_id, [new_task])
        if isinstance(result, TaskqError):
            raise result
        return task_service_pb2.CreateTaskResponse(
            task=convert.task_to_proto(queue_id, result, engine.clock.now_us(), view)
        )

    @guarded
    async def BatchCreateTasks(self, request, context):
        engine = self._engine.get()
        queue_id = validate.queue_id(request.parent, "parent")
        validate.batch_size(len(request.requests), "requests")
        items: list[NewTask | TaskqError] = []
        views: list[int | TaskqError] = []
        for index, item in enumerate(request.requests):
            field = f"requests[{index}]."
            views.append(validate.item_or_error(validate.view, item.response_view, f"{field}response_view",
                                                task_pb2.TASK_VIEW_BASIC))
            if item.parent and item.parent != request.parent:
                items.append(InvalidArgument.field(f"{field}parent", "must be empty or equal the batch's parent",
                                                   "PARENT_MISMATCH"))
                continue
            items.append(validate.item_or_error(validate.new_task, item, queue_id, field, engine.limits))
        _check_batch_response_size(request, views, queue_id, engine.limits)
        trace_parent, trace_state = creating_trace(context)
        for item in items:
            if isinstance(item, NewTask):
                item.trace_parent, item.trace_state = trace_parent, trace_state
        results = await engine.tasks.create(queue_id, items)
        now_us = engine.clock.now_us()
        response = task_service_pb2.BatchCreateTasksResponse()
        for index, (result, view) in enumerate(zip(results, views)):
            entry = response.results.add()
            if isinstance(result, TaskqError):
                entry.error.CopyFrom(to_status(_in_item(result, f"requests[{index}].")))
            elif isinstance(view, TaskqError):
                entry.error.CopyFrom(to_status(view))
            else:
                convert.fill_task(entry.task, queue_id, result, now_us, view)
        return response

    @guarded
    async def GetTask(self, request, context):
        engine = self._engine.get()
        queue_id, task_id = validate.task_ids(request.name, "name")
        view = validate.view(request.view, "view", task_pb2.TASK_VIEW_FULL)
        task = await engine.tasks.get(queue_id, task_id)
        return task_service_pb2.GetTaskResponse(task=convert.task_to_proto(queue_id, task, engine.clock.now_us(), view))

    @guarded
    async def ListTasks(self, request, context):
        engine = self._engine.get()
        queue_id = validate.queue_id(request.parent, "parent")
        task_filter = parse_filter(request.filter)
        view = validate.view(request.view, "view", task_pb2.TASK_VIEW_BASIC)
        size = pagination.page_size(request.page_size)
        arguments = (request.parent, request.filter, str(view))
        after = pagination.decode(request.page_token, arguments, engine.page_token_key, limits.TASK_ID_PATTERN)
        tasks, resume_after = await engine.tasks.page(
            queue_id, task_filter, after, size, payloads=view == task_pb2.TASK_VIEW_FULL
        )
        now_us = engine.clock.now_us()
        return task_service_pb2.ListTasksResponse(
            tasks=[convert.task_to_proto(queue_id, task, now_us, view) for task in tasks],
            next_page_token=(
                pagination.encode(resume_after, arguments, engine.page_token_key) if resume_after else ""
            ),
        )

    @guarded
    async def DeleteTask(self, request, context):
        engine = self._engine.get()
        queue_id, task_id = validate.task_ids(request.name, "name")
        token = validate.lease_token(request.lease_token, "lease_token", required=False)
        [error] = await engine.tasks.delete(queue_id, [DeleteRequest(task_id, token)])
        if error is not None:
            raise error
        return task_service_pb2.DeleteTaskResponse()

    @guarded
    async def BatchDeleteTasks(self, request, context):
        engine = self._engine.get()
        queue_id = validate.queue_id(request.parent, "parent")
        validate.batch_size(len(request.requests), "requests")
        items = []
        for index, item in enumerate(request.requests):
            items.append(validate.item_or_error(_delete_request, item, queue_id, f"requests[{index}]."))
        errors = await engine.tasks.delete(queue_id, items)
        return task_service_pb2.BatchDeleteTasksResponse(
            results=[_OK if error is None else to_status(error) for error in errors]
        )

    @guarded
    async def LeaseTasks(self, request, context):
        engine = self._engine.get()
        queue_id = validate.queue_id(request.parent, "parent")
        if not request.HasField("lease_duration"):
            raise InvalidArgument.field("lease_duration", "is required", "REQUIRED_FIELD")
        duration_us = validate.duration_us(
            request.lease_duration, "lease_duration", maximum_us=limits.MAX_LEASE_DURATION_US, allow_zero=False
        )
        if request.max_tasks == 0:
            raise InvalidArgument.field("max_tasks", "is required (1 to 1000)", "REQUIRED_FIELD")
        max_tasks = validate.int_range(request.max_tasks, "max_tasks", 1, limits.MAX_LEASE_TASKS)
        if len(request.tag.encode()) > limits.MAX_TAG_BYTES:
            raise InvalidArgument.field("tag", f"is longer than {limits.MAX_TAG_BYTES} bytes", "TAG_TOO_LONG")
        if request.tag and request.oldest_tag:
            raise InvalidArgument.field("oldest_tag", "cannot be combined with tag", "CONFLICTING_FIELDS")
        wait_us = validate.duration_us(request.wait, "wait", maximum_us=limits.MAX_LEASE_WAIT_US)
        view = validate.view(request.response_view, "response_view", task_pb2.TASK_VIEW_FULL)
        leased = await engine.tasks.lease(
            queue_id, duration_us, max_tasks, request.tag or None, request.oldest_tag, wait_us
        )
        now_us = engine.clock.now_us()
        return task_service_pb2.LeaseTasksResponse(
            tasks=[convert.task_to_proto(queue_id, task, now_us, view) for task in leased]
        )

    @guarded
    async def ModifyLease(self, request, context):
        engine = self._engine.get()
        queue_id, task_id = validate.task_ids(request.name, "name")
        token = validate.lease_token(request.lease_token, "lease_token", required=True)
        if not request.HasField("lease_duration"):
            raise InvalidArgument.field("lease_duration", "is required (0 releases the lease)", "REQUIRED_FIELD")
        duration_us = validate.duration_us(
            request.lease_duration, "lease_duration", maximum_us=limits.MAX_LEASE_DURATION_US
        )
        task = await engine.tasks.modify_lease(queue_id, task_id, token, duration_us)
        return task_service_pb2.ModifyLeaseResponse(
            task=convert.task_to_proto(queue_id, task, engine.clock.now_us(), task_pb2.TASK_VIEW_BASIC)
        )

    @guarded
    async def RunTask(self, request, context):
        engine = self._engine.get()
        queue_id, task_id = validate.task_ids(request.name, "name")
        task = await engine.tasks.run(queue_id, task_id)
        return task_service_pb2.RunTaskResponse(
            task=convert.task_to_proto(queue_id, task, engine.clock.now_us(), task_pb2.TASK_VIEW_BASIC)
        )

    async def StreamTasks(self, request_iterator, context):
        # The handler reads and writes through the context (two loops share the stream).
        await self._stream_handler(context)


def _check_batch_response_size(request, views: list, queue_id: str, server_limits: limits.ServerLimits) -> None:
    """Refuses, before anything is created, a batch whose answer could not be sent: with the
    FULL view every payload comes back, and the answer would outgrow the message-size limit
    (a client retrying the failed call without request ids would create the tasks twice)."""
    size = 0
    for item, view in zip(request.requests, views):
        task = item.task
        size += limits.TASK_MESSAGE_OVERHEAD + len(queue_id) + len(task.name) + len(task.tag.encode())
        size += sum(len(k.encode()) + len(v.encode()) + limits.ATTRIBUTE_OVERHEAD for k, v in task.attributes.items())
        if view == task_pb2.TASK_VIEW_FULL:
            size += len(task.payload)
    if size > server_limits.response_budget_bytes:
        raise InvalidArgument.field(
            "requests",
            f"the response would take up to {size} bytes, more than the server's message limit allows "
            f"({server_limits.max_message_bytes}); ask for response_view BASIC (no payloads) or send fewer tasks",
            "RESPONSE_TOO_LARGE",
        )


def _in_item(error: TaskqError, prefix: str) -> TaskqError:
    """A batch item's error with its field path in the batch request: the core names fields as
    in a single CreateTaskRequest (`task.schedule_time`)."""
    if isinstance(error, InvalidArgument) and len(error.violations) == 1:
        violation = error.violations[0]
        if not violation.field.startswith(prefix):
            return InvalidArgument.field(prefix + violation.field, violation.description, violation.reason)
    return error


def _delete_request(item, queue_id: str, field: str) -> DeleteRequest:
    item_queue, task_id = validate.task_ids(item.name, f"{field}name")
    if item_queue != queue_id:
        raise InvalidArgument.field(f"{field}name", "names a task of another queue than the parent", "PARENT_MISMATCH")
    return DeleteRequest(task_id, validate.lease_token(item.lease_token, f"{field}lease_token", required=False))
