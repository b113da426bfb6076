"""google.cloud.tasks.v2beta2.CloudTasks on taskq's core: queues (App Engine, HTTP and pull),
tasks, and the pull-queue RPCs Cloud Tasks v2 dropped (LeaseTasks, AcknowledgeTask, RenewLease,
CancelLease). Errors are taskq's, with Cloud Tasks' codes: NOT_FOUND, ALREADY_EXISTS (a task
name in use or used within the queue's tombstone TTL), INVALID_ARGUMENT, FAILED_PRECONDITION
(a lease that is not the one the request's schedule_time names, a paused pull queue, RunTask
on a pull task), UNIMPLEMENTED (IAM policies).

A pull task's lease is named by its schedule_time, which a lease sets to the lease's expiry;
taskq names leases by a token. AcknowledgeTask, RenewLease and CancelLease read the task,
compare its lease's expiry with the given schedule_time and act with the task's own token (as
taskq/appengine/taskqueue.py does for the App Engine SDK's ETAs).

A task whose attempts ran out (pull tasks: leases) is gone through this API, as in Cloud Tasks
(live_tasks.py).
"""

from __future__ import annotations

import asyncio
import datetime
import os
import tempfile
from typing import Any

import grpc
from google.cloud import tasks_v2beta2
from google.iam.v1 import iam_policy_pb2, policy_pb2
from google.protobuf import empty_pb2

from taskq.api import validate
from taskq.api.engine_ref import EngineRef
from taskq.api.services import add_unary_methods
from taskq.api.status import guarded
from taskq.cloudtasks import names
from taskq.cloudtasks import v2beta2_messages as m
from taskq.cloudtasks import v2beta2_tasks as t
from taskq.cloudtasks.appengine_routing import AppEngine
from taskq.cloudtasks.iam import IamMethods
from taskq.cloudtasks.live_tasks import LIVE_TASKS, live_task
from taskq.cloudtasks.queue_actions import QueueActions
from taskq.core import limits, pagination
from taskq.core.errors import (
    FailedPrecondition,
    InvalidArgument,
    LeaseLost,
    QueueAlreadyExists,
    QueueNotFound,
    QueuePaused,
    TaskqError,
    WrongQueueType,
)
from taskq.core.model import US_PER_SECOND, Queue, QueueState, QueueType, Stage, Task
from taskq.core.tasks import DeleteRequest

SERVICE = "google.cloud.tasks.v2beta2.CloudTasks"


def _format_us(time_us: int) -> str:
    seconds, micros = divmod(time_us, US_PER_SECOND)
    moment = datetime.datetime.fromtimestamp(seconds, tz=datetime.UTC) + datetime.timedelta(microseconds=micros)
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")


def _pb(proto_plus_class: Any) -> Any:
    return proto_plus_class.pb()


def _has_stats(mask: Any) -> bool:
    return any(path == "*" or path.split(".", 1)[0] == "stats" for path in mask.paths)


def _check_read_mask(request: Any) -> Any | None:
    """The request's read mask (None when absent or empty: every field but stats)."""
    if not request.HasField("read_mask") or not request.read_mask.paths:
        return None
    mask = request.read_mask
    for index, path in enumerate(mask.paths):
        if path != "*" and not type(mask)(paths=[path]).IsValidForDescriptor(m.QueuePb.DESCRIPTOR):
            raise InvalidArgument.field(f"read_mask.paths[{index}]", f"{path[:100]!r} is not a field of Queue",
                                        "INVALID_READ_MASK")
    return mask


def _masked(message: Any, mask: Any | None) -> Any:
    if mask is None or "*" in mask.paths:
        return message
    shown = m.QueuePb()
    mask.MergeMessage(message, shown)
    return shown


def _queue_filter(text: str) -> list[tuple[str, str]]:
    """ListQueues' filter: terms joined by AND, each `state: RUNNING|PAUSED` (or `=`), or a
    target's presence, `app_engine_http_target: *` (likewise pull_target, http_target)."""
    if not text.strip():
        return []
    terms = []
    for term in text.split(" AND "):
        key, separator, value = term.replace(":", "=", 1).partition("=")
        key, value = key.strip(), value.strip()
        if separator and key == "state" and value in ("RUNNING", "PAUSED"):
            terms.append((key, value))
        elif separator and key in m.TARGET_KINDS and value == "*":
            terms.append((key, value))
        else:
            raise InvalidArgument.field(
                "filter", f"{text[:100]!r} is not a supported filter: terms joined by AND, each state: RUNNING, "
                "state: PAUSED, app_engine_http_target: *, pull_target: * or http_target: *", "INVALID_FILTER",
            )
    return terms


def _matches(queue: Queue, terms: list[tuple[str, str]]) -> bool:
    for key, value in terms:
        if key == "state" and queue.state is not QueueState[value]:
            return False
        if key in m.TARGET_KINDS and m.target_kind(queue) != key:
            return False
    return True


class CloudTasksV2Beta2(IamMethods, QueueActions):
    def __init__(self, engine: EngineRef, appengine_url: str, target_urls: dict[str, str]) -> None:
        self._engine = engine
        self._app = AppEngine(appengine_url, dict(target_urls))

    methods = [
        ("ListQueues", _pb(tasks_v2beta2.ListQueuesRequest), _pb(tasks_v2beta2.ListQueuesResponse)),
        ("GetQueue", _pb(tasks_v2beta2.GetQueueRequest), m.QueuePb),
        ("CreateQueue", _pb(tasks_v2beta2.CreateQueueRequest), m.QueuePb),
        ("UpdateQueue", _pb(tasks_v2beta2.UpdateQueueRequest), m.QueuePb),
        ("DeleteQueue", _pb(tasks_v2beta2.DeleteQueueRequest), empty_pb2.Empty),
        ("PurgeQueue", _pb(tasks_v2beta2.PurgeQueueRequest), m.QueuePb),
        ("PauseQueue", _pb(tasks_v2beta2.PauseQueueRequest), m.QueuePb),
        ("ResumeQueue", _pb(tasks_v2beta2.ResumeQueueRequest), m.QueuePb),
        ("UploadQueueYaml", _pb(tasks_v2beta2.UploadQueueYamlRequest), empty_pb2.Empty),
        ("GetIamPolicy", iam_policy_pb2.GetIamPolicyRequest, policy_pb2.Policy),
        ("SetIamPolicy", iam_policy_pb2.SetIamPolicyRequest, policy_pb2.Policy),
        ("TestIamPermissions", iam_policy_pb2.TestIamPermissionsRequest, iam_policy_pb2.TestIamPermissionsResponse),
        ("ListTasks", _pb(tasks_v2beta2.ListTasksRequest), _pb(tasks_v2beta2.ListTasksResponse)),
        ("GetTask", _pb(tasks_v2beta2.GetTaskRequest), m.TaskPb),
        ("CreateTask", _pb(tasks_v2beta2.CreateTaskRequest), m.TaskPb),
        ("DeleteTask", _pb(tasks_v2beta2.DeleteTaskRequest), empty_pb2.Empty),
        ("LeaseTasks", _pb(tasks_v2beta2.LeaseTasksRequest), _pb(tasks_v2beta2.LeaseTasksResponse)),
        ("AcknowledgeTask", _pb(tasks_v2beta2.AcknowledgeTaskRequest), empty_pb2.Empty),
        ("RenewLease", _pb(tasks_v2beta2.RenewLeaseRequest), m.TaskPb),
        ("CancelLease", _pb(tasks_v2beta2.CancelLeaseRequest), m.TaskPb),
        ("RunTask", _pb(tasks_v2beta2.RunTaskRequest), m.TaskPb),
    ]

    async def _find(self, parent: str, queue_id: str) -> Queue:
        try:
            queue = await self._engine.get().queues.get(queue_id)
        except QueueNotFound:
            raise QueueNotFound(f"{parent}/queues/{queue_id}") from None
        return names.check_visible(queue, parent)

    async def _queue(self, name: str, field: str = "name") -> tuple[Queue, str]:
        parent, queue_id = names.queue(name, field)
        return await self._find(parent, queue_id), parent

    async def _task_queue(self, name: str, field: str = "name") -> tuple[Queue, str, str]:
        parent, queue_id, task_id = names.task(name, field)
        return await self._find(parent, queue_id), parent, task_id

    def _queue_pb(self, queue: Queue, parent: str, stats: Any = None) -> Any:
        return m.queue_to_pb(queue, parent, self._app, stats)

    def _task_pb(self, task: Task, queue: Queue, parent: str, view: int) -> Any:
        return t.task_to_pb(task, queue, parent, view, self._app)

    # Queues -----------------------------------------------------------------------------------

    @guarded
    @names.cloud_names
    async def ListQueues(self, request, context):
        engine = self._engine.get()
        parent = names.parent(request.parent, "parent")
        terms = _queue_filter(request.filter)
        mask = _check_read_mask(request)
        if request.page_size < 0:
            raise InvalidArgument.field("page_size", f"must not be negative, got {request.page_size}",
                                        "VALUE_OUT_OF_RANGE")
        size = min(request.page_size or m.MAX_QUEUE_PAGE, m.MAX_QUEUE_PAGE)
        arguments = ("cloudtasks.v2beta2.queues", parent, request.filter)
        after = pagination.decode(request.page_token, arguments, engine.page_token_key, limits.QUEUE_ID_PATTERN)
        found, resume_after = await engine.queues.page(after, size)
        shown = [q for q in found if names.visible(q, parent) and _matches(q, terms)]
        response = _pb(tasks_v2beta2.ListQueuesResponse)()
        for queue in shown:
            stats = await engine.queues.stats(queue.queue_id) if mask is not None and _has_stats(mask) else None
            response.queues.append(_masked(self._queue_pb(queue, parent, stats), mask))
        if resume_after:
            response.next_page_token = pagination.encode(resume_after, arguments, engine.page_token_key)
        return response

    @guarded
    @names.cloud_names
    async def GetQueue(self, request, context):
        queue, parent = await self._queue(request.name)
        mask = _check_read_mask(request)
        stats = await self._engine.get().queues.stats(queue.queue_id) if mask is not None and _has_stats(mask) else None
        return _masked(self._queue_pb(queue, parent, stats), mask)

    @guarded
    @names.cloud_names
    async def CreateQueue(self, request, context):
        engine = self._engine.get()
        parent = names.parent(request.parent, "parent")
        if not request.HasField("queue"):
            raise InvalidArgument.field("queue", "is required", "REQUIRED_FIELD")
        kind = request.queue.WhichOneof("target_type") or m.APP_ENGINE_TARGET
        queue = m.build_queue(request.queue, "queue", parent, kind, self._app)
        try:
            created = await engine.queues.create(queue)
        except QueueAlreadyExists:
            raise QueueAlreadyExists(f"{parent}/queues/{queue.queue_id}") from None
        return self._queue_pb(created, parent)

    @guarded
    @names.cloud_names
    async def UpdateQueue(self, request, context):
        """Changes the fields named by update_mask (all when empty; the target only when the
        request has one); creates the queue when it does not exist, as Cloud Tasks does. A
        queue cannot change between pull and push."""
        engine = self._engine.get()
        if not request.HasField("queue"):
            raise InvalidArgument.field("queue", "is required", "REQUIRED_FIELD")
        parent, queue_id = names.queue(request.queue.name, "queue.name")
        paths = list(request.update_mask.paths)
        m.check_update_paths(paths)
        given = request.queue.WhichOneof("target_type")
        named = m.target_paths(paths)
        try:
            current = await engine.queues.get(queue_id)
        except QueueNotFound:
            kind = given or named or m.APP_ENGINE_TARGET
            return self._queue_pb(await engine.queues.create(m.build_queue(request.queue, "queue", parent, kind,
                                                                            self._app)), parent)
        names.check_visible(current, parent)
        current_kind = m.target_kind(current)
        target_changes = (named is not None) if paths else given is not None
        kind = (given or named or current_kind) if target_changes else current_kind
        if (kind == m.PULL_TARGET) != (current.type is QueueType.PULL):
            was = "pull" if current.type is QueueType.PULL else "push"
            raise InvalidArgument.field("queue", f"{parent}/queues/{queue_id} is a {was} queue; a queue cannot change "
                                        "between pull and push (create another)", "FIELD_NOT_UPDATABLE")
        new = m.build_queue(request.queue, "queue", parent, kind, self._app, target=target_changes)
        taskq_paths = m.taskq_update_paths(paths, current.type is QueueType.PULL, target_changes)
        if not taskq_paths:
            return self._queue_pb(current, parent)
        return self._queue_pb(await engine.queues.update(queue_id, new, taskq_paths), parent)

    @guarded
    @names.cloud_names
    async def UploadQueueYaml(self, request, context):
        """Declares the queues of a queue.yaml as `taskq serve --queues` does: new ones are
        created, listed ones reconfigured (their tasks kept). Queues the file leaves out are
        left as they are (Cloud Tasks disables them; taskq has no DISABLED state)."""
        from taskq.queue_file import AppEngineRouting, QueueFileError, load_queue_file

        engine = self._engine.get()
        if not request.app_id:
            raise InvalidArgument.field("app_id", "is required", "REQUIRED_FIELD")
        if not request.HasField("http_body"):
            raise InvalidArgument.field("http_body", "is required: it holds the queue.yaml", "REQUIRED_FIELD")
        routing = AppEngineRouting(self._app.url or None, dict(self._app.targets))

        def load(data: bytes) -> list:
            with tempfile.TemporaryDirectory(prefix="taskq-upload-") as directory:
                path = os.path.join(directory, "queue.yaml")
                with open(path, "wb") as handle:
                    handle.write(data)
                try:
                    return load_queue_file(path, routing)
                except QueueFileError as error:
                    message = str(error).replace(path, "queue.yaml")
                    raise InvalidArgument.field("http_body", message, "INVALID_QUEUE_YAML") from None

        declared = await asyncio.to_thread(load, request.http_body.data)
        await engine.queues.declare_all(declared)
        return empty_pb2.Empty()

    # Tasks ------------------------------------------------------------------------------------

    @guarded
    @names.cloud_names
    async def ListTasks(self, request, context):
        engine = self._engine.get()
        queue, parent = await self._queue(request.parent, "parent")
        view = t.view(request.response_view, "response_view")
        if request.page_size < 0:
            raise InvalidArgument.field("page_size", f"must not be negative, got {request.page_size}",
                                        "VALUE_OUT_OF_RANGE")
        size = min(request.page_size or m.MAX_TASK_PAGE, m.MAX_TASK_PAGE)
        arguments = ("cloudtasks.v2beta2.tasks", request.parent, str(view))
        after = pagination.decode(request.page_token, arguments, engine.page_token_key, limits.TASK_ID_PATTERN)
        tasks, resume_after = await engine.tasks.page(queue.queue_id, LIVE_TASKS, after, size,
                                                      payloads=view == m.VIEW_FULL)
        response = _pb(tasks_v2beta2.ListTasksResponse)(tasks=[self._task_pb(t, queue, parent, view) for t in tasks])
        if resume_after:
            response.next_page_token = pagination.encode(resume_after, arguments, engine.page_token_key)
        return response

    @guarded
    @names.cloud_names
    async def GetTask(self, request, context):
        queue, parent, task_id = await self._task_queue(request.name)
        view = t.view(request.response_view, "response_view")
        return self._task_pb(await live_task(self._engine.get(), queue.queue_id, task_id), queue, parent, view)

    @guarded
    @names.cloud_names
    async def CreateTask(self, request, context):
        engine = self._engine.get()
        queue, parent = await self._queue(request.parent, "parent")
        view = t.view(request.response_view, "response_view")
        if not request.HasField("task"):
            raise InvalidArgument.field("task", "is required", "REQUIRED_FIELD")
        item = t.new_task(request.task, "task", queue, parent, self._app, engine.limits.max_task_bytes)
        if item.schedule_time_us is not None and item.schedule_time_us - engine.clock.now_us() > m.MAX_SCHEDULE_AHEAD_US:
            raise InvalidArgument.field("task.schedule_time", "is more than 30 days ahead", "SCHEDULE_TIME_TOO_FAR")
        [result] = await engine.tasks.create(queue.queue_id, [item])
        if isinstance(result, TaskqError):
            raise result
        return self._task_pb(result, queue, parent, view)

    @guarded
    @names.cloud_names
    async def DeleteTask(self, request, context):
        queue, _, task_id = await self._task_queue(request.name)
        # A task that fails between this read and the delete is deleted, as Cloud Tasks would.
        await live_task(self._engine.get(), queue.queue_id, task_id)
        [error] = await self._engine.get().tasks.delete(queue.queue_id, [DeleteRequest(task_id)])
        if error is not None:
            raise error
        return empty_pb2.Empty()

    @guarded
    @names.cloud_names
    async def RunTask(self, request, context):
        """Makes a push task ready now. "RunTask cannot be called on a pull task": refused
        with FAILED_PRECONDITION."""
        engine = self._engine.get()
        queue, parent, task_id = await self._task_queue(request.name)
        view = t.view(request.response_view, "response_view")
        task = await live_task(engine, queue.queue_id, task_id)  # NOT_FOUND first, as for any task
        if queue.type is QueueType.PULL:
            raise FailedPrecondition(
                f"{names.task_name(queue, parent, task.task_id)} is a pull task: RunTask cannot be called on pull "
                "tasks (lease them with LeaseTasks)", reason="PULL_TASK",
            )
        return self._task_pb(await engine.tasks.run(queue.queue_id, task_id), queue, parent, view)

    # Pull queues ------------------------------------------------------------------------------

    def _pull_queue(self, queue: Queue, parent: str, call: str) -> None:
        if queue.type is not QueueType.PULL:
            raise WrongQueueType(names.queue_name(queue, parent), "push", call)

    @guarded
    @names.cloud_names
    async def LeaseTasks(self, request, context):
        engine = self._engine.get()
        queue, parent = await self._queue(request.parent, "parent")
        if request.max_tasks < 0 or request.max_tasks > m.MAX_LEASE_TASKS:
            raise InvalidArgument.field("max_tasks", f"must be from 1 to {m.MAX_LEASE_TASKS} (0: {m.MAX_LEASE_TASKS}), "
                                        f"got {request.max_tasks}", "VALUE_OUT_OF_RANGE")
        lease_us = t.lease_duration_us(request.lease_duration, request.HasField("lease_duration"), "lease_duration")
        view = t.view(request.response_view, "response_view")
        tag, oldest_tag = t.lease_filter(request.filter)
        self._pull_queue(queue, parent, "LeaseTasks")
        if queue.state is QueueState.PAUSED:
            raise QueuePaused(names.queue_name(queue, parent))
        leased = await engine.tasks.lease(queue.queue_id, lease_us, request.max_tasks or m.MAX_LEASE_TASKS, tag,
                                          oldest_tag, 0)
        return _pb(tasks_v2beta2.LeaseTasksResponse)(tasks=[self._task_pb(task, queue, parent, view) for task in leased])

    async def _held(self, request: Any, call: str) -> tuple[Queue, str, Task]:
        """The pull task the request names, if the request's schedule_time is its current
        lease's expiry; raises LeaseLost (FAILED_PRECONDITION) if it is not."""
        queue, parent, task_id = await self._task_queue(request.name)
        if not request.HasField("schedule_time"):
            raise InvalidArgument.field("schedule_time", "is required: the task's schedule_time from LeaseTasks or "
                                        "RenewLease", "REQUIRED_FIELD")
        given_us = validate.timestamp_us(request.schedule_time, "schedule_time")
        self._pull_queue(queue, parent, call)
        task = await live_task(self._engine.get(), queue.queue_id, task_id)
        name = names.task_name(queue, parent, task_id)
        if task.stage is not Stage.LEASED or not task.lease_token:
            raise LeaseLost(name, "the task is not leased (its lease expired or was cancelled, or it was never leased)")
        if task.lease_expire_us != given_us:
            raise LeaseLost(name, f"schedule_time {_format_us(given_us)} is not the task's current schedule time "
                            f"{_format_us(task.lease_expire_us)}: the lease was renewed, or is another lease")
        return queue, parent, task

    @guarded
    @names.cloud_names
    async def AcknowledgeTask(self, request, context):
        queue, _, task = await self._held(request, "AcknowledgeTask")
        [error] = await self._engine.get().tasks.delete(queue.queue_id, [DeleteRequest(task.task_id, task.lease_token)])
        if error is not None:
            raise error
        return empty_pb2.Empty()

    @guarded
    @names.cloud_names
    async def RenewLease(self, request, context):
        lease_us = t.lease_duration_us(request.lease_duration, request.HasField("lease_duration"), "lease_duration")
        view = t.view(request.response_view, "response_view")
        queue, parent, task = await self._held(request, "RenewLease")
        renewed = await self._engine.get().tasks.modify_lease(queue.queue_id, task.task_id, task.lease_token, lease_us)
        return self._task_pb(renewed, queue, parent, view)

    @guarded
    @names.cloud_names
    async def CancelLease(self, request, context):
        """The task is available to lease again at once (its schedule_time is now)."""
        view = t.view(request.response_view, "response_view")
        queue, parent, task = await self._held(request, "CancelLease")
        released = await self._engine.get().tasks.modify_lease(queue.queue_id, task.task_id, task.lease_token, 0)
        return self._task_pb(released, queue, parent, view)


def register(server: grpc.aio.Server, engine: EngineRef, appengine_url: str, target_urls: dict[str, str]) -> None:
    """Serves google.cloud.tasks.v2beta2.CloudTasks on the server."""
    add_unary_methods(server, SERVICE, CloudTasksV2Beta2(engine, appengine_url, target_urls), CloudTasksV2Beta2.methods)
