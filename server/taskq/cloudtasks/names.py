"""Cloud Tasks resource names: `projects/P/locations/L/queues/Q[/tasks/T]`.

taskq's queue ids are global; the project and location a queue was created under through
the Cloud Tasks API are kept with it (Queue.cloud_parent), so its name round-trips, and a
caller asking for the queue under another project or location does not find it. Queues made
through taskq.v1, the CLI or queue.yaml answer to any project and location.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from typing import Any

from taskq.core import limits
from taskq.core.errors import InvalidArgument, QueueNotFound, TaskqError
from taskq.core.model import Queue

#: Cloud Tasks' project ids (letters, digits, hyphens, colons, periods) and location ids.
_PARENT = r"projects/([A-Za-z0-9.:-]{1,100})/locations/([A-Za-z0-9-]{1,63})"
_PARENT_RE = re.compile(_PARENT)
_QUEUE_RE = re.compile(rf"({_PARENT})/queues/({limits.QUEUE_ID_PATTERN})")
_TASK_RE = re.compile(rf"({_PARENT})/queues/({limits.QUEUE_ID_PATTERN})/tasks/({limits.TASK_ID_PATTERN})")


def parent(name: str, field: str) -> str:
    """A `projects/P/locations/L`."""
    if not name:
        raise InvalidArgument.field(field, "is required", "REQUIRED_FIELD")
    if not _PARENT_RE.fullmatch(name):
        raise InvalidArgument.field(field, f"{name[:200]!r} is not projects/PROJECT_ID/locations/LOCATION_ID",
                                    "INVALID_NAME")
    return name


def queue(name: str, field: str) -> tuple[str, str]:
    """(parent, queue id) of `projects/P/locations/L/queues/Q`."""
    if not name:
        raise InvalidArgument.field(field, "is required", "REQUIRED_FIELD")
    match = _QUEUE_RE.fullmatch(name)
    if match is None:
        raise InvalidArgument.field(
            field, f"{name[:200]!r} is not projects/PROJECT_ID/locations/LOCATION_ID/queues/QUEUE_ID (QUEUE_ID: 1 to "
            "100 of A-Z a-z 0-9 -)", "INVALID_NAME",
        )
    return match.group(1), match.group(4)


def task(name: str, field: str) -> tuple[str, str, str]:
    """(parent, queue id, task id) of `projects/P/locations/L/queues/Q/tasks/T`."""
    if not name:
        raise InvalidArgument.field(field, "is required", "REQUIRED_FIELD")
    match = _TASK_RE.fullmatch(name)
    if match is None:
        raise InvalidArgument.field(
            field, f"{name[:200]!r} is not projects/P/locations/L/queues/Q/tasks/TASK_ID (TASK_ID: 1 to 500 of A-Z "
            "a-z 0-9 _ -)", "INVALID_NAME",
        )
    return match.group(1), match.group(4), match.group(5)


def visible(found: Queue, parent_name: str) -> bool:
    """Whether a queue is the one a caller names under `parent_name`."""
    return not found.cloud_parent or found.cloud_parent == parent_name


def check_visible(found: Queue, parent_name: str) -> Queue:
    if not visible(found, parent_name):
        raise QueueNotFound(f"{parent_name}/queues/{found.queue_id}")
    return found


def queue_name(found: Queue, parent_name: str) -> str:
    return f"{found.cloud_parent or parent_name}/queues/{found.queue_id}"


def task_name(found: Queue, parent_name: str, task_id: str) -> str:
    return f"{queue_name(found, parent_name)}/tasks/{task_id}"


_BARE_QUEUE = re.compile(r"(?<![\w/])queues/")
_ANY_PARENT = re.compile(_PARENT)


def _parent_of(request: Any) -> str | None:
    """The projects/P/locations/L a request names, if any."""
    for field in ("parent", "name", "resource"):
        value = getattr(request, field, None)
        if isinstance(value, str) and (match := _ANY_PARENT.match(value)):
            return match.group(0)
    for field in ("queue", "task"):
        value = getattr(request, field, None)
        name = getattr(value, "name", None)
        if isinstance(name, str) and (match := _ANY_PARENT.match(name)):
            return match.group(0)
    return None


def as_caller_named(error: TaskqError, parent: str) -> TaskqError:
    """The error with every queue and task named under `parent` (projects/P/locations/L), as a
    Cloud Tasks caller names them, instead of as taskq.v1 does (queues/Q): in its message,
    metadata and every detail that names one (ResourceInfo, BadRequest and PreconditionFailure
    descriptions, precondition subjects). Changes `error` itself and returns it."""

    def rename(text: str) -> str:
        return _BARE_QUEUE.sub(f"{parent}/queues/", text)

    error.message = rename(error.message)
    error.args = (error.message,)
    error.metadata = {key: rename(value) for key, value in error.metadata.items()}
    if error.resource is not None:
        error.resource = (error.resource[0], rename(error.resource[1]))
    error.violations = [dataclasses.replace(v, description=rename(v.description)) for v in error.violations]
    error.preconditions = [dataclasses.replace(v, subject=rename(v.subject), description=rename(v.description))
                           for v in error.preconditions]
    return error


def cloud_names(method):
    """Errors of a Cloud Tasks method name queues and tasks as its caller did
    (projects/P/locations/L/queues/Q), not as taskq.v1 does (queues/Q)."""

    @functools.wraps(method)
    async def wrapper(self, request, context):
        try:
            return await method(self, request, context)
        except TaskqError as error:
            parent = _parent_of(request)
            if parent is not None:
                as_caller_named(error, parent)
            raise

    return wrapper
