"""Task operations: create, inspect, delete or acknowledge, lease, modify leases, run.

Each write is a mutation run by the commit loop (store/commit.py): it reads the store, checks
the state machine, records its writes, and its caller is answered once they are durable.
Field formats were checked by the API layer; what needs the store or the clock is checked here.
"""

from __future__ import annotations

import dataclasses

from taskq.core import attempts, leases
from taskq.core.activity import Activity
from taskq.core.alarm import Alarm
from taskq.core.clock import Clock
from taskq.core.errors import (
    Code,
    InvalidArgument,
    QueueNotFound,
    QueuePaused,
    TaskAlreadyExists,
    TaskLeased,
    TaskNotFound,
    TaskqError,
    TaskTombstoned,
    WrongQueueType,
)
from taskq.core.filter import TaskFilter
from taskq.core.identifiers import new_task_id
from taskq.core.limits import LIST_SCAN_BUDGET, ServerLimits
from taskq.core.model import (
    Queue,
    QueueState,
    QueueType,
    RequestRecord,
    RetryPolicy,
    Stage,
    Task,
    TaskState,
    content_size,
)
from taskq.core.states import Event, transition
from taskq.core.timefmt import format_us
from taskq.core.wakeups import Wakeups
from taskq.store.base import Store
from taskq.store.commit import CommitLoop, Committed


@dataclasses.dataclass(slots=True)
class NewTask:
    """A create request whose fields have the right form (checked by the API layer)."""

    task_id: str | None
    payload: bytes = b""
    attributes: dict[str, str] = dataclasses.field(default_factory=dict)
    tag: str = ""
    schedule_time_us: int | None = None
    retry: RetryPolicy | None = None
    dispatch_deadline_us: int = 0
    request_id: str = ""


@dataclasses.dataclass(slots=True)
class DeleteRequest:
    task_id: str
    lease_token: str = ""


def task_name(queue_id: str, task_id: str) -> str:
    return f"queues/{queue_id}/tasks/{task_id}"


class Tasks:
    def __init__(
        self,
        store: Store,
        commits: CommitLoop,
        clock: Clock,
        limits: ServerLimits,
        wakeups: Wakeups,
        activity: Activity,
        reaper_alarm: Alarm,
        janitor_alarm: Alarm,
    ) -> None:
        self._store = store
        self._commits = commits
        self._clock = clock
        self._limits = limits
        self._wakeups = wakeups
        self._activity = activity
        self._reaper_alarm = reaper_alarm
        self._janitor_alarm = janitor_alarm

    def _queue(self, queue_id: str) -> Queue:
        queue = self._store.queue(queue_id)
        if queue is None:
            raise QueueNotFound(f"queues/{queue_id}")
        return queue

    # Create -------------------------------------------------------------------------------

    async def create(self, queue_id: str, items: list[NewTask | TaskqError]) -> list[Task | TaskqError]:
        """Creates tasks in one durable commit; one result (task or error) per item."""

        def mutation(committed: Committed) -> list[Task | TaskqError]:
            queue = self._queue(queue_id)
            now_us = self._clock.now_us()
            # Count tasks due by now as ready first, so tasks created for now count as ready.
            committed.txn.promote(queue, now_us)
            names: set[str] = set()
            requests: dict[str, Task] = {}
            results: list[Task | TaskqError] = []
            earliest_future = None
            for item in items:
                if isinstance(item, TaskqError):
                    results.append(item)
                    continue
                try:
                    task = self._create_one(committed, queue, item, now_us, names, requests)
                except TaskqError as error:
                    results.append(error)
                    continue
                results.append(task)
                if task.schedule_time_us > now_us and (
                    earliest_future is None or task.schedule_time_us < earliest_future
                ):
                    earliest_future = task.schedule_time_us
            committed.wake(queue.queue_id)
            if earliest_future is not None:
                committed.on_commit(lambda: self._janitor_alarm.poke(earliest_future))
            return results

        return await self._commits.run(mutation)

    def _create_one(
        self,
        committed: Committed,
        queue: Queue,
        item: NewTask,
        now_us: int,
        names: set[str],
        requests: dict[str, Task],
    ) -> Task:
        store = self._store
        if item.request_id:
            if item.request_id in requests:
                return requests[item.request_id]
            record = store.request(queue, item.request_id, now_us)
            if record is not None:
                existing = store.task(queue, record.task_id)
                if existing is not None:
                    return existing
                return Task(
                    task_id=record.task_id,
                    schedule_time_us=record.schedule_time_us,
                    create_time_us=record.create_time_us,
                    tag=record.tag,
                    finished=True,
                )
        if item.task_id is not None:
            task_id = item.task_id
            name = task_name(queue.queue_id, task_id)
            if task_id in names or store.task(queue, task_id) is not None:
                raise TaskAlreadyExists(name)
            reserved_until = store.tombstone(queue, task_id)
            if reserved_until is not None and reserved_until > now_us:
                raise TaskTombstoned(name, format_us(reserved_until))
        else:
            task_id = new_task_id()
        schedule_us = now_us if item.schedule_time_us is None else max(item.schedule_time_us, now_us)
        if schedule_us - now_us > self._limits.max_schedule_ahead_us:
            raise InvalidArgument.field(
                "task.schedule_time",
                f"is more than {self._limits.max_schedule_ahead_us // 86_400_000_000} days ahead",
                "SCHEDULE_TIME_TOO_FAR",
            )
        task = Task(
            task_id=task_id,
            schedule_time_us=schedule_us,
            # A purge removes tasks created at or before its purge time; a task created after
            # it, even within the same microsecond, must be kept.
            create_time_us=max(now_us, queue.purge_time_us + 1),
            payload=item.payload,
            attributes=item.attributes,
            tag=item.tag,
            retry=item.retry,
            dispatch_deadline_us=item.dispatch_deadline_us,
            named=item.task_id is not None,
        )
        committed.txn.put_task(queue, task, None)
        names.add(task_id)
        if item.request_id:
            requests[item.request_id] = task
            record = RequestRecord(task_id, task.tag, task.schedule_time_us, task.create_time_us)
            committed.txn.put_request(queue, item.request_id, record)
        return task

    # Inspect ------------------------------------------------------------------------------

    def get(self, queue_id: str, task_id: str) -> Task:
        task = self._store.task(self._queue(queue_id), task_id)
        if task is None:
            raise TaskNotFound(task_name(queue_id, task_id))
        return task

    def list(self, queue_id: str, task_filter: TaskFilter, after: str, page_size: int) -> tuple[list[Task], str]:
        """A page of tasks in id order, and the id to resume after ("" when done).

        At most LIST_SCAN_BUDGET stored tasks are examined, so a selective filter can return
        a short page with a resume point."""
        queue = self._queue(queue_id)
        now_us = self._clock.now_us()
        found: list[Task] = []
        examined = 0
        cursor = after
        while examined < LIST_SCAN_BUDGET:
            wanted = min(1000, LIST_SCAN_BUDGET - examined)
            chunk = self._store.tasks(queue, cursor, wanted)
            for task in chunk:
                examined += 1
                cursor = task.task_id
                if task_filter.matches(task.state(now_us), task.tag):
                    found.append(task)
                    if len(found) == page_size:
                        return found, cursor
            if len(chunk) < wanted:
                return found, ""
        return found, cursor

    # Delete and acknowledge ---------------------------------------------------------------

    async def delete(self, queue_id: str, requests: list[DeleteRequest | TaskqError]) -> list[TaskqError | None]:
        """Deletes (no token) or acknowledges (token) tasks in one durable commit."""

        def mutation(committed: Committed) -> list[TaskqError | None]:
            queue = self._queue(queue_id)
            now_us = self._clock.now_us()
            results: list[TaskqError | None] = []
            done: set[str] = set()
            acked = 0
            for request in requests:
                if isinstance(request, TaskqError):
                    results.append(request)
                    continue
                try:
                    if request.task_id in done:
                        raise (
                            leases.check(None, task_name(queue_id, request.task_id), request.lease_token, now_us)
                            if request.lease_token
                            else TaskNotFound(task_name(queue_id, request.task_id))
                        )
                    acked += self._delete_one(committed, queue, request, now_us)
                    done.add(request.task_id)
                    results.append(None)
                except TaskqError as error:
                    results.append(error)
            if acked:
                committed.on_commit(lambda: self._activity.executed(queue_id, acked))
            committed.wake(queue_id)
            return results

        return await self._commits.run(mutation)

    def _delete_one(self, committed: Committed, queue: Queue, request: DeleteRequest, now_us: int) -> int:
        """Deletes one task; returns 1 if it was an acknowledgement."""
        name = task_name(queue.queue_id, request.task_id)
        task = self._store.task(queue, request.task_id)
        if request.lease_token:
            task = leases.check(task, name, request.lease_token, now_us)
            transition(TaskState.LEASED, Event.ACK, None)
        else:
            if task is None:
                raise TaskNotFound(name)
            transition(task.state(now_us), Event.DELETE, None)
        committed.txn.delete_task(queue, task)
        if task.named and queue.tombstone_ttl_us > 0:
            committed.txn.put_tombstone(queue, task.task_id, now_us + queue.tombstone_ttl_us)
        return 1 if request.lease_token else 0

    # Leases -------------------------------------------------------------------------------

    async def lease(
        self,
        queue_id: str,
        lease_duration_us: int,
        max_tasks: int,
        tag: str | None,
        oldest_tag: bool,
        wait_us: int,
    ) -> list[Task]:
        """Leases up to `max_tasks` ready tasks of a pull queue, waiting up to `wait_us` for one."""
        deadline_us = self._clock.now_us() + wait_us
        while True:
            changed = self._wakeups.watch(queue_id)
            leased = await self._commits.run(
                lambda committed: self._lease_now(committed, queue_id, lease_duration_us, max_tasks, tag, oldest_tag)
            )
            now_us = self._clock.now_us()
            if leased or now_us >= deadline_us or self._wakeups.closed:
                return leased
            queue = self._queue(queue_id)
            if tag is None:
                oldest = self._store.oldest_waiting(queue)
                next_due_us = oldest[0] if oldest is not None else None
            else:
                next_due_us = self._oldest_with_tag(queue, tag)
            wake_us = deadline_us
            if next_due_us is not None:
                # A task due already became due while the lease was being committed: try again.
                wake_us = min(wake_us, max(next_due_us, now_us))
            await self._wakeups.wait(changed, wake_us)

    def _oldest_with_tag(self, queue: Queue, tag: str) -> int | None:
        for task in self._store.waiting(queue, 2**63 - 1, tag):
            return task.schedule_time_us
        return None

    def _lease_now(
        self,
        committed: Committed,
        queue_id: str,
        lease_duration_us: int,
        max_tasks: int,
        tag: str | None,
        oldest_tag: bool,
    ) -> list[Task]:
        queue = self._queue(queue_id)
        if queue.type is not QueueType.PULL:
            raise WrongQueueType(queue.name, "push", "LeaseTasks")
        if queue.state is QueueState.PAUSED:
            raise QueuePaused(queue.name)
        now_us = self._clock.now_us()
        if oldest_tag:
            oldest = self._store.oldest_waiting(queue)
            if oldest is None or oldest[0] > now_us:
                return []
            tag = oldest[1]
        budget = self._limits.response_budget_bytes
        leased: list[Task] = []
        for task in self._store.waiting(queue, now_us, tag):
            size = content_size(task.payload, task.attributes, task.tag)
            if leased and size > budget:
                break
            budget -= size
            granted = leases.grant(task, now_us, lease_duration_us)
            committed.txn.put_task(queue, granted, task)
            leased.append(granted)
            if len(leased) >= max_tasks:
                break
        if leased:
            count = len(leased)
            expiry = now_us + lease_duration_us
            committed.on_commit(lambda: self._activity.leased(queue_id, count))
            committed.on_commit(lambda: self._reaper_alarm.poke(expiry))
        return leased

    async def modify_lease(self, queue_id: str, task_id: str, lease_token: str, lease_duration_us: int) -> Task:
        """Renews the lease for `lease_duration_us` from now, or releases it when that is 0."""

        def mutation(committed: Committed) -> Task:
            queue = self._queue(queue_id)
            now_us = self._clock.now_us()
            name = task_name(queue_id, task_id)
            task = leases.check(self._store.task(queue, task_id), name, lease_token, now_us)
            if lease_duration_us == 0:
                after = attempts.fail(
                    committed, queue, task, now_us, event=Event.RELEASE, code=Code.CANCELLED,
                    message="lease released",
                )
                if after is None:
                    failed = task.copy()
                    failed.stage = Stage.FAILED
                    failed.lease_token = ""
                    return failed
                return after
            renewed = leases.renew(task, now_us, lease_duration_us)
            committed.txn.put_task(queue, renewed, task)
            expiry = renewed.lease_expire_us
            committed.on_commit(lambda: self._reaper_alarm.poke(expiry))
            return renewed

        return await self._commits.run(mutation)

    async def run(self, queue_id: str, task_id: str) -> Task:
        """Makes a scheduled, ready or failed task ready now."""

        def mutation(committed: Committed) -> Task:
            queue = self._queue(queue_id)
            now_us = self._clock.now_us()
            task = self._store.task(queue, task_id)
            if task is None:
                raise TaskNotFound(task_name(queue_id, task_id))
            state = task.state(now_us)
            if state is TaskState.LEASED:
                raise TaskLeased(task_name(queue_id, task_id))
            transition(state, Event.RUN, TaskState.READY)
            ready = task.copy()
            ready.stage = Stage.WAITING
            ready.schedule_time_us = now_us
            ready.retain_until_us = 0
            committed.txn.promote(queue, now_us)
            committed.txn.put_task(queue, ready, task)
            committed.wake(queue_id)
            return ready

        return await self._commits.run(mutation)

