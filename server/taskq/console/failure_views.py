"""The console's failures page: the FAILED tasks of every queue the viewer sees and the tasks
waiting in dead-letter queues, grouped by their last error, and re-running one, a selection or
a whole group.

What is listed comes from the queues' counters (a queue without failed tasks is not read) and
from ListTasks' own page reads, at most PER_QUEUE tasks of a queue (the queue page pages
through all of them).

Re-running a FAILED task is RunTask. Re-running a dead letter creates it again in the queue it
was dead-lettered from (CreateTask's validation and rules: payload, tag, its own attributes,
HTTP request, trace context; a request id made from the dead letter's name, so that a re-run
repeated within the hour creates nothing twice) and then deletes it from the dead-letter queue
(DeleteTask without a lease: admin there).
"""

from __future__ import annotations

import dataclasses
import hashlib
from typing import Any

from aiohttp import web

from taskq.api import convert, validate
from taskq.auth import policy
from taskq.console.views import PREFIX, Console, Viewer
from taskq.core import transitions
from taskq.core.engine import Engine
from taskq.core.errors import Code, InvalidArgument, TaskqError
from taskq.core.filter import parse as parse_filter
from taskq.core.model import Queue, Task, TaskState
from taskq.core.tasks import DeleteRequest
from taskq.v1 import task_pb2, task_service_pb2

TASKS = policy.TASKS
#: Tasks of one queue listed at most (one page read of ListTasks).
PER_QUEUE = 500
#: Tasks one re-run form takes at most.
MAX_RERUN = 1000
_FAILED = parse_filter("state = FAILED")
_WAITING = parse_filter("state = (SCHEDULED OR READY)")


@dataclasses.dataclass
class Failure:
    """A failed task or a dead letter, as the page lists it."""

    queue_id: str
    task_id: str
    #: "failed" or "dead letter".
    kind: str
    #: The queue it failed in (a dead letter's original queue).
    origin: str
    attempts: str
    error: str

    @property
    def key(self) -> str:
        return f"{self.queue_id}/{self.task_id}"


@dataclasses.dataclass
class Group:
    error: str
    failures: list[Failure]

    @property
    def id(self) -> str:
        return "group-" + hashlib.sha256(self.error.encode()).hexdigest()[:12]


def describe_error(code: int, message: str) -> str:
    """An attempt's error as the dead-letter attribute taskq-last-error writes it."""
    try:
        name = Code(code).name
    except ValueError:
        name = f"code {code}"
    return f"{name}: {message}" if message else name


class FailurePages:
    def __init__(self, console: Console) -> None:
        self._console = console

    def register(self, app: web.Application) -> None:
        app.router.add_get(PREFIX + "/failures", self._failures_page)
        app.router.add_post(PREFIX + "/failures/rerun", self._rerun)

    async def _failures_page(self, request: web.Request) -> web.StreamResponse:
        console = self._console
        viewer = None
        try:
            viewer = await console.viewer(request)
            groups, truncated = await self._groups(viewer)
        except TaskqError as error:
            return console.failure(request, viewer, error)
        notice = None
        if request.query.get("done") == "rerun":
            ran, refused = _count(request.query.get("ran")), _count(request.query.get("refused"))
            notice = f"{ran} task{'' if ran == 1 else 's'} re-run" + (f"; {refused} refused or gone." if refused else ".")
        dead_letter_queues = sorted({failure.queue_id for group in groups for failure in group.failures
                                     if failure.kind == "dead letter"})
        return console.render(request, "failures.html", viewer, groups=groups, truncated=truncated, notice=notice,
                              per_queue=PER_QUEUE, total=sum(len(group.failures) for group in groups),
                              dead_letter_queues=dead_letter_queues)

    async def _groups(self, viewer: Viewer) -> tuple[list[Group], list[str]]:
        engine = self._console.engine()
        failures: list[Failure] = []
        truncated: list[str] = []
        queues: list[Queue] = []
        after = ""
        while True:
            page, after = await engine.queues.page(after, 1000)
            queues.extend(queue for queue in page if viewer.sees(queue.queue_id))
            if not after:
                break
        dead_letter_queues = {queue.dead_letter_queue for queue in queues if queue.dead_letter_queue}
        for queue in queues:
            try:
                stats = await engine.queues.stats(queue.queue_id)
            except TaskqError:
                continue
            if stats.failed_count:
                tasks, more = await engine.tasks.page(queue.queue_id, _FAILED, "", PER_QUEUE, payloads=False)
                failures.extend(_failed(queue.queue_id, task) for task in tasks)
                if more:
                    truncated.append(queue.queue_id)
            if queue.queue_id in dead_letter_queues and stats.scheduled_count + stats.ready_count:
                tasks, more = await engine.tasks.page(queue.queue_id, _WAITING, "", PER_QUEUE, payloads=False)
                failures.extend(_dead_letter(queue.queue_id, task) for task in tasks
                                if transitions.ORIGINAL_QUEUE_ATTRIBUTE in task.attributes)
                if more:
                    truncated.append(queue.queue_id)
        groups: dict[str, list[Failure]] = {}
        for failure in failures:
            groups.setdefault(failure.error, []).append(failure)
        ordered = sorted(groups.items(), key=lambda item: (-len(item[1]), item[0]))
        return [Group(error, members) for error, members in ordered], truncated

    async def _rerun(self, request: web.Request) -> web.StreamResponse:
        console = self._console
        viewer = None
        try:
            viewer = await console.viewer(request)
            form = await request.post()
            console.check_csrf(viewer, form)
            keys = [str(value) for value in form.getall("task", [])]
            if not keys:
                raise InvalidArgument.field("task", "select at least one task to re-run", "REQUIRED_FIELD")
            if len(keys) > MAX_RERUN:
                raise InvalidArgument.field("task", f"at most {MAX_RERUN} tasks at once", "TOO_MANY_TASKS")
            targets = [_target(key) for key in keys]
            if form.get("confirm") != "yes":
                question = f"Re-run {len(keys)} task{'' if len(keys) == 1 else 's'}? Failed tasks become ready again; " \
                           "dead letters go back to the queue they came from."
                return console.render(request, "confirm.html", viewer, question=question, action=request.path,
                                      button="Re-run", back=f"{PREFIX}/failures", danger=False,
                                      hidden=[("task", key) for key in keys])
            engine = console.engine()
            ran = refused = 0
            for queue_id, task_id in targets:
                try:
                    await _rerun_one(engine, viewer, queue_id, task_id)
                    ran += 1
                except TaskqError:
                    refused += 1
            raise web.HTTPSeeOther(f"{PREFIX}/failures?done=rerun&ran={ran}&refused={refused}")
        except TaskqError as error:
            return console.failure(request, viewer, error)


async def _rerun_one(engine: Engine, viewer: Viewer, queue_id: str, task_id: str) -> None:
    name = transitions.task_name(queue_id, task_id)
    task = await engine.tasks.get(queue_id, task_id)
    now_us = engine.clock.now_us()
    if task.state(now_us) is TaskState.FAILED:
        viewer.check(TASKS + "RunTask", task_service_pb2.RunTaskRequest(name=name))
        await engine.tasks.run(queue_id, task_id)
        return
    origin = task.attributes.get(transitions.ORIGINAL_QUEUE_ATTRIBUTE)
    if origin is None:
        raise InvalidArgument.field("task", f"{name} is neither failed nor a dead letter", "NOT_A_FAILURE")
    full = convert.task_to_proto(queue_id, task, now_us, task_pb2.TASK_VIEW_FULL)
    again = task_pb2.Task(payload=task.payload, tag=task.tag, attributes={
        key: value for key, value in task.attributes.items() if key not in _DEAD_LETTER_ATTRIBUTES
    })
    if full.HasField("http_request"):
        again.http_request.CopyFrom(full.http_request)
    request_id = "console-rerun-" + hashlib.sha256(name.encode()).hexdigest()[:40]
    create = task_service_pb2.CreateTaskRequest(parent=origin, task=again, request_id=request_id)
    delete = task_service_pb2.DeleteTaskRequest(name=name)
    viewer.check(TASKS + "CreateTask", create)
    viewer.check(TASKS + "DeleteTask", delete)
    origin_id = validate.queue_id(origin, "parent")
    new_task = validate.new_task(create, origin_id, "", engine.limits)
    new_task.trace_parent, new_task.trace_state = task.trace_parent, task.trace_state
    [result] = await engine.tasks.create(origin_id, [new_task])
    if isinstance(result, TaskqError):
        raise result
    [error] = await engine.tasks.delete(queue_id, [DeleteRequest(task_id, "")])
    if error is not None:
        raise error


_DEAD_LETTER_ATTRIBUTES = frozenset({
    transitions.ORIGINAL_QUEUE_ATTRIBUTE, transitions.ORIGINAL_TASK_ATTRIBUTE, transitions.ATTEMPT_COUNT_ATTRIBUTE,
    transitions.LAST_ERROR_ATTRIBUTE,
})


def _failed(queue_id: str, task: Task) -> Failure:
    attempt = task.last_attempt
    error = describe_error(attempt.error_code, attempt.error_message) if attempt is not None else "no attempt recorded"
    return Failure(queue_id, task.task_id, "failed", queue_id, str(task.attempt_count), error)


def _dead_letter(queue_id: str, task: Task) -> Failure:
    attributes = task.attributes
    origin = attributes.get(transitions.ORIGINAL_QUEUE_ATTRIBUTE, "").removeprefix("queues/")
    return Failure(queue_id, task.task_id, "dead letter", origin, attributes.get(transitions.ATTEMPT_COUNT_ATTRIBUTE, "?"),
                   attributes.get(transitions.LAST_ERROR_ATTRIBUTE, "unknown"))


def _target(key: str) -> tuple[str, str]:
    """(queue id, task id) of a form's `queue/task` value, checked as the API checks names."""
    queue_id, _, task_id = key.partition("/")
    return validate.task_ids(f"queues/{queue_id}/tasks/{task_id}", "task")


def _count(text: Any) -> int:
    try:
        return max(0, min(int(str(text)), 10**6))
    except ValueError:
        return 0


__all__ = ["FailurePages", "describe_error"]
