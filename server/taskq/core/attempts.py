"""What happens to a task whose attempt failed: a retry, FAILED, or the dead-letter queue.

An attempt fails when a push worker nacks, when a lease expires, or when a lease is released
(ModifyLease to 0, or the end of the stream holding it). Pull tasks with attempts left are
ready again at once; push tasks wait for the backoff (or the nack's retry_delay). Once the
retry policy is exhausted, or on a permanent nack, the task moves to the queue's dead-letter
queue or stays in this one as FAILED for task_ttl.
"""

from __future__ import annotations

from taskq.core.errors import Code
from taskq.core.identifiers import new_task_id
from taskq.core.model import Attempt, Queue, QueueType, Stage, Task, TaskState
from taskq.core.retry import backoff_us, effective_policy, exhausted
from taskq.core.states import Event, transition
from taskq.store.commit import Committed

#: Attributes added to a task moved to a dead-letter queue.
ORIGINAL_QUEUE_ATTRIBUTE = "taskq-original-queue"
ORIGINAL_TASK_ATTRIBUTE = "taskq-original-task"
ATTEMPT_COUNT_ATTRIBUTE = "taskq-attempt-count"
LAST_ERROR_ATTRIBUTE = "taskq-last-error"


def fail(
    committed: Committed,
    queue: Queue,
    task: Task,
    now_us: int,
    *,
    event: Event,
    code: Code | int,
    message: str,
    retry_delay_us: int | None = None,
    permanent: bool = False,
) -> Task | None:
    """Ends the task's current attempt as failed and records what comes next.

    Returns the task as it now is in `queue`, or None if it moved to the dead-letter queue.
    """
    error_code = code.value if isinstance(code, Code) else code
    dispatch_time = task.last_attempt.dispatch_time_us if task.last_attempt else now_us
    attempt = Attempt(dispatch_time, now_us, error_code, message)
    policy = effective_policy(queue, task)
    txn = committed.txn
    store = committed.store
    # Whatever comes next, a lease slot of this queue is free again: wake its dispatcher.
    committed.wake(queue.queue_id)
    if permanent or exhausted(policy, task.attempt_count, task.first_attempt_time_us, now_us):
        dead_letter = store.queue(queue.dead_letter_queue) if queue.dead_letter_queue else None
        if dead_letter is not None:
            transition(TaskState.LEASED, event, None)
            _move_to_dead_letter(committed, queue, dead_letter, task, attempt, now_us)
            return None
        transition(TaskState.LEASED, event, TaskState.FAILED)
        failed = _end_lease(task, attempt)
        failed.stage = Stage.FAILED
        failed.retain_until_us = now_us + queue.task_ttl_us
        txn.put_task(queue, failed, task)
        return failed
    if queue.type is QueueType.PULL and retry_delay_us is None:
        delay = 0
    elif retry_delay_us is not None:
        delay = retry_delay_us
    else:
        delay = backoff_us(policy, task.attempt_count)
    retried = _end_lease(task, attempt)
    retried.stage = Stage.WAITING
    retried.schedule_time_us = now_us + delay
    transition(TaskState.LEASED, event, retried.state(now_us))
    txn.promote(queue, now_us)
    txn.put_task(queue, retried, task)
    return retried


def _end_lease(task: Task, attempt: Attempt) -> Task:
    ended = task.copy()
    ended.last_attempt = attempt
    ended.lease_token = ""
    ended.lease_expire_us = 0
    return ended


def _move_to_dead_letter(
    committed: Committed, queue: Queue, dead_letter: Queue, task: Task, attempt: Attempt, now_us: int
) -> None:
    store = committed.store
    task_id = task.task_id
    if store.task(dead_letter, task_id) is not None or (store.tombstone(dead_letter, task_id) or 0) > now_us:
        task_id = new_task_id()
    attributes = dict(task.attributes)
    attributes[ORIGINAL_QUEUE_ATTRIBUTE] = queue.name
    attributes[ORIGINAL_TASK_ATTRIBUTE] = f"{queue.name}/tasks/{task.task_id}"
    attributes[ATTEMPT_COUNT_ATTRIBUTE] = str(task.attempt_count)
    attributes[LAST_ERROR_ATTRIBUTE] = _describe(attempt)
    moved = Task(
        task_id=task_id,
        schedule_time_us=now_us,
        create_time_us=now_us,
        payload=task.payload,
        attributes=attributes,
        tag=task.tag,
    )
    txn = committed.txn
    txn.promote(dead_letter, now_us)
    txn.put_task(dead_letter, moved, None)
    txn.delete_task(queue, task)
    if task.named and queue.tombstone_ttl_us > 0:
        txn.put_tombstone(queue, task.task_id, now_us + queue.tombstone_ttl_us)
    committed.wake(dead_letter.queue_id)


def _describe(attempt: Attempt) -> str:
    try:
        name = Code(attempt.error_code).name
    except ValueError:
        name = f"code {attempt.error_code}"
    return f"{name}: {attempt.error_message}" if attempt.error_message else name
