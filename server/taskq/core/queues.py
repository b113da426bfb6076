"""Queue administration: create, configure, pause, resume, purge, delete, and statistics.

Each change of a queue's life cycle is recorded for the event subscribers (core/events.py)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from taskq.core.activity import Activity
from taskq.core.clock import Clock
from taskq.core.errors import InvalidArgument, QueueAlreadyExists, QueueInUse, QueueNotFound
from taskq.core.events import QueueEvent, record_queue_event
from taskq.core.model import Queue, QueueState, QueueType
from taskq.core.purger import Purger
from taskq.core.wakeups import Wakeups
from taskq.store.base import Reader
from taskq.store.database import Change, Database

#: UpdateQueue mask paths -> the Queue attributes they change.
UPDATABLE_PATHS: dict[str, tuple[str, ...]] = {
    "rate_limits": ("max_dispatches_per_second", "max_burst_size", "max_concurrent_dispatches"),
    "rate_limits.max_dispatches_per_second": ("max_dispatches_per_second",),
    "rate_limits.max_burst_size": ("max_burst_size",),
    "rate_limits.max_concurrent_dispatches": ("max_concurrent_dispatches",),
    "retry_config": (
        "retry.max_attempts",
        "retry.max_retry_duration_us",
        "retry.min_backoff_us",
        "retry.max_backoff_us",
        "retry.max_doublings",
    ),
    "retry_config.max_attempts": ("retry.max_attempts",),
    "retry_config.max_retry_duration": ("retry.max_retry_duration_us",),
    "retry_config.min_backoff": ("retry.min_backoff_us",),
    "retry_config.max_backoff": ("retry.max_backoff_us",),
    "retry_config.max_doublings": ("retry.max_doublings",),
    "dispatch_deadline": ("dispatch_deadline_us",),
    "dead_letter_queue": ("dead_letter_queue",),
    "task_ttl": ("task_ttl_us",),
    "tombstone_ttl": ("tombstone_ttl_us",),
    "http_target": ("http_target",),
}


@dataclasses.dataclass(slots=True)
class QueueStats:
    tasks_count: int
    scheduled_count: int
    ready_count: int
    leased_count: int
    failed_count: int
    oldest_schedule_time_us: int | None
    executed_last_minute: int
    leased_last_minute: int
    concurrent_dispatches: int
    effective_dispatch_rate: float


def existing(reader: Reader, queue_id: str) -> Queue:
    queue = reader.queue(queue_id)
    if queue is None:
        raise QueueNotFound(f"queues/{queue_id}")
    return queue


def check_dead_letter(reader: Reader, queue: Queue, field: str, planned: dict[str, Queue] | None = None) -> None:
    """The queue's dead-letter queue must exist, and following dead-letter queues from it must
    not lead back to the queue: a task that fails in every queue of a cycle would move
    round it for ever. `planned` holds queues about to be written, which win over stored ones."""
    if not queue.dead_letter_queue:
        return
    planned = planned or {}

    def find(queue_id: str) -> Queue | None:
        return planned[queue_id] if queue_id in planned else reader.queue(queue_id)

    if queue.dead_letter_queue == queue.queue_id:
        raise InvalidArgument.field(field, "a queue cannot be its own dead-letter queue", "INVALID_DEAD_LETTER_QUEUE")
    chain = [queue.queue_id]
    current = find(queue.dead_letter_queue)
    if current is None:
        raise InvalidArgument.field(
            field, f"queue queues/{queue.dead_letter_queue} does not exist", "DEAD_LETTER_QUEUE_NOT_FOUND"
        )
    while current is not None:
        chain.append(current.queue_id)
        if current.dead_letter_queue == queue.queue_id:
            cycle = " -> ".join(f"queues/{queue_id}" for queue_id in [*chain, queue.queue_id])
            raise InvalidArgument.field(
                field, f"would make a cycle of dead-letter queues: {cycle}", "DEAD_LETTER_QUEUE_CYCLE"
            )
        if not current.dead_letter_queue or current.dead_letter_queue in chain:
            return
        current = find(current.dead_letter_queue)


class Queues:
    def __init__(
        self, db: Database, clock: Clock, wakeups: Wakeups, activity: Activity, purger: Purger
    ) -> None:
        self._db = db
        self._clock = clock
        self._wakeups = wakeups
        self._activity = activity
        self._purger = purger
        #: Told the id of each queue created or reconfigured here, once committed (HTTP push
        #: starts delivering a new target at once).
        self.listeners: list[Callable[[str], None]] = []

    def _tell(self, change: Change, queue_id: str) -> None:
        listeners = list(self.listeners)

        def tell() -> None:
            for listener in listeners:
                listener(queue_id)

        if listeners:
            change.on_commit(tell)

    async def get(self, queue_id: str) -> Queue:
        return await self._db.read(lambda reader: existing(reader, queue_id))

    async def page(self, after: str, page_size: int) -> tuple[list[Queue], str]:
        queues = await self._db.read(lambda reader: reader.queues(after, page_size + 1))
        if len(queues) > page_size:
            return queues[:page_size], queues[page_size - 1].queue_id
        return queues, ""

    async def create(self, queue: Queue) -> Queue:
        def mutation(change: Change) -> Queue:
            txn = change.txn
            if txn.queue(queue.queue_id) is not None:
                raise QueueAlreadyExists(queue.name)
            check_dead_letter(txn, queue, "queue.dead_letter_queue")
            now_us = self._clock.now_us()
            created = dataclasses.replace(queue, state=QueueState.RUNNING, storage_id=0, purging=False)
            created.create_time_us = created.update_time_us = now_us
            created.purge_time_us = 0
            txn.put_queue(created)
            self._tell(change, created.queue_id)
            record_queue_event(change, QueueEvent.CREATE, created.queue_id, now_us)
            return created

        return await self._db.write(mutation)

    async def update(self, queue_id: str, new: Queue, paths: list[str]) -> Queue:
        """Copies the attributes named by `paths` (validated UPDATABLE_PATHS keys) from `new`."""

        def mutation(change: Change) -> Queue:
            current = existing(change.txn, queue_id)
            updated = dataclasses.replace(current, retry=dataclasses.replace(current.retry))
            changed = paths or list(UPDATABLE_PATHS)
            for path in changed:
                for attribute in UPDATABLE_PATHS[path]:
                    if attribute.startswith("retry."):
                        name = attribute.removeprefix("retry.")
                        setattr(updated.retry, name, getattr(new.retry, name))
                    else:
                        setattr(updated, attribute, getattr(new, attribute))
            if (updated.retry.min_backoff_us or 0) > (updated.retry.max_backoff_us or 0):
                raise InvalidArgument.field(
                    "queue.retry_config.min_backoff", "must not exceed max_backoff", "MIN_BACKOFF_ABOVE_MAX"
                )
            if "dead_letter_queue" in changed:
                check_dead_letter(change.txn, updated, "queue.dead_letter_queue")
            if updated.type is QueueType.PULL and updated.http_target is not None:
                raise InvalidArgument.field(
                    "queue.http_target", "pull queues cannot have one: their workers lease tasks",
                    "HTTP_TARGET_ON_PULL_QUEUE",
                )
            updated.update_time_us = self._clock.now_us()
            change.txn.put_queue(updated)
            change.wake(queue_id)
            self._tell(change, queue_id)
            record_queue_event(change, QueueEvent.UPDATE, queue_id, updated.update_time_us, ",".join(changed))
            return updated

        return await self._db.write(mutation)

    async def declare_all(self, declared: list[tuple[Queue, bool | None]]) -> list[Queue]:
        """Creates or reconfigures queues from a queue file: (queue, paused) pairs, in one
        transaction.

        Existing queues keep their tasks, and their state unless the file sets it (`paused`, or
        App Engine's `rate`, where 0 pauses and any other rate runs); their configuration is
        replaced by the file's (their type cannot change). Every reference is checked before
        anything is written, so a bad file changes nothing."""

        def mutation(change: Change) -> list[Queue]:
            txn = change.txn
            planned = {queue.queue_id: queue for queue, _ in declared}
            for queue, _ in declared:
                current = txn.queue(queue.queue_id)
                if current is not None and current.type is not queue.type:
                    raise InvalidArgument.field(
                        f"queues/{queue.queue_id}",
                        f"exists as a {current.type.name.lower()} queue; a queue's type (mode) cannot change",
                        "FIELD_NOT_UPDATABLE",
                    )
                try:
                    check_dead_letter(txn, queue, f"queues/{queue.queue_id}", planned)
                except InvalidArgument as error:
                    if error.reason == "DEAD_LETTER_QUEUE_NOT_FOUND":
                        raise InvalidArgument.field(
                            f"queues/{queue.queue_id}",
                            f"its dead_letter_queue queues/{queue.dead_letter_queue} is neither in the file nor "
                            "an existing queue",
                            "DEAD_LETTER_QUEUE_NOT_FOUND",
                        ) from None
                    raise
            for queue, _ in declared:
                self._tell(change, queue.queue_id)
            return [self._declare(change, queue, paused) for queue, paused in declared]

        return await self._db.write(mutation)

    def _declare(self, change: Change, queue: Queue, paused: bool | None) -> Queue:
        now_us = self._clock.now_us()
        current = change.txn.queue(queue.queue_id)
        if current is None:
            state = QueueState.PAUSED if paused else QueueState.RUNNING
            declared = dataclasses.replace(queue, state=state, storage_id=0, create_time_us=now_us,
                                           update_time_us=now_us, purge_time_us=0, purging=False)
        else:
            # Only a file that says so changes the state: a restart with a file that is silent
            # about it must not resume a queue someone paused through the API.
            if paused is None:
                state = current.state
            else:
                state = QueueState.PAUSED if paused else QueueState.RUNNING
            declared = dataclasses.replace(
                queue, state=state, storage_id=current.storage_id, create_time_us=current.create_time_us,
                update_time_us=now_us, purge_time_us=current.purge_time_us, purging=current.purging,
            )
        change.txn.put_queue(declared)
        change.wake(queue.queue_id)
        record_queue_event(change, QueueEvent.CREATE if current is None else QueueEvent.UPDATE, queue.queue_id, now_us)
        if current is not None and current.state is not declared.state:
            paused = declared.state is QueueState.PAUSED
            record_queue_event(change, QueueEvent.PAUSE if paused else QueueEvent.RESUME, queue.queue_id, now_us)
        return declared

    async def set_state(self, queue_id: str, state: QueueState) -> Queue:
        def mutation(change: Change) -> Queue:
            queue = existing(change.txn, queue_id)
            if queue.state is not state:
                queue.state = state
                queue.update_time_us = self._clock.now_us()
                change.txn.put_queue(queue)
                change.wake(queue_id)
                kind = QueueEvent.PAUSE if state is QueueState.PAUSED else QueueEvent.RESUME
                record_queue_event(change, kind, queue_id, queue.update_time_us)
            return queue

        return await self._db.write(mutation)

    async def delete(self, queue_id: str) -> None:
        """Deletes the queue and everything in it; refused while another queue names it as its
        dead-letter queue (their exhausted tasks would have nowhere to go)."""

        def mutation(change: Change) -> None:
            queue = existing(change.txn, queue_id)
            referrers = [f"queues/{q}" for q in change.txn.dead_letter_referrers(queue_id) if q != queue_id]
            if referrers:
                raise QueueInUse(queue.name, referrers)
            change.txn.delete_queue(queue)
            change.wake(queue_id)
            change.on_commit(lambda: self._activity.forget(queue_id))
            record_queue_event(change, QueueEvent.DELETE, queue_id, self._clock.now_us())

        await self._db.write(mutation)

    async def purge(self, queue_id: str) -> tuple[Queue, int]:
        """Purges every task created before now; returns the queue and how many tasks that was.

        The purge takes effect when it is recorded: from then on no task created before it is
        delivered, listed or found. The purger deletes them in the background, and this call
        waits for it; a caller that goes away (or a restart) leaves the purge to finish anyway."""

        def record(change: Change) -> tuple[Queue, int]:
            queue = existing(change.txn, queue_id)
            count = change.txn.counters(queue).total
            queue.purge_time_us = queue.update_time_us = self._clock.now_us()
            queue.purging = True
            change.txn.put_queue(queue)
            change.wake(queue_id)
            record_queue_event(change, QueueEvent.PURGE, queue_id, queue.purge_time_us)
            return queue, count

        queue, count = await self._db.write(record)
        self._purger.alarm.poke()
        await self._purger.finished(queue)
        try:
            return await self.get(queue_id), count
        except QueueNotFound:  # deleted meanwhile
            return queue, count

    async def stats(self, queue_id: str) -> QueueStats:
        def read(reader: Reader) -> QueueStats:
            queue = existing(reader, queue_id)
            counters = reader.counters(queue)
            oldest = reader.oldest_waiting(queue)
            leased_last_minute = self._activity.leased_last_minute(queue_id)
            return QueueStats(
                tasks_count=counters.total,
                scheduled_count=counters.scheduled,
                ready_count=counters.ready,
                leased_count=counters.leased,
                failed_count=counters.failed,
                oldest_schedule_time_us=oldest[0] if oldest else None,
                executed_last_minute=self._activity.executed_last_minute(queue_id),
                leased_last_minute=leased_last_minute,
                concurrent_dispatches=counters.leased if queue.type is QueueType.PUSH else 0,
                effective_dispatch_rate=leased_last_minute / 60,
            )

        return await self._db.read(read)
