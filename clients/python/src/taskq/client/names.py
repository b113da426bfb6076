"""Resource names: `queues/{queue_id}` and `queues/{queue_id}/tasks/{task_id}`.

The client accepts a bare queue id wherever a queue is named, and a Task message wherever a
task is; it does not validate ids itself, so the server's INVALID_ARGUMENT (with the field
and the allowed form) stays the one source of truth.
"""

from __future__ import annotations

from taskq.v1 import task_pb2

QUEUES = "queues/"
TASKS = "/tasks/"


def queue_name(queue: str) -> str:
    """`queues/q` for `q` or `queues/q`; a task name gives its queue's name."""
    if not isinstance(queue, str):
        raise TypeError(f"a queue is named by a str, not {type(queue).__name__}")
    if not queue.startswith(QUEUES):
        # A bare id; anything with a slash is passed on for the server to refuse.
        return queue if "/" in queue else QUEUES + queue
    head, separator, _ = queue.partition(TASKS)
    return head if separator else queue


def task_name(task: str | task_pb2.Task) -> str:
    """The full name of a task given by its name or as a Task message."""
    if isinstance(task, task_pb2.Task):
        return task.name
    if not isinstance(task, str):
        raise TypeError(f"a task is named by a str or a Task, not {type(task).__name__}")
    return task


def task_name_in(queue: str, task_id_or_name: str) -> str:
    """The name of a task of `queue` given by its id (`t`) or its full name (passed unchanged)."""
    if task_id_or_name.startswith(QUEUES):
        return task_id_or_name
    return f"{queue_name(queue)}{TASKS}{task_id_or_name}"


def task_id(name: str) -> str:
    """The id part of a task name (the whole string if it is not a full name)."""
    return name.rpartition(TASKS)[2]


__all__ = ["queue_name", "task_name", "task_name_in", "task_id"]
