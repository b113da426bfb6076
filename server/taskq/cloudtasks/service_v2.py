"""google.cloud.tasks.v2.CloudTasks on taskq's core (docs/cloud-tasks.md has every RPC and
field with its status). Errors are taskq's, with Cloud Tasks' codes: NOT_FOUND, ALREADY_EXISTS
(a task name in use or used within the queue's tombstone TTL), INVALID_ARGUMENT,
FAILED_PRECONDITION.

A task whose attempts ran out is gone through this API, as in Cloud Tasks (live_tasks.py).
BatchCreateTasks and BatchDeleteTasks answer done long-running Operations (operations.py)."""

from __future__ import annotations

import dataclasses
from typing import Any

from google.cloud import tasks_v2
from google.iam.v1 import iam_policy_pb2, policy_pb2
from google.longrunning import operations_pb2
from google.protobuf import empty_pb2

from taskq.api import validate
from taskq.api.engine_ref import EngineRef
from taskq.api.status import guarded
from taskq.cloudtasks import names, operations
from taskq.cloudtasks import v2_messages as m
from taskq.cloudtasks.appengine_routing import AppEngine
from taskq.cloudtasks.iam import IamMethods
from taskq.cloudtasks.live_tasks import LIVE_TASKS, live_task
from taskq.cloudtasks.queue_actions import QueueActions
from taskq.core import limits, pagination
from taskq.core.errors import (
    InvalidArgument,
    QueueAlreadyExists,
    QueueNotFound,
    TaskNotFound,
    TaskqError,
    Unimplemented,
)
from taskq.core.model import Queue, QueueState, QueueType, Task
from taskq.core.tasks import DeleteRequest, NewTask

SERVICE = "google.cloud.tasks.v2.CloudTasks"


def _pb(proto_plus_class: Any) -> Any:
    return proto_plus_class.pb()


def _view(value: int, field: str) -> int:
    if value not in (0, m.VIEW_BASIC, m.VIEW_FULL):
        raise InvalidArgument.field(field, f"{value} is not a Task.View", "INVALID_ENUM_VALUE")
    return value or m.VIEW_BASIC


def _state_filter(text: str) -> QueueState | None:
    """ListQueues' filter: Cloud Tasks documents `state: PAUSED` (also `state = PAUSED`)."""
    if not text.strip():
        return None
    compact = text.replace(" ", "")
    for separator in (":", "="):
        key, found, value = compact.partition(separator)
        if found and key == "state" and value in ("RUNNING", "PAUSED"):
            return QueueState[value]
    raise InvalidArgument.field("filter", f"{text[:100]!r} is not a supported filter (state: RUNNING or state: PAUSED)",
                                "INVALID_FILTER")


class CloudTasksV2(IamMethods, QueueActions):
    def __init__(self, engine: EngineRef, appengine_url: str, target_urls: dict[str, str]) -> None:
        self._engine = engine
        self._app = AppEngine(appengine_url, dict(target_urls))

    methods = [
        ("ListQueues", _pb(tasks_v2.ListQueuesRequest), _pb(tasks_v2.ListQueuesResponse)),
        ("GetQueue", _pb(tasks_v2.GetQueueRequest), m.QueuePb),
        ("CreateQueue", _pb(tasks_v2.CreateQueueRequest), m.QueuePb),
        ("UpdateQueue", _pb(tasks_v2.UpdateQueueRequest), m.QueuePb),
        ("DeleteQueue", _pb(tasks_v2.DeleteQueueRequest), empty_pb2.Empty),
        ("PurgeQueue", _pb(tasks_v2.PurgeQueueRequest), m.QueuePb),
        ("PauseQueue", _pb(tasks_v2.PauseQueueRequest), m.QueuePb),
        ("ResumeQueue", _pb(tasks_v2.ResumeQueueRequest), m.QueuePb),
        ("GetIamPolicy", iam_policy_pb2.GetIamPolicyRequest, policy_pb2.Policy),
        ("SetIamPolicy", iam_policy_pb2.SetIamPolicyRequest, policy_pb2.Policy),
        ("TestIamPermissions", iam_policy_pb2.TestIamPermissionsRequest, iam_policy_pb2.TestIamPermissionsResponse),
        ("ListTasks", _pb(tasks_v2.ListTasksRequest), _pb(tasks_v2.ListTasksResponse)),
        ("GetTask", _pb(tasks_v2.GetTaskRequest), m.TaskPb),
        ("CreateTask", _pb(tasks_v2.CreateTaskRequest), m.TaskPb),
        ("BatchCreateTasks", _pb(tasks_v2.BatchCreateTasksRequest), operations_pb2.Operation),
        ("DeleteTask", _pb(tasks_v2.DeleteTaskRequest), empty_pb2.Empty),
        ("BatchDeleteTasks", _pb(tasks_v2.BatchDeleteTasksRequest), operations_pb2.Operation),
        ("RunTask", _pb(tasks_v2.RunTaskRequest), m.TaskPb),
        ("GetCmekConfig", _pb(tasks_v2.GetCmekConfigRequest), _pb(tasks_v2.CmekConfig)),
        ("UpdateCmekConfig", _pb(tasks_v2.UpdateCmekConfigRequest), _pb(tasks_v2.CmekConfig)),
    ]

    async def _queue(self, name: str, field: str = "name") -> tuple[Queue, str]:
        parent, queue_id = names.queue(name, field)
        queue = await self._engine.get().queues.get(queue_id)
        return names.check_visible(queue, parent), parent

    def _queue_pb(self, queue: Queue, parent: str) -> Any:
        return m.queue_to_pb(queue, parent)

    async def _live_task(self, queue_id: str, task_id: str) -> Task:
        return await live_task(self._engine.get(), queue_id, task_id)

    # Queues -----------------------------------------------------------------------------------

    @guarded
    @names.cloud_names
    async def ListQueues(self, request, context):
        engine = self._engine.get()
        parent = names.parent(request.parent, "parent")
        state = _state_filter(request.filter)
        size = pagination.page_size(request.page_size)
        arguments = ("cloudtasks.v2.queues", parent, request.filter)
        after = pagination.decode(request.page_token, arguments, engine.page_token_key, limits.QUEUE_ID_PATTERN)
        found, resume_after = await engine.queues.page(after, size)
        shown = [q for q in found if names.visible(q, parent) and (state is None or q.state is state)]
        response = _pb(tasks_v2.ListQueuesResponse)(queues=[m.queue_to_pb(q, parent) for q in shown])
        if resume_after:
            response.next_page_token = pagination.encode(resume_after, arguments, engine.page_token_key)
        return response

    @guarded
    @names.cloud_names
    async def GetQueue(self, request, context):
        queue, parent = await self._queue(request.name)
        return m.queue_to_pb(queue, parent)

    @guarded
    @names.cloud_names
    async def CreateQueue(self, request, context):
        engine = self._engine.get()
        parent = names.parent(request.parent, "parent")
        if not request.HasField("queue"):
            raise InvalidArgument.field("queue", "is required", "REQUIRED_FIELD")
        # queue.state is output only in Cloud Tasks: ignored, as it documents (PauseQueue pauses).
        queue = m.new_queue(request.queue, "queue", parent, self._app.url)
        try:
            created = await engine.queues.create(queue)
        except QueueAlreadyExists:
            raise QueueAlreadyExists(f"{parent}/queues/{queue.queue_id}") from None
        return m.queue_to_pb(created, parent)

    @guarded
    @names.cloud_names
    async def UpdateQueue(self, request, context):
        """Changes the fields named by update_mask (all when empty); creates the queue when it
        does not exist, as Cloud Tasks does."""
        engine = self._engine.get()
        if not request.HasField("queue"):
            raise InvalidArgument.field("queue", "is required", "REQUIRED_FIELD")
        parent, queue_id = names.queue(request.queue.name, "queue.name")
        paths = list(request.update_mask.paths)
        allowed = {"rate_limits", "rate_limits.max_dispatches_per_second", "rate_limits.max_concurrent_dispatches",
                   "retry_config", "retry_config.max_attempts", "retry_config.max_retry_duration",
                   "retry_config.min_backoff", "retry_config.max_backoff", "retry_config.max_doublings", "http_target",
                   "stackdriver_logging_config", "app_engine_routing_override"}
        for index, path in enumerate(paths):
            if path not in allowed:
                raise InvalidArgument.field(f"update_mask.paths[{index}]", f"{path[:100]!r} cannot be updated; "
                                            f"allowed: {', '.join(sorted(allowed))}", "INVALID_UPDATE_MASK")
        new = m.new_queue(request.queue, "queue", parent, self._app.url)
        try:
            current = await engine.queues.get(queue_id)
        except QueueNotFound:
            return m.queue_to_pb(await engine.queues.create(new), parent)
        names.check_visible(current, parent)
        if current.type is not QueueType.PUSH:
            raise InvalidArgument.field("queue.name", "is a pull queue: change it through taskq.v1 or v2beta2",
                                        "WRONG_QUEUE_TYPE")
        taskq_paths = _taskq_paths(paths, request.queue.HasField("http_target"))
        if current.http_target is not None and "http_target" in taskq_paths:
            new.http_target = dataclasses.replace(new.http_target or current.http_target, uri=current.http_target.uri)
        updated = await engine.queues.update(queue_id, new, taskq_paths)
        return m.queue_to_pb(updated, parent)

    # CMEK (IAM: iam.IamMethods) ---------------------------------------------------------------

    @guarded
    @names.cloud_names
    async def GetCmekConfig(self, request, context):
        raise Unimplemented("taskq does not encrypt with customer-managed keys; encrypt its disk or database instead")

    @guarded
    @names.cloud_names
    async def UpdateCmekConfig(self, request, context):
        raise Unimplemented("taskq does not encrypt with customer-managed keys; encrypt its disk or database instead")

    # Tasks ------------------------------------------------------------------------------------

    @guarded
    @names.cloud_names
    async def ListTasks(self, request, context):
        engine = self._engine.get()
        queue, parent = await self._queue(request.parent, "parent")
        view = _view(request.response_view, "response_view")
        size = pagination.page_size(request.page_size)
        arguments = ("cloudtasks.v2.tasks", request.parent, str(view))
        after = pagination.decode(request.page_token, arguments, engine.page_token_key, limits.TASK_ID_PATTERN)
        tasks, resume_after = await engine.tasks.page(queue.queue_id, LIVE_TASKS, after, size,
                                                      payloads=view == m.VIEW_FULL)
        response = _pb(tasks_v2.ListTasksResponse)(tasks=[m.task_to_pb(t, queue, parent, view, self._app) for t in tasks])
        if resume_after:
            response.next_page_token = pagination.encode(resume_after, arguments, engine.page_token_key)
        return response

    @guarded
    @names.cloud_names
    async def GetTask(self, request, context):
        engine = self._engine.get()
        parent, queue_id, task_id = names.task(request.name, "name")
        queue = names.check_visible(await engine.queues.get(queue_id), parent)
        view = _view(request.response_view, "response_view")
        return m.task_to_pb(await self._live_task(queue_id, task_id), queue, parent, view, self._app)

    async def _create(self, queue: Queue, items: list[NewTask]) -> list[Task | TaskqError]:
        """Creates the tasks in one commit, each on its own; none if any is more than Cloud
        Tasks' 30 days ahead."""
        engine = self._engine.get()
        now_us = engine.clock.now_us()
        for item in items:
            if item.schedule_time_us is not None and item.schedule_time_us - now_us > m.MAX_SCHEDULE_AHEAD_US:
                raise InvalidArgument.field("task.schedule_time", "is more than 30 days ahead", "SCHEDULE_TIME_TOO_FAR")
        return await engine.tasks.create(queue.queue_id, list(items))

    @guarded
    @names.cloud_names
    async def CreateTask(self, request, context):
        queue, parent = await self._queue(request.parent, "parent")
        view = _view(request.response_view, "response_view")
        if not request.HasField("task"):
            raise InvalidArgument.field("task", "is required", "REQUIRED_FIELD")
        item = m.new_task(request.task, "task", queue, parent, self._app, self._engine.get().limits.max_task_bytes)
        [task] = await self._create(queue, [item])
        if isinstance(task, TaskqError):
            raise task
        return m.task_to_pb(task, queue, parent, view, self._app)

    @guarded
    @names.cloud_names
    async def BatchCreateTasks(self, request, context):
        """Every request is checked before any task is created (INVALID_ARGUMENT for the call);
        then the tasks are created in one commit, each on its own: a done Operation
        (operations.py) lists those created and the others' errors by index."""
        engine = self._engine.get()
        start_us = engine.clock.now_us()
        queue, parent = await self._queue(request.parent, "parent")
        validate.batch_size(len(request.requests), "requests")
        items, views = [], []
        for index, item in enumerate(request.requests):
            if item.parent and item.parent != request.parent:
                raise InvalidArgument.field(f"requests[{index}].parent", "must be empty or the parent",
                                            "PARENT_MISMATCH")
            if not item.HasField("task"):
                raise InvalidArgument.field(f"requests[{index}].task", "is required", "REQUIRED_FIELD")
            new = m.new_task(item.task, f"requests[{index}].task", queue, parent, self._app, engine.limits.max_task_bytes)
            if request.request_id:
                new.request_id = operations.task_request_id(request.request_id, index)
            items.append(new)
            views.append(_view(item.response_view, f"requests[{index}].response_view"))
        response = _pb(tasks_v2.BatchCreateTasksResponse)()
        failed: dict[int, TaskqError] = {}
        for index, (result, view) in enumerate(zip(await self._create(queue, items), views)):
            if isinstance(result, TaskqError):
                failed[index] = result
            else:
                response.tasks.append(m.task_to_pb(result, queue, parent, view, self._app))
        name = operations.operation_name(parent, "BatchCreateTasks", request.parent, request.request_id)
        return operations.done(name, response, operations.CreateMetadataPb, (start_us, engine.clock.now_us()),
                               len(items), failed, parent)

    @guarded
    @names.cloud_names
    async def DeleteTask(self, request, context):
        engine = self._engine.get()
        parent, queue_id, task_id = names.task(request.name, "name")
        names.check_visible(await engine.queues.get(queue_id), parent)
        # A task that fails between this read and the delete is deleted, as Cloud Tasks would.
        await self._live_task(queue_id, task_id)
        [error] = await engine.tasks.delete(queue_id, [DeleteRequest(task_id)])
        if error is not None:
            raise error
        return empty_pb2.Empty()

    @guarded
    @names.cloud_names
    async def BatchDeleteTasks(self, request, context):
        """Every name must be a task of `parent` (INVALID_ARGUMENT for the call); then the tasks
        are deleted in one commit, each on its own ("a non-atomic operation"): a done Operation
        (operations.py) with the errors of those not deleted by index. `request_id` names the
        Operation only: taskq remembers no deletes, so a retry finds the tasks the first call
        deleted NOT_FOUND."""
        engine = self._engine.get()
        start_us = engine.clock.now_us()
        queue, parent = await self._queue(request.parent, "parent")
        validate.batch_size(len(request.names), "names")
        task_ids = []
        for index, name in enumerate(request.names):
            task_parent, queue_id, task_id = names.task(name, f"names[{index}]")
            if (task_parent, queue_id) != (parent, queue.queue_id):
                raise InvalidArgument.field(f"names[{index}]", "names a task of another queue", "PARENT_MISMATCH")
            task_ids.append(task_id)
        deletes: list[DeleteRequest | TaskqError] = []
        for task_id in task_ids:
            try:
                await self._live_task(queue.queue_id, task_id)
                deletes.append(DeleteRequest(task_id))
            except TaskNotFound as error:
                deletes.append(error)
        results = await engine.tasks.delete(queue.queue_id, deletes)
        failed = {index: error for index, error in enumerate(results) if error is not None}
        name = operations.operation_name(parent, "BatchDeleteTasks", request.parent, request.request_id)
        return operations.done(name, empty_pb2.Empty(), operations.DeleteMetadataPb,
                               (start_us, engine.clock.now_us()), len(task_ids), failed, parent)

    @guarded
    @names.cloud_names
    async def RunTask(self, request, context):
        engine = self._engine.get()
        parent, queue_id, task_id = names.task(request.name, "name")
        queue = names.check_visible(await engine.queues.get(queue_id), parent)
        view = _view(request.response_view, "response_view")
        # A task that fails between this read and the run runs again (taskq.v1 could run it too).
        await self._live_task(queue_id, task_id)
        return m.task_to_pb(await engine.tasks.run(queue_id, task_id), queue, parent, view, self._app)


def _taskq_paths(paths: list[str], has_target: bool) -> list[str]:
    """Cloud Tasks' update paths -> taskq's (empty: every field Cloud Tasks can set; the HTTP
    target only when the request has one, so a queue streamed to taskq.v1 workers stays so)."""
    if not paths:
        return ["rate_limits.max_dispatches_per_second", "rate_limits.max_concurrent_dispatches", "retry_config",
                *(["http_target"] if has_target else [])]
    mapped: list[str] = []
    for path in paths:
        if path == "rate_limits":
            mapped += ["rate_limits.max_dispatches_per_second", "rate_limits.max_concurrent_dispatches"]
        elif path in ("stackdriver_logging_config", "app_engine_routing_override"):
            continue  # accepted, no effect on taskq (docs/cloud-tasks.md)
        else:
            mapped.append(path)
    return mapped
