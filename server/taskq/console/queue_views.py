"""The console's queue page (settings, pause/resume/purge, its tasks with the API's filters and
page tokens) and task page (payload as text, JSON or hex; attributes; attempts; lease; run now,
delete).

Each handler does what the gRPC servicer of the same method does (api/validate, the engine,
api/queues.update_queue) after checking the viewer with that method's rule (auth/policy).
Actions that lose or stop work ask first: a form without `confirm=yes` answers with a
confirmation page, so that they work without JavaScript.
"""

from __future__ import annotations

import binascii
import dataclasses
import datetime
import json
import math
from typing import Any
from urllib.parse import urlencode

from aiohttp import web
from google.protobuf import duration_pb2

from taskq.api import convert, validate
from taskq.api.queues import update_queue
from taskq.auth import policy
from taskq.console.history import History, sparkline
from taskq.console.views import PREFIX, Console, Viewer, queue_row
from taskq.core import limits, pagination
from taskq.core.errors import Code, InvalidArgument, TaskqError
from taskq.core.filter import parse as parse_filter
from taskq.core.model import US_PER_SECOND, QueueState, QueueType, Task
from taskq.core.tasks import DeleteRequest
from taskq.v1 import queue_pb2, queue_service_pb2, task_pb2, task_service_pb2

QUEUES = policy.QUEUES
TASKS = policy.TASKS
#: Tasks shown per page of the queue page.
TASKS_PER_PAGE = 50
#: States the task list filters by (the API's filter names).
TASK_STATES = ("scheduled", "ready", "leased", "failed")


@dataclasses.dataclass(frozen=True)
class Setting:
    """A field of the settings form: its UpdateQueue mask path, label, and kind: "rate" (tasks
    per second, blank for unlimited), "int", "seconds" (a duration), "queue" (a queue id)."""

    path: str
    label: str
    kind: str
    hint: str = ""

    @property
    def id(self) -> str:
        return self.path.replace(".", "-")


SETTINGS = (
    Setting("rate_limits.max_dispatches_per_second", "Rate limit (tasks per second)", "rate", "blank: unlimited"),
    Setting("rate_limits.max_burst_size", "Burst size", "int"),
    Setting("rate_limits.max_concurrent_dispatches", "Most concurrent dispatches", "int"),
    Setting("retry_config.max_attempts", "Most attempts", "int", "0: unlimited"),
    Setting("retry_config.min_backoff", "Shortest backoff (seconds)", "seconds"),
    Setting("retry_config.max_backoff", "Longest backoff (seconds)", "seconds"),
    Setting("retry_config.max_doublings", "Backoff doublings", "int"),
    Setting("retry_config.max_retry_duration", "Retry for at most (seconds)", "seconds", "0: no limit"),
    Setting("dispatch_deadline", "Dispatch deadline (seconds)", "seconds"),
    Setting("task_ttl", "Keep failed tasks for (seconds)", "seconds"),
    Setting("tombstone_ttl", "Reserve finished names for (seconds)", "seconds"),
    Setting("dead_letter_queue", "Dead-letter queue", "queue", "blank: none"),
)

#: Confirmable queue actions: method, what the confirmation asks, the notice after it.
QUEUE_ACTIONS = {
    "pause": ("PauseQueue", "Pause the queue? No task is handed out until it is resumed.", "The queue is paused."),
    "resume": ("ResumeQueue", "Resume the queue? Its tasks are handed out again.", "The queue is running."),
    "purge": ("PurgeQueue", "Purge the queue? Every task in it now is deleted; this cannot be undone.",
              "The queue is purged."),
}
#: Notices shown after a redirect (?done=...): fixed texts, never taken from the query.
NOTICES = {
    **{action: notice for action, (_, _, notice) in QUEUE_ACTIONS.items()},
    "settings": "The settings are saved.",
    "run": "The task is due now.",
    "deleted": "The task is deleted.",
}


def _proto_value(message: queue_pb2.Queue, setting: Setting) -> str:
    """A setting's current value as the form shows it."""
    *parents, name = setting.path.split(".")
    holder: Any = message
    for parent in parents:
        holder = getattr(holder, parent)
    if setting.kind == "seconds":
        value: duration_pb2.Duration = getattr(holder, name)
        if not value.nanos:
            return str(value.seconds)
        return f"{value.seconds + value.nanos / 1e9:.9f}".rstrip("0").rstrip(".")
    if setting.kind == "queue":
        return str(getattr(holder, name)).removeprefix("queues/")
    if setting.kind == "rate":
        return f"{getattr(holder, name):g}" if holder.HasField(name) else ""
    return str(getattr(holder, name))


def _set_proto_value(message: queue_pb2.Queue, setting: Setting, text: str) -> None:
    """Sets a setting from the form's text; InvalidArgument (on the API's field path) when the
    text is not a number at all. Ranges are the API's to check."""
    *parents, name = setting.path.split(".")
    holder: Any = message
    for parent in parents:
        holder = getattr(holder, parent)
    field = f"queue.{setting.path}"
    text = text.strip()
    try:
        if setting.kind == "rate":
            if text:
                holder.max_dispatches_per_second = float(text)
            else:
                holder.ClearField(name)
        elif setting.kind == "int":
            setattr(holder, name, int(text or "0"))
        elif setting.kind == "seconds":
            seconds = float(text or "0")
            if not math.isfinite(seconds) or abs(seconds) > 1e12:
                raise ValueError(text)
            whole = math.floor(seconds)
            getattr(holder, name).CopyFrom(duration_pb2.Duration(seconds=whole, nanos=round((seconds - whole) * 1e9)))
        else:
            setattr(holder, name, f"queues/{text}" if text else "")
    except (ValueError, OverflowError):
        raise InvalidArgument.field(field, f"{text[:40]!r} is not a number", "INVALID_NUMBER") from None


def _field_errors(error: TaskqError) -> dict[str, str]:
    """Setting id -> the API's message about it."""
    found = {}
    for violation in error.violations:
        path = violation.field.removeprefix("queue.")
        for setting in SETTINGS:
            if path == setting.path or path.startswith(setting.path + "."):
                found[setting.id] = violation.description
    return found


def _task_filter(state: str, tag: str) -> str:
    """The ListTasks filter of the queue page's state and tag fields."""
    parts = []
    if state:
        parts.append(f"state = {state.upper()}")
    if tag:
        escaped = tag.replace("\\", "\\\\").replace('"', '\\"')
        parts.append(f'tag = "{escaped}"')
    return " AND ".join(parts)


def _time(time_us: int) -> str:
    if not time_us:
        return "-"
    return datetime.datetime.fromtimestamp(time_us / US_PER_SECOND, datetime.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def payload_views(payload: bytes) -> dict[str, str | None]:
    """The payload as text (None when it is not UTF-8), JSON (None when it is not JSON) and hex."""
    try:
        text: str | None = payload.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    shown_json = None
    if text is not None and text.strip():
        try:
            shown_json = json.dumps(json.loads(text), indent=2, ensure_ascii=False, sort_keys=True)
        except ValueError:
            shown_json = None
    hex_lines = []
    for offset in range(0, len(payload), 16):
        chunk = payload[offset:offset + 16]
        hex_lines.append(f"{offset:08x}  {binascii.hexlify(chunk, ' ').decode():<47}  "
                         + "".join(chr(b) if 32 <= b < 127 else "." for b in chunk))
    return {"text": text, "json": shown_json, "hex": "\n".join(hex_lines)}


class QueuePages:
    def __init__(self, console: Console, history: History) -> None:
        self._console = console
        self._history = history

    def register(self, app: web.Application) -> None:
        routes = app.router
        routes.add_get(PREFIX + "/queues/{queue}", self._queue_page)
        routes.add_post(PREFIX + "/queues/{queue}/settings", self._settings)
        routes.add_post(PREFIX + "/queues/{queue}/{action:pause|resume|purge}", self._queue_action)
        routes.add_get(PREFIX + "/queues/{queue}/tasks/{task}", self._task_page)
        routes.add_post(PREFIX + "/queues/{queue}/tasks/{task}/{action:run|delete}", self._task_action)

    # The queue page ---------------------------------------------------------------------------

    async def _queue_page(self, request: web.Request) -> web.StreamResponse:
        viewer = None
        try:
            viewer = await self._console.viewer(request)
            return await self._show_queue(request, viewer)
        except TaskqError as error:
            return self._console.failure(request, viewer, error)

    async def _show_queue(self, request: web.Request, viewer: Viewer, *, status: int = 200,
                          form: dict[str, str] | None = None, errors: dict[str, str] | None = None,
                          message: str | None = None) -> web.StreamResponse:
        console = self._console
        engine = console.engine()
        queue_id = _queue_id(request)
        name = f"queues/{queue_id}"
        viewer.check(QUEUES + "GetQueue", queue_service_pb2.GetQueueRequest(name=name))
        queue = await engine.queues.get(queue_id)
        stats = await engine.queues.stats(queue_id)
        proto = convert.queue_to_proto(queue)
        values = {setting.id: _proto_value(proto, setting) for setting in SETTINGS}
        if form is not None:
            values.update(form)

        state = request.query.get("state", "")
        tag = request.query.get("tag", "")[: limits.MAX_TAG_BYTES]
        if state not in ("", *TASK_STATES):
            raise InvalidArgument.field("state", f"must be one of {', '.join(TASK_STATES)}", "INVALID_FILTER")
        task_filter = _task_filter(state, tag)
        list_request = task_service_pb2.ListTasksRequest(parent=name, filter=task_filter,
                                                         page_token=request.query.get("page_token", ""))
        viewer.check(TASKS + "ListTasks", list_request)
        parsed = parse_filter(task_filter)
        arguments = (name, task_filter, str(task_pb2.TASK_VIEW_BASIC))
        after = pagination.decode(list_request.page_token, arguments, engine.page_token_key, limits.TASK_ID_PATTERN)
        tasks, resume_after = await engine.tasks.page(queue_id, parsed, after, TASKS_PER_PAGE, payloads=False)
        next_query = None
        if resume_after:
            next_query = urlencode({"state": state, "tag": tag,
                                    "page_token": pagination.encode(resume_after, arguments, engine.page_token_key)})
        now_us = engine.clock.now_us()
        row = queue_row(now_us, queue, stats).live()
        admin = viewer.may(QUEUES + "PauseQueue", queue_service_pb2.PauseQueueRequest(name=name))
        done = request.query.get("done", "")
        samples = self._history.of(queue_id)
        depths = [sample.depth for sample in samples]
        executed = [sample.executed for sample in samples]
        charts = [
            ("Depth", "tasks waiting or leased", depths, sparkline(depths)),
            ("Throughput", "tasks finished per minute", executed, sparkline(executed)),
        ] if samples else []
        return console.render(
            request, "queue.html", viewer, status=status, queue=queue, queue_type=QueueType(queue.type).name.lower(),
            paused=queue.state is QueueState.PAUSED, row=row, settings=SETTINGS, values=values, errors=errors or {},
            message=message, admin=admin, tasks=[_task_row(task, now_us) for task in tasks], state=state, tag=tag,
            task_states=TASK_STATES, next_query=next_query, first_page=not list_request.page_token,
            notice=NOTICES.get(done), charts=charts, live_url=f"{PREFIX}/queues.json?" + urlencode({"q": queue_id}),
        )

    async def _settings(self, request: web.Request) -> web.StreamResponse:
        console = self._console
        viewer = None
        try:
            viewer = await console.viewer(request)
            form = await request.post()
            console.check_csrf(viewer, form)
            queue_id = _queue_id(request)
            engine = console.engine()
            submitted = {setting.id: str(form.get(setting.id, "")) for setting in SETTINGS}
            current = convert.queue_to_proto(await engine.queues.get(queue_id))
            # Refused before the form is read: a viewer learns nothing from its values' checks.
            viewer.check(QUEUES + "UpdateQueue", queue_service_pb2.UpdateQueueRequest(queue=current))
            new = queue_pb2.Queue()
            new.CopyFrom(current)
            paths = []
            try:
                for setting in SETTINGS:
                    if submitted[setting.id].strip() != _proto_value(current, setting):
                        _set_proto_value(new, setting, submitted[setting.id])
                        paths.append(setting.path)
                update = queue_service_pb2.UpdateQueueRequest(queue=new)
                update.update_mask.paths.extend(paths)
                viewer.check(QUEUES + "UpdateQueue", update)
                if paths:
                    await update_queue(engine, update)
            except InvalidArgument as error:
                return await self._show_queue(request, viewer, status=400, form=submitted, errors=_field_errors(error),
                                              message=error.message)
            raise web.HTTPSeeOther(f"{PREFIX}/queues/{queue_id}?done=settings")
        except TaskqError as error:
            return console.failure(request, viewer, error)

    async def _queue_action(self, request: web.Request) -> web.StreamResponse:
        console = self._console
        viewer = None
        try:
            viewer = await console.viewer(request)
            form = await request.post()
            console.check_csrf(viewer, form)
            queue_id = _queue_id(request)
            action = request.match_info["action"]
            method, question, _ = QUEUE_ACTIONS[action]
            request_type = getattr(queue_service_pb2, f"{method}Request")
            viewer.check(QUEUES + method, request_type(name=f"queues/{queue_id}"))
            if form.get("confirm") != "yes":
                return console.render(request, "confirm.html", viewer, question=question, action=request.path,
                                      button=action.capitalize(), back=f"{PREFIX}/queues/{queue_id}", danger=action == "purge")
            engine = console.engine()
            if action == "purge":
                await engine.queues.purge(queue_id)
            else:
                await engine.queues.set_state(queue_id, QueueState.PAUSED if action == "pause" else QueueState.RUNNING)
            raise web.HTTPSeeOther(f"{PREFIX}/queues/{queue_id}?done={action}")
        except TaskqError as error:
            return console.failure(request, viewer, error)

    # The task page ----------------------------------------------------------------------------

    async def _task_page(self, request: web.Request) -> web.StreamResponse:
        console = self._console
        viewer = None
        try:
            viewer = await console.viewer(request)
            queue_id, task_id = _task_ids(request)
            name = f"queues/{queue_id}/tasks/{task_id}"
            viewer.check(TASKS + "GetTask", task_service_pb2.GetTaskRequest(name=name))
            engine = console.engine()
            task = await engine.tasks.get(queue_id, task_id)
            shown_as = request.query.get("as", "")
            views = payload_views(task.payload)
            if shown_as not in ("text", "json", "hex"):
                shown_as = "json" if views["json"] is not None else "text" if views["text"] is not None else "hex"
            admin = viewer.may(TASKS + "RunTask", task_service_pb2.RunTaskRequest(name=name))
            now_us = engine.clock.now_us()
            return console.render(
                request, "task.html", viewer, queue_id=queue_id, task=task, row=_task_row(task, now_us), views=views,
                shown_as=shown_as, admin=admin, time=_time, notice=NOTICES.get(request.query.get("done", "")),
                attempt=task.last_attempt, error_code=_code_name,
            )
        except TaskqError as error:
            return console.failure(request, viewer, error)

    async def _task_action(self, request: web.Request) -> web.StreamResponse:
        console = self._console
        viewer = None
        try:
            viewer = await console.viewer(request)
            form = await request.post()
            console.check_csrf(viewer, form)
            queue_id, task_id = _task_ids(request)
            name = f"queues/{queue_id}/tasks/{task_id}"
            action = request.match_info["action"]
            engine = console.engine()
            if action == "run":
                viewer.check(TASKS + "RunTask", task_service_pb2.RunTaskRequest(name=name))
                await engine.tasks.run(queue_id, task_id)
                raise web.HTTPSeeOther(f"{PREFIX}/queues/{queue_id}/tasks/{task_id}?done=run")
            viewer.check(TASKS + "DeleteTask", task_service_pb2.DeleteTaskRequest(name=name))
            if form.get("confirm") != "yes":
                return console.render(request, "confirm.html", viewer, question=f"Delete the task {task_id}?",
                                      action=request.path, button="Delete",
                                      back=f"{PREFIX}/queues/{queue_id}/tasks/{task_id}", danger=True)
            [error] = await engine.tasks.delete(queue_id, [DeleteRequest(task_id, "")])
            if error is not None:
                raise error
            raise web.HTTPSeeOther(f"{PREFIX}/queues/{queue_id}?done=deleted")
        except TaskqError as error:
            return console.failure(request, viewer, error)


@dataclasses.dataclass
class TaskRow:
    task_id: str
    state: str
    tag: str
    scheduled: str
    attempts: int
    last_error: str


def _task_row(task: Task, now_us: int) -> TaskRow:
    state = task.state(now_us)
    attempt = task.last_attempt
    error = ""
    if attempt is not None and attempt.error_code:
        error = f"{_code_name(attempt.error_code)}: {attempt.error_message}"
    return TaskRow(task.task_id, state.name.lower() if state is not None else "finished", task.tag,
                   _time(task.schedule_time_us), task.attempt_count, error)


def _code_name(code: int) -> str:
    try:
        return Code(code).name
    except ValueError:
        return str(code)


def _queue_id(request: web.Request) -> str:
    return validate.queue_id(f"queues/{request.match_info['queue']}", "name")


def _task_ids(request: web.Request) -> tuple[str, str]:
    return validate.task_ids(f"queues/{request.match_info['queue']}/tasks/{request.match_info['task']}", "name")


__all__ = ["QueuePages", "SETTINGS", "payload_views"]
