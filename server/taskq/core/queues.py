"""Queue administration: create, configure, pause, resume, purge, delete, and statistics."""

from __future__ import annotations

import dataclasses

from taskq.core.activity import Activity
from taskq.core.clock import Clock
from taskq.core.errors import InvalidArgument, QueueAlreadyExists, QueueNotFound
from taskq.core.model import Queue, QueueState, QueueType
from taskq.core.states import Event, transition
from taskq.core.wakeups import Wakeups
from taskq.store.base import Store
from taskq.store.commit import CommitLoop, Committed

#: Tasks deleted per durable commit while purging.
PURGE_CHUNK = 1000

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


class Queues:
    def __init__(self, store: Store, commits: CommitLoop, clock: Clock, wakeups: Wakeups, activity: Activity) -> None:
        self._store = store
        self._commits = commits
        self._clock = clock
        self._wakeups = wakeups
        self._activity = activity

    def get(self, queue_id: str) -> Queue:
        queue = self._store.queue(queue_id)
        if queue is None:
            raise QueueNotFound(f"queues/{queue_id}")
        return queue

    def list(self, after: str, page_size: int) -> tuple[list[Queue], str]:
        queues = self._store.queues(after, page_size + 1)
        if len(queues) > page_size:
            return queues[:page_size], queues[page_size - 1].queue_id
        return queues, ""

    def _check_dead_letter(self, queue: Queue, field: str) -> None:
        if not queue.dead_letter_queue:
            return
        if queue.dead_letter_queue == queue.queue_id:
            raise InvalidArgument.field(field, "a queue cannot be its own dead-letter queue", "INVALID_DEAD_LETTER_QUEUE")
        if self._store.queue(queue.dead_letter_queue) is None:
            raise InvalidArgument.field(
                field, f"queue queues/{queue.dead_letter_queue} does not exist", "DEAD_LETTER_QUEUE_NOT_FOUND"
            )

    async def create(self, queue: Queue) -> Queue:
        def mutation(committed: Committed) -> Queue:
            if self._store.queue(queue.queue_id) is not None:
                raise QueueAlreadyExists(queue.name)
            self._check_dead_letter(queue, "queue.dead_letter_queue")
            now_us = self._clock.now_us()
            created = dataclasses.replace(queue, state=QueueState.RUNNING, storage_id=0)
            created.create_time_us = created.update_time_us = now_us
            created.purge_time_us = 0
            committed.txn.put_queue(created)
            return created

        return await self._commits.run(mutation)

    async def update(self, queue_id: str, new: Queue, paths: list[str]) -> Queue:
        """Copies the attributes named by `paths` (validated UPDATABLE_PATHS keys) from `new`."""

        def mutation(committed: Committed) -> Queue:
            current = self.get(queue_id)
            updated = dataclasses.replace(current, retry=dataclasses.replace(current.retry))
            for path in paths or UPDATABLE_PATHS:
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
            self._check_dead_letter(updated, "queue.dead_letter_queue")
            updated.update_time_us = self._clock.now_us()
            committed.txn.put_queue(updated)
            committed.wake(queue_id)
            return updated

        return await self._commits.run(mutation)

    async def declare_all(self, declared: list[tuple[Queue, bool | None]]) -> list[Queue]:
        """Creates or reconfigures queues from a queue file: (queue, paused) pairs.

        Existing queues keep their tasks, and their state unless the file sets it (`paused`, or
        App Engine's `rate`, where 0 pauses and any other rate runs); their
        configuration is replaced by the file's (their type cannot change). Every reference is
        checked before anything is written, so a bad file changes nothing. A queue whose
        dead-letter queue is declared later in the same file gets it in a second pass."""
        names = {queue.queue_id for queue, _ in declared}
        for queue, _ in declared:
            current = self._store.queue(queue.queue_id)
            if current is not None and current.type is not queue.type:
                raise InvalidArgument.field(
                    f"queues/{queue.queue_id}",
                    f"exists as a {current.type.name.lower()} queue; a queue's type (mode) cannot change",
                    "FIELD_NOT_UPDATABLE",
                )
            dead_letter = queue.dead_letter_queue
            if dead_letter and dead_letter not in names and self._store.queue(dead_letter) is None:
                raise InvalidArgument.field(
                    f"queues/{queue.queue_id}",
                    f"its dead_letter_queue queues/{dead_letter} is neither in the file nor an existing queue",
                    "DEAD_LETTER_QUEUE_NOT_FOUND",
                )
        results = []
        deferred = []
        for queue, paused in declared:
            first = dataclasses.replace(queue, retry=dataclasses.replace(queue.retry))
            if first.dead_letter_queue and self._store.queue(first.dead_letter_queue) is None:
                first.dead_letter_queue = ""
                deferred.append(queue)
            results.append(await self._commits.run(lambda committed, q=first, p=paused: self._declare(committed, q, p)))
        for queue in deferred:
            await self.update(queue.queue_id, queue, ["dead_letter_queue"])
        return results

    def _declare(self, committed: Committed, queue: Queue, paused: bool | None) -> Queue:
        now_us = self._clock.now_us()
        current = self._store.queue(queue.queue_id)
        if current is None:
            state = QueueState.PAUSED if paused else QueueState.RUNNING
            declared = dataclasses.replace(queue, state=state, storage_id=0, create_time_us=now_us,
                                           update_time_us=now_us, purge_time_us=0)
        else:
            # Only a file that says so changes the state: a restart with a file that is silent
            # about it must not resume a queue someone paused through the API.
            if paused is None:
                state = current.state
            else:
                state = QueueState.PAUSED if paused else QueueState.RUNNING
            declared = dataclasses.replace(
                queue, state=state, storage_id=current.storage_id, create_time_us=current.create_time_us,
                update_time_us=now_us, purge_time_us=current.purge_time_us,
            )
        committed.txn.put_queue(declared)
        committed.wake(queue.queue_id)
        return declared

    async def set_state(self, queue_id: str, state: QueueState) -> Queue:
        def mutation(committed: Committed) -> Queue:
            queue = self.get(queue_id)
            if queue.state is not state:
                queue.state = state
                queue.update_time_us = self._clock.now_us()
                committed.txn.put_queue(queue)
                committed.wake(queue_id)
            return queue

        return await self._commits.run(mutation)

    async def delete(self, queue_id: str) -> None:
        def mutation(committed: Committed) -> None:
            queue = self.get(queue_id)
            committed.txn.delete_queue(queue)
            committed.wake(queue_id)
            committed.on_commit(lambda: self._activity.forget(queue_id))

        await self._commits.run(mutation)

    async def purge(self, queue_id: str) -> tuple[Queue, int]:
        """Deletes every task created before now, in durable chunks; returns the count."""

        def start(committed: Committed) -> Queue:
            queue = self.get(queue_id)
            queue.purge_time_us = queue.update_time_us = self._clock.now_us()
            committed.txn.put_queue(queue)
            return queue

        queue = await self._commits.run(start)
        purge_time_us = queue.purge_time_us
        storage_id = queue.storage_id

        def chunk(committed: Committed, after: str) -> tuple[int, str]:
            current = self._store.queue(queue_id)
            if current is None or current.storage_id != storage_id:
                return 0, ""  # deleted (or deleted and re-created) meanwhile: nothing left to purge
            now_us = self._clock.now_us()
            tasks = self._store.tasks(current, after, PURGE_CHUNK)
            deleted = 0
            for task in tasks:
                if task.create_time_us > purge_time_us:
                    continue  # created after the purge began (see Tasks.create)
                transition(task.state(now_us), Event.DELETE, None)
                committed.txn.delete_task(current, task)
                if task.named and current.tombstone_ttl_us > 0:
                    committed.txn.put_tombstone(current, task.task_id, now_us + current.tombstone_ttl_us)
                deleted += 1
            committed.wake(queue_id)
            return deleted, (tasks[-1].task_id if len(tasks) == PURGE_CHUNK else "")

        total = 0
        after = ""
        while True:
            deleted, after = await self._commits.run(lambda committed, after=after: chunk(committed, after))
            total += deleted
            if not after:
                break
        return self._store.queue(queue_id) or queue, total

    def stats(self, queue_id: str) -> QueueStats:
        queue = self.get(queue_id)
        counters = self._store.counters(queue)
        oldest = self._store.oldest_waiting(queue)
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

