"""Task transitions: every change of a task's state, written once.

One function per event of the state machine (core/states.py): create, lease, renew, ack,
release, nack, expire, run, delete, purge, discard, dead-letter. Each reads the task as the
transaction sees it (its own earlier writes included), takes its actual state, computes where
the event leads by the queue's rules (retries, backoff, dead letters), and moves it with
`_move`, the one place that asks the state table and writes: the record and its indexes and
counters, or the deletion and the name's tombstone. Callers (core/tasks.py, core/push.py, the
reaper, the janitor, the purger) choose which task and when; only this module changes one.

A task created at or before its queue's purge time is purged: no transition finds it (it is
deleted by the purger, or by whichever transition meets it first), so a purge takes effect the
moment it is recorded, however long the deleting takes.

Every function runs inside a mutation (store/database.py) and writes through its Change, which
also reports each move, once committed, to the engine's event subscribers (core/events.py).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable

from taskq.core import events
from taskq.core.errors import Code, LeaseLost, TaskAlreadyExists, TaskLeased, TaskNotFound, TaskTombstoned
from taskq.core.identifiers import new_lease_token, new_task_id
from taskq.core.limits import task_message_bound
from taskq.core.model import Attempt, LeaseEntry, Queue, QueueType, Stage, Task, TaskState
from taskq.core.retry import backoff_us, effective_policy, exhausted
from taskq.core.states import Event, transition
from taskq.core.timefmt import format_us
from taskq.store.database import Change

#: Attributes added to a task moved to a dead-letter queue.
ORIGINAL_QUEUE_ATTRIBUTE = "taskq-original-queue"
ORIGINAL_TASK_ATTRIBUTE = "taskq-original-task"
ATTEMPT_COUNT_ATTRIBUTE = "taskq-attempt-count"
LAST_ERROR_ATTRIBUTE = "taskq-last-error"

#: Purged tasks a lease deletes on its way, at most, before answering with what it has (the
#: purger deletes the rest).
PURGED_PER_LEASE = 1000

#: Request ids and acknowledgements are kept by the hour.
HOUR_US = 3_600_000_000

#: Waiting tasks counted as ready by one write (see Txn.promote); more are left to the janitor,
#: so that a write after a million tasks fell due at once does not stall every other write.
PROMOTE_IN_WRITE = 256


def forget_after_us(made_us: int) -> int:
    """When a request id or an acknowledgement made at `made_us` is forgotten: at the end of
    the hour after the one it was made in (they are kept and forgotten by the hour)."""
    return (made_us // HOUR_US + 2) * HOUR_US


def task_name(queue_id: str, task_id: str) -> str:
    return f"queues/{queue_id}/tasks/{task_id}"


def purged(queue: Queue, task: Task) -> bool:
    """Whether the task was created at or before the queue's last purge (and is gone for
    every purpose, even while the purger has not deleted it yet)."""
    return task.create_time_us <= queue.purge_time_us


def stored(change: Change, queue: Queue, task_id: str) -> Task | None:
    """The task as this transaction sees it; None if there is none or it is purged."""
    task = change.txn.task(queue, task_id)
    if task is None or purged(queue, task):
        return None
    return task


def prefetch_by_queue(change: Change, tasks: list[tuple[int, str]]) -> None:
    """Hints the transaction about to read these (storage id, task id) tasks, a queue at a
    time (Txn.prefetch): one round trip per queue instead of one per task where that matters."""
    by_queue: dict[int, list[str]] = {}
    for storage_id, task_id in tasks:
        by_queue.setdefault(storage_id, []).append(task_id)
    for storage_id, task_ids in by_queue.items():
        queue = change.txn.queue_by_storage_id(storage_id)
        if queue is not None:
            change.txn.prefetch(queue, task_ids)


# The mechanism ------------------------------------------------------------------------------


def _move(
    change: Change, queue: Queue, before: Task | None, event: Event, after: Task | None, now_us: int, related: str = ""
) -> None:
    """Takes a task from `before` (None: no task yet) to `after` (None: deleted), after the
    state table has allowed the event between their actual states, and writes it; records the
    event for the subscribers (`related`: see core/events.py's Event)."""
    source = before.state(now_us) if before is not None else None
    target = after.state(now_us) if after is not None else None
    transition(source, event, target)
    if change.report is not None:
        _record(change, queue, before, event, after, target, now_us, related)
    txn = change.txn
    if before is not None and before.stage is Stage.LEASED and (after is None or after.stage is not Stage.LEASED):
        change.lease_ended(queue.queue_id, before.task_id, before.lease_token)
    if after is not None:
        txn.put_task(queue, after, before)
        if after.stage is Stage.FAILED:
            change.housekeeping_due(after.retain_until_us)
        elif after.stage is Stage.WAITING and after.schedule_time_us > now_us:
            change.housekeeping_due(after.schedule_time_us)  # to count it as ready then
        return
    assert before is not None
    txn.delete_task(queue, before)
    if before.named and queue.tombstone_ttl_us > 0:
        txn.put_tombstone(queue, before.task_id, now_us + queue.tombstone_ttl_us)
        change.housekeeping_due(now_us + queue.tombstone_ttl_us)


def _record(
    change: Change, queue: Queue, before: Task | None, event: Event, after: Task | None, target: TaskState | None,
    now_us: int, related: str,
) -> None:
    task = after if after is not None else before
    assert task is not None
    since_us = 0
    if before is not None:
        if event is Event.LEASE:
            since_us = before.schedule_time_us
        elif event is Event.ACK:
            since_us = before.create_time_us
    fields = (event, queue.queue_id, task.task_id, target, now_us, since_us, task.attempt_count, related)
    change.record(tuple.__new__(events.Event, fields))  # see events.Event: the constructor costs twice this


def _promote_once(change: Change, queue: Queue, now_us: int) -> None:
    """Counts the queue's tasks due by now as ready, once per change and before it writes
    waiting tasks of the queue (Txn.promote's rule); a bounded step, the janitor does the rest."""
    if queue.storage_id not in change.promoted:
        change.promoted.add(queue.storage_id)
        change.txn.promote(queue, now_us, PROMOTE_IN_WRITE)


# Create -----------------------------------------------------------------------------------


def create(change: Change, queue: Queue, task: Task, now_us: int) -> Task:
    """No task → SCHEDULED or READY. A caller-chosen name must be free: not used by a task of
    the queue, nor reserved by the tombstone of a finished one."""
    if task.named:
        name = task_name(queue.queue_id, task.task_id)
        if change.txn.task(queue, task.task_id) is not None:
            raise TaskAlreadyExists(name)
        reserved_until = change.txn.tombstone(queue, task.task_id)
        if reserved_until is not None and reserved_until > now_us:
            raise TaskTombstoned(name, format_us(reserved_until))
    _promote_once(change, queue, now_us)
    _move(change, queue, None, Event.CREATE, task, now_us)
    change.wake(queue.queue_id)
    return task


# Leases -------------------------------------------------------------------------------------


def lease(change: Change, queue: Queue, task: Task, now_us: int, duration_us: int) -> Task:
    """READY → LEASED for `duration_us`: one more attempt, a fresh token. `task` is a waiting
    task this transaction read (Reader.waiting)."""
    leased = task.copy()
    leased.stage = Stage.LEASED
    leased.attempt_count += 1
    if not leased.first_attempt_time_us:
        leased.first_attempt_time_us = now_us
    leased.previous_attempt = task.last_attempt
    leased.last_attempt = Attempt(dispatch_time_us=now_us)
    leased.lease_token = new_lease_token()
    leased.lease_expire_us = now_us + duration_us
    _move(change, queue, task, Event.LEASE, leased, now_us)
    return leased


def lease_due(
    change: Change, queue: Queue, now_us: int, wanted: int, budget_bytes: int, duration_us: Callable[[Task], int],
    tag: str | None = None,
) -> list[Task]:
    """Leases up to `wanted` of the queue's ready tasks (with `tag`, only those), oldest schedule
    time first, each for `duration_us(task)`, as long as their Task messages fit in
    `budget_bytes` (the first always does). Purged tasks met on the way are deleted, at most
    PURGED_PER_LEASE of them (the purger deletes the rest)."""
    leased: list[Task] = []
    purged_count = 0
    for task in change.txn.waiting(queue, now_us, tag, wanted + PURGED_PER_LEASE):
        if purged(queue, task):
            purge(change, queue, task, now_us)
            purged_count += 1
            if purged_count >= PURGED_PER_LEASE:
                break
            continue
        size = task_message_bound(queue.queue_id, task, payload=True)
        if leased and size > budget_bytes:
            break
        budget_bytes -= size
        leased.append(lease(change, queue, task, now_us, duration_us(task)))
        if len(leased) >= wanted:
            break
    return leased


def held(change: Change, queue: Queue, task_id: str, token: str, now_us: int) -> Task:
    """The task, if `token` names its current, unexpired lease; raises LeaseLost if not. A
    lease whose time has run out is lost even before the reaper has processed it."""
    name = task_name(queue.queue_id, task_id)
    task = stored(change, queue, task_id)
    if task is None:
        raise LeaseLost(name, "the task no longer exists (acknowledged, deleted or purged)")
    if task.stage is not Stage.LEASED:
        raise LeaseLost(name, "the task is not leased (its lease expired or was released)")
    if not secrets.compare_digest(task.lease_token, token):
        raise LeaseLost(name, "the token does not name the task's current lease")
    if task.lease_expire_us <= now_us:
        raise LeaseLost(name, "the lease expired")
    return task


def renew(change: Change, queue: Queue, task_id: str, token: str, now_us: int, duration_us: int) -> Task:
    """LEASED → LEASED, the same lease now ending `duration_us` from now."""
    task = held(change, queue, task_id, token, now_us)
    renewed = task.copy()
    renewed.lease_expire_us = now_us + duration_us
    _move(change, queue, task, Event.RENEW, renewed, now_us)
    return renewed


def ack(change: Change, queue: Queue, task_id: str, token: str, now_us: int) -> None:
    """LEASED → deleted: the worker finished the task. The acknowledgement is remembered for
    an hour, so that a retry of it (its answer was lost) gets the same answer, not LEASE_LOST."""
    try:
        task = held(change, queue, task_id, token, now_us)
    except LeaseLost:
        acked_with = change.txn.acked(queue, task_id, now_us)
        if acked_with is not None and secrets.compare_digest(acked_with, token):
            return  # already acknowledged with this very lease
        raise
    _move(change, queue, task, Event.ACK, None, now_us)
    change.txn.put_ack(queue, task_id, token, now_us)
    change.housekeeping_due(forget_after_us(now_us))
    change.wake(queue.queue_id)


def release(
    change: Change, queue: Queue, task_id: str, token: str, now_us: int, reason: str,
    retry_delay_us: int | None = None,
) -> Task | None:
    """LEASED → waiting again (pull: at once), or FAILED / dead-lettered when the attempt was
    the last: the holder gave the task back (ModifyLease to 0, or its stream ended)."""
    task = held(change, queue, task_id, token, now_us)
    return _end_attempt(change, queue, task, now_us, Event.RELEASE, Code.CANCELLED.value, reason, retry_delay_us)


def nack(
    change: Change, queue: Queue, task_id: str, token: str, now_us: int, *, code: int, message: str,
    retry_delay_us: int | None = None, permanent: bool = False, min_retry_delay_us: int = 0, http_status: int = 0,
) -> Task | None:
    """LEASED → retried after the backoff (or `retry_delay_us`, and at least
    `min_retry_delay_us`), FAILED or dead-lettered: the worker reported a failure (`permanent`:
    no retry whatever the policy says). `http_status`: the HTTP worker's answer, if any."""
    task = held(change, queue, task_id, token, now_us)
    return _end_attempt(
        change, queue, task, now_us, Event.NACK, code, message, retry_delay_us, permanent, min_retry_delay_us,
        http_status,
    )


def expire(change: Change, entry: LeaseEntry, now_us: int) -> bool:
    """LEASED → retried, FAILED or dead-lettered: the lease in the lease-index `entry` ran out.
    Returns False (and drops the entry) when the entry names no such lease any more."""
    queue = change.txn.queue_by_storage_id(entry.storage_id)
    task = stored(change, queue, entry.task_id) if queue is not None else None
    if queue is None or task is None or task.stage is not Stage.LEASED or task.lease_expire_us != entry.expire_us:
        change.txn.forget_lease(entry)
        return False
    _end_attempt(change, queue, task, now_us, Event.EXPIRE, Code.DEADLINE_EXCEEDED.value, "lease expired")
    return True


def _end_attempt(
    change: Change, queue: Queue, task: Task, now_us: int, event: Event, code: int, message: str,
    retry_delay_us: int | None = None, permanent: bool = False, min_retry_delay_us: int = 0, http_status: int = 0,
) -> Task | None:
    """Ends a leased task's attempt as failed; returns the task as it now is in `queue`, or
    None if it moved to the dead-letter queue."""
    attempt = Attempt(
        task.last_attempt.dispatch_time_us if task.last_attempt else now_us, now_us, code, message, http_status
    )
    # Whatever comes next, a lease slot of this queue is free again: wake its dispatcher.
    change.wake(queue.queue_id)
    policy = effective_policy(queue, task)
    if permanent or exhausted(policy, task.attempt_count, task.first_attempt_time_us, now_us):
        dead_letter_queue = change.txn.queue(queue.dead_letter_queue) if queue.dead_letter_queue else None
        if dead_letter_queue is not None:
            dead_letter(change, queue, task, dead_letter_queue, attempt, event, now_us)
            return None
        failed = _attempt_ended(task, attempt)
        failed.stage = Stage.FAILED
        failed.retain_until_us = now_us + queue.task_ttl_us
        _move(change, queue, task, event, failed, now_us)
        return failed
    if queue.type is QueueType.PULL and retry_delay_us is None:
        delay = 0
    elif retry_delay_us is not None:
        delay = retry_delay_us
    else:
        delay = backoff_us(policy, task.attempt_count)
    delay = max(delay, min_retry_delay_us)
    retried = _attempt_ended(task, attempt)
    retried.stage = Stage.WAITING
    retried.schedule_time_us = now_us + delay
    _promote_once(change, queue, now_us)
    _move(change, queue, task, event, retried, now_us)
    return retried


def _attempt_ended(task: Task, attempt: Attempt) -> Task:
    ended = task.copy()
    ended.last_attempt = attempt
    if attempt.http_status:
        ended.response_count += 1
    ended.lease_token = ""
    ended.lease_expire_us = 0
    return ended


def dead_letter(
    change: Change, queue: Queue, task: Task, dead_letter_queue: Queue, attempt: Attempt, event: Event, now_us: int
) -> Task:
    """The task leaves `queue` (its failing `event` takes it to no task there) and arrives in
    `dead_letter_queue` READY, with its original queue, attempts and last error as attributes.
    It keeps its id unless that is taken there (a task or a live tombstone, this transaction's
    own writes included), in which case it gets a fresh one."""
    txn = change.txn
    task_id = task.task_id
    if txn.task(dead_letter_queue, task_id) is not None or (txn.tombstone(dead_letter_queue, task_id) or 0) > now_us:
        task_id = new_task_id()
    attributes = dict(task.attributes)
    attributes[ORIGINAL_QUEUE_ATTRIBUTE] = queue.name
    attributes[ORIGINAL_TASK_ATTRIBUTE] = task_name(queue.queue_id, task.task_id)
    attributes[ATTEMPT_COUNT_ATTRIBUTE] = str(task.attempt_count)
    attributes[LAST_ERROR_ATTRIBUTE] = _describe(attempt)
    moved = Task(
        task_id=task_id,
        schedule_time_us=now_us,
        create_time_us=max(now_us, dead_letter_queue.purge_time_us + 1),
        payload=task.payload,
        attributes=attributes,
        tag=task.tag,
        http=task.http,
        # Still the same work: its handler in the dead-letter queue joins the creator's trace.
        trace_parent=task.trace_parent,
        trace_state=task.trace_state,
    )
    _move(change, queue, task, event, None, now_us, task_name(dead_letter_queue.queue_id, task_id))
    _promote_once(change, dead_letter_queue, now_us)
    _move(change, dead_letter_queue, None, Event.DEAD_LETTER, moved, now_us, attributes[ORIGINAL_TASK_ATTRIBUTE])
    change.wake(dead_letter_queue.queue_id)
    return moved


def _describe(attempt: Attempt) -> str:
    try:
        name = Code(attempt.error_code).name
    except ValueError:
        name = f"code {attempt.error_code}"
    return f"{name}: {attempt.error_message}" if attempt.error_message else name


# Run, delete, purge, discard ----------------------------------------------------------------


def run(change: Change, queue: Queue, task_id: str, now_us: int) -> Task:
    """SCHEDULED, READY or FAILED → READY now (re-drive). A leased task is refused."""
    task = stored(change, queue, task_id)
    if task is None:
        raise TaskNotFound(task_name(queue.queue_id, task_id))
    if task.stage is Stage.LEASED:
        raise TaskLeased(task_name(queue.queue_id, task_id))
    ready = task.copy()
    ready.stage = Stage.WAITING
    ready.schedule_time_us = now_us
    ready.retain_until_us = 0
    _promote_once(change, queue, now_us)
    _move(change, queue, task, Event.RUN, ready, now_us)
    change.wake(queue.queue_id)
    return ready


def delete(change: Change, queue: Queue, task_id: str, now_us: int) -> None:
    """Any state → deleted (DeleteTask without a lease token)."""
    task = stored(change, queue, task_id)
    if task is None:
        raise TaskNotFound(task_name(queue.queue_id, task_id))
    _move(change, queue, task, Event.DELETE, None, now_us)
    change.wake(queue.queue_id)


def purge(change: Change, queue: Queue, task: Task, now_us: int) -> None:
    """Any state → deleted: a task created at or before the queue's purge time, as read by
    this transaction."""
    assert purged(queue, task)
    _move(change, queue, task, Event.PURGE, None, now_us)


def discard(change: Change, queue: Queue, task_id: str, retain_until_us: int, now_us: int) -> bool:
    """FAILED → deleted: the task's task_ttl ran out. Returns False when the task is no longer
    the FAILED one that was due at `retain_until_us` (re-run since, or gone)."""
    task = stored(change, queue, task_id)
    if task is None or task.stage is not Stage.FAILED or task.retain_until_us != retain_until_us:
        return False
    _move(change, queue, task, Event.DISCARD, None, now_us)
    return True


__all__ = [
    "create", "lease", "lease_due", "held", "renew", "ack", "release", "nack", "expire", "dead_letter", "run", "delete",
    "purge", "discard", "purged", "stored", "task_name",
]
