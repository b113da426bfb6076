"""The tasks Cloud Tasks still has, for both API versions.

Cloud Tasks deletes a task whose attempts ran out: "no further attempts will be made and the
task will be deleted" (RetryConfig), and RunTask "returns NOT_FOUND when it is called on a task
that has already succeeded or permanently failed". For pull tasks the attempts are leases
(RetryConfig.max_attempts applies to pull queues; the other limits are output only there).
taskq keeps such a task FAILED for the queue's task_ttl (taskq.v1 shows it and can run it
again; a dead-letter queue, if the queue has one, takes it instead). Through Cloud Tasks it is
gone: not listed, NOT_FOUND to every call that names it. Its name stays taken, as a deleted
task's name does in Cloud Tasks.
"""

from __future__ import annotations

from taskq.core.engine import Engine
from taskq.core.errors import TaskNotFound
from taskq.core.filter import TaskFilter
from taskq.core.model import Stage, Task, TaskState
from taskq.core.transitions import task_name

#: ListTasks' filter: every state but FAILED.
LIVE_TASKS = TaskFilter(states=frozenset({TaskState.SCHEDULED, TaskState.READY, TaskState.LEASED}))


async def live_task(engine: Engine, queue_id: str, task_id: str) -> Task:
    """The task, NOT_FOUND when it is FAILED (Cloud Tasks would have deleted it). A task that
    fails after this read is still acted on by the caller's next step, as if the call had come
    just before it failed."""
    task = await engine.tasks.get(queue_id, task_id)
    if task.stage is Stage.FAILED:
        raise TaskNotFound(task_name(queue_id, task_id))
    return task
