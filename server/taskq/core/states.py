"""The task state machine, written down once.

    create ──► SCHEDULED ──(schedule time passes)──► READY ◄──────────── run, release
                   │  ▲                                │  ▲                (attempts left)
                   │  └─────── nack / lease expiry ────┼──┼──────────┐
                   │           (push: after backoff)   │  │          │
                   │                               lease/dispatch    │
                   │ run                               ▼  │          │
                   └──────────────────────────────► LEASED ──────────┘
                                                       │ │  renew: stays LEASED, same token
                       ack (delete with lease token) ◄─┘ │
                                                         │ nack / expiry / release with retries
                                                         ▼ exhausted, or a permanent nack
                                        FAILED (kept for task_ttl; run → READY)
                                        or moved to the dead-letter queue (created there READY)

    delete (no token) and purge remove a task in any state; a FAILED task is discarded when
    its task_ttl passes. A deleted task has no state (None below); its caller-chosen name
    stays reserved for tombstone_ttl.

Pull tasks whose lease ends (expiry or release) with attempts left are READY again at once;
push tasks wait for their backoff in SCHEDULED. The table is the mechanism, not a comment:
core/transitions.py moves a task only through `transition`, with the state it actually has,
so a change the table does not allow is a bug caught where it happens.
"""

from __future__ import annotations

import enum

from taskq.core.model import TaskState


class Event(enum.Enum):
    """Something that changes a task's state."""

    CREATE = "create"  # CreateTask, BatchCreateTasks
    LEASE = "lease"  # LeaseTasks, or dispatch on a push stream
    RENEW = "renew"  # ModifyLease with a positive duration, or a stream lease extension
    ACK = "ack"  # DeleteTask with the lease token, or a stream ack
    RELEASE = "release"  # ModifyLease to 0, or the end of the stream holding the lease
    NACK = "nack"  # a stream nack
    EXPIRE = "expire"  # the lease's time ran out
    RUN = "run"  # RunTask
    DELETE = "delete"  # DeleteTask without a token
    PURGE = "purge"  # PurgeQueue: tasks created before the purge time
    DISCARD = "discard"  # a FAILED task's task_ttl ran out
    DEAD_LETTER = "dead_letter"  # arrival in the dead-letter queue of a task whose retries ran out


#: Where each event may take a task from each state. A missing pair is not allowed.
#: `None` stands for "no task": not yet created, or deleted from this queue (acknowledged,
#: removed, purged, discarded, or dead-lettered).
TRANSITIONS: dict[tuple[TaskState | None, Event], frozenset[TaskState | None]] = {
    (None, Event.CREATE): frozenset({TaskState.SCHEDULED, TaskState.READY}),
    (None, Event.DEAD_LETTER): frozenset({TaskState.READY}),
    (TaskState.READY, Event.LEASE): frozenset({TaskState.LEASED}),
    (TaskState.LEASED, Event.RENEW): frozenset({TaskState.LEASED}),
    (TaskState.LEASED, Event.ACK): frozenset({None}),
    (TaskState.LEASED, Event.RELEASE): frozenset({TaskState.READY, TaskState.SCHEDULED, TaskState.FAILED, None}),
    (TaskState.LEASED, Event.NACK): frozenset({TaskState.READY, TaskState.SCHEDULED, TaskState.FAILED, None}),
    (TaskState.LEASED, Event.EXPIRE): frozenset({TaskState.READY, TaskState.SCHEDULED, TaskState.FAILED, None}),
    (TaskState.SCHEDULED, Event.RUN): frozenset({TaskState.READY}),
    (TaskState.READY, Event.RUN): frozenset({TaskState.READY}),
    (TaskState.FAILED, Event.RUN): frozenset({TaskState.READY}),
    (TaskState.SCHEDULED, Event.DELETE): frozenset({None}),
    (TaskState.READY, Event.DELETE): frozenset({None}),
    (TaskState.LEASED, Event.DELETE): frozenset({None}),
    (TaskState.FAILED, Event.DELETE): frozenset({None}),
    (TaskState.SCHEDULED, Event.PURGE): frozenset({None}),
    (TaskState.READY, Event.PURGE): frozenset({None}),
    (TaskState.LEASED, Event.PURGE): frozenset({None}),
    (TaskState.FAILED, Event.PURGE): frozenset({None}),
    (TaskState.FAILED, Event.DISCARD): frozenset({None}),
}


class IllegalTransition(AssertionError):
    """A change the state machine does not allow: a bug in taskq, never the caller's fault."""


def allowed(state: TaskState | None, event: Event) -> bool:
    """Whether `event` may happen to a task in `state` at all."""
    return (state, event) in TRANSITIONS


def transition(state: TaskState | None, event: Event, target: TaskState | None) -> None:
    """Checks that `event` may take a task from `state` to `target` (None: no task)."""
    targets = TRANSITIONS.get((state, event))
    if targets is None or target not in targets:
        source = state.name if state is not None else "no task"
        raise IllegalTransition(f"{event.value} cannot take a task from {source} to {target}")
