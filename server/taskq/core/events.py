"""What committed changes did, told to whoever subscribes: metrics now, an event log later.

Every change of a task goes through core/transitions.py's `_move`, which records one Event per
event of the state machine (core/states.py: create, lease, renew, ack, release, nack, expire,
run, delete, purge, discard, dead-letter); queue administration (core/queues.py) records the
queues' life cycle (QueueEvent: create, update, pause, resume, purge, delete). Events are
recorded in the mutation's Change and handed over by one after-commit hook per change
(store/database.py), in the order they happened. A change that is abandoned (an error, or a
conflict after which the mutation runs again) reports nothing: subscribers hear only of what
was committed, each change once.

Subscribers are called on the event loop, on the path that answers the change's caller, with
the change's list of events: they must be quick and must not block or await (count, or append
to a buffer that a task of their own drains). One that raises is logged; the others still
hear. The list is theirs to read, never to change: every subscriber gets the same one.

On the hot path an event is one small object per task event and one hook per change; when
nobody subscribes the Change is told so (Engine.report_events is None) and records nothing.
On a shared database (PostgreSQL) each server hears of the changes it made itself, not of
other servers' (docs/metrics.md).
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable, Sequence
from typing import NamedTuple

from taskq.core.model import TaskState
from taskq.core.states import Event as TaskEvent
from taskq.store.database import Change

log = logging.getLogger(__name__)


class QueueEvent(enum.Enum):
    """Something that happened to a queue (its tasks' events are core/states.py's Event)."""

    CREATE = "queue_create"  # CreateQueue, or a queue file declaring a new queue
    UPDATE = "queue_update"  # UpdateQueue, or a queue file reconfiguring an existing one
    PAUSE = "queue_pause"
    RESUME = "queue_resume"
    PURGE = "queue_purge"  # the purge recorded; each task it removes is a TaskEvent.PURGE
    PURGE_FINISHED = "queue_purge_finished"  # the purger removed the last task of the purge
    DELETE = "queue_delete"


class Event(NamedTuple):
    """One thing a committed change did. A plain immutable tuple: one is made per task event on
    the hottest paths (create, lease, ack), so it holds values, never the tasks themselves, and
    every subscriber can be handed the same one. (core/transitions.py makes them with
    `tuple.__new__(Event, fields)`, half the cost of the generated constructor.)"""

    kind: TaskEvent | QueueEvent
    #: The queue it happened in (a dead-lettering is two events: the task leaves its queue,
    #: then arrives in the dead-letter queue).
    queue_id: str
    #: The task's id; "" for a QueueEvent.
    task_id: str
    #: The task's state afterwards; None when it is no longer in this queue (acknowledged,
    #: deleted, purged, discarded, dead-lettered) and for a QueueEvent. So an attempt that
    #: ended (NACK, EXPIRE, RELEASE) with retries left is READY or SCHEDULED, FAILED when they
    #: ran out, None when the task went to the dead-letter queue.
    state: TaskState | None
    #: When it happened, by the server's clock (µs since the epoch).
    time_us: int
    #: LEASE: when the attempt became due (the task's schedule time), so `time_us - since_us`
    #: is the wait from ETA to delivery. ACK: when the task was created (the whole life of the
    #: task). 0 for other events.
    since_us: int = 0
    #: The task's attempt count afterwards (LEASE: the number of the attempt it starts).
    attempt: int = 0
    #: A dead-lettering's other end: on the event that takes the task out of its queue, its
    #: name in the dead-letter queue; on DEAD_LETTER, its original name. UPDATE: the queue's
    #: fields that changed, comma-separated. Otherwise "".
    related: str = ""


def record_queue_event(change: Change, kind: QueueEvent, queue_id: str, time_us: int, related: str = "") -> None:
    """Reports a queue's event once `change` is committed (nothing when nobody listens)."""
    if change.report is not None:
        change.record(Event(kind, queue_id, "", None, time_us, related=related))


#: A subscriber: called with the events of one committed change, in order.
Subscriber = Callable[[Sequence[Event]], None]


class Events:
    """The engine's subscribers to committed events (Engine.events)."""

    def __init__(self) -> None:
        self._subscribers: list[Subscriber] = []

    def subscribe(self, subscriber: Subscriber) -> None:
        """From now on, `subscriber` hears the events of every change this server commits."""
        self._subscribers.append(subscriber)

    def unsubscribe(self, subscriber: Subscriber) -> None:
        self._subscribers.remove(subscriber)

    @property
    def wanted(self) -> bool:
        """Whether anyone subscribes (else changes record nothing)."""
        return bool(self._subscribers)

    def publish(self, events: Sequence[Event]) -> None:
        """Tells every subscriber what one committed change did."""
        for subscriber in self._subscribers:
            try:
                subscriber(events)
            except Exception:
                log.exception("an event subscriber raised")


__all__ = ["Event", "Events", "QueueEvent", "Subscriber", "TaskEvent", "record_queue_event"]
