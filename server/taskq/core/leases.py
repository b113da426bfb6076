"""Leases: granting, renewing and checking them, with tokens that fence stale holders.

A lease is the only way a task reaches a worker, pull (LeaseTasks) or push (a stream
dispatch, whose lease lasts the dispatch deadline). Each grant mints a new random token;
renewing keeps it; anything that ends the lease makes it stale. A lease whose time has run
out is lost even before the reaper has processed it.
"""

from __future__ import annotations

import secrets

from taskq.core.errors import LeaseLost
from taskq.core.identifiers import new_lease_token
from taskq.core.model import Attempt, Stage, Task, TaskState
from taskq.core.states import Event, transition


def grant(task: Task, now_us: int, duration_us: int) -> Task:
    """The task leased from now for `duration_us`: one more attempt, a fresh token."""
    transition(task.state(now_us), Event.LEASE, TaskState.LEASED)
    leased = task.copy()
    leased.stage = Stage.LEASED
    leased.attempt_count += 1
    if not leased.first_attempt_time_us:
        leased.first_attempt_time_us = now_us
    leased.last_attempt = Attempt(dispatch_time_us=now_us)
    leased.lease_token = new_lease_token()
    leased.lease_expire_us = now_us + duration_us
    return leased


def renew(task: Task, now_us: int, duration_us: int) -> Task:
    """The same lease, now ending `duration_us` from now."""
    transition(TaskState.LEASED, Event.RENEW, TaskState.LEASED)
    renewed = task.copy()
    renewed.lease_expire_us = now_us + duration_us
    return renewed


def check(task: Task | None, task_name: str, token: str, now_us: int) -> Task:
    """Returns the task if `token` names its current, unexpired lease; raises LeaseLost if not."""
    if task is None:
        raise LeaseLost(task_name, "the task no longer exists (acknowledged, deleted or purged)")
    if task.stage is not Stage.LEASED:
        raise LeaseLost(task_name, "the task is not leased (its lease expired or was released)")
    if not secrets.compare_digest(task.lease_token, token):
        raise LeaseLost(task_name, "the token does not name the task's current lease")
    if task.lease_expire_us <= now_us:
        raise LeaseLost(task_name, "the lease expired")
    return task
