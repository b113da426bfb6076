"""Task operations: create, inspect, delete or acknowledge, lease, modify leases, run.

Each write is a mutation run by the database (store/database.py) that finds the queue and
hands each task to core/transitions.py; its caller is answered once the writes are durable.
Field formats were checked by the API layer; what needs the store or the clock is checked here.
"""

from __future__ import annotations

import dataclasses

from taskq.core import http_push, transitions
from taskq.core.activity import Activity
from taskq.core.alarm import Alarm
from taskq.core.clock import Clock
from taskq.core.errors import (
    InvalidArgument,
    LeaseLost,
    QueueNotFound,
    QueuePaused,
    TaskNotFound,
    TaskqError,
    WrongQueueType,
)
from taskq.core.filter import TaskFilter
from taskq.core.identifiers import new_task_id
from taskq.core.limits import LIST_SCAN_BUDGET, ServerLimits, task_message_bound
from taskq.core.model import (
    US_PER_SECOND,
    HttpRequest,
    Queue,
    QueueState,
    QueueType,
    RequestRecord,
    RetryPolicy,
    Stage,
    Task,
)
from taskq.core.transitions import task_name
from taskq.core.wakeups import Wakeups
from taskq.store.base import Reader
from taskq.store.database import Change, Database


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
    http: HttpRequest | None = None
    #: The W3C trace context of the creating call (api/trace_context.py); "" without one.
    trace_parent: str = ""
    trace_state: str = ""


@dataclasses.dataclass(slots=True)
class DeleteRequest:
    task_id: str
    lease_token: str = ""


def existing_queue(reader: Reader, queue_id: str) -> Queue:
    queue = reader.queue(queue_id)
    if queue is None:
        raise QueueNotFound(f"queues/{queue_id}")
    return queue


class Tasks:
    def __init__(
        self,
        db: Database,
        clock: Clock,
        limits: ServerLimits,
        wakeups: Wakeups,
        activity: Activity,
        reaper_alarm: Alarm,
    ) -> None:
        self._db = db
        self._clock = clock
        self._limits = limits
        self._wakeups = wakeups
        self._activity = activity
        self._reaper_alarm = reaper_alarm

    # Create -------------------------------------------------------------------------------

    async def create(self, queue_id: str, items: list[NewTask | TaskqError]) -> list[Task | TaskqError]:
        """Creates tasks in one durable commit; one result (task or error) per item."""

        def mutation(change: Change) -> list[Task | TaskqError]:
            queue = existing_queue(change.txn, queue_id)
            now_us = self._clock.now_us()
            new = [item for item in items if isinstance(item, NewTask)]
            change.txn.prefetch(
                queue, [item.task_id for item in new if item.task_id is not None], tombstones=True,
                request_ids=[item.request_id for item in new if item.request_id],
            )
            requests: dict[str, Task] = {}
            results: list[Task | TaskqError] = []
            for item in items:
                if isinstance(item, TaskqError):
                    results.append(item)
                    continue
                try:
                    results.append(self._create_one(change, queue, item, now_us, requests))
                except TaskqError as error:
                    results.append(error)
            if requests:
                change.housekeeping_due(transitions.forget_after_us(now_us))
            return results

        return await self._db.write(mutation, grows=True)

    def _create_one(
        self, change: Change, queue: Queue, item: NewTask, now_us: int, requests: dict[str, Task]
    ) -> Task:
        txn = change.txn
        if item.request_id:
            if item.request_id in requests:
                return requests[item.request_id]
            record = txn.request(queue, item.request_id, now_us)
            if record is not None:
                existing = transitions.stored(change, queue, record.task_id)
                if existing is not None:
                    return existing
                return Task(
                    task_id=record.task_id,
                    schedule_time_us=record.schedule_time_us,
                    create_time_us=record.create_time_us,
                    tag=record.tag,
                    finished=True,
                )
        schedule_us = now_us if item.schedule_time_us is None else max(item.schedule_time_us, now_us)
        if schedule_us - now_us > self._limits.max_schedule_ahead_us:
            raise InvalidArgument.field(
                "task.schedule_time",
                f"is more than {self._limits.max_schedule_ahead_us // 86_400_000_000} days ahead",
                "SCHEDULE_TIME_TOO_FAR",
            )
        task = Task(
            task_id=item.task_id if item.task_id is not None else new_task_id(),
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
            http=item.http,
            trace_parent=item.trace_parent,
            trace_state=item.trace_state,
        )
        if queue.http_target is not None or task.http is not None:
            http_push.check_task_for_queue(queue, task, "task")
        transitions.create(change, queue, task, now_us)
        if item.request_id:
            requests[item.request_id] = task
            record = RequestRecord(task.task_id, task.tag, task.schedule_time_us, task.create_time_us)
            txn.put_request(queue, item.request_id, record)
        return task

    # Inspect ------------------------------------------------------------------------------

    async def get(self, queue_id: str, task_id: str) -> Task:
        def read(reader: Reader) -> Task:
            queue = existing_queue(reader, queue_id)
            task = reader.task(queue, task_id)
            if task is None or transitions.purged(queue, task):
                raise TaskNotFound(task_name(queue_id, task_id))
            return task

        return await self._db.read(read)

    async def page(
        self, queue_id: str, task_filter: TaskFilter, after: str, page_size: int, *, payloads: bool
    ) -> tuple[list[Task], str]:
        """A page of tasks in id order, and the id to resume after ("" when done).

        At most LIST_SCAN_BUDGET stored tasks are examined, so a selective filter can return
        a short page with a resume point; and the page stops where the response would
        outgrow the message-size limit."""

        def read(reader: Reader) -> tuple[list[Task], str]:
            queue = existing_queue(reader, queue_id)
            now_us = self._clock.now_us()
            found: list[Task] = []
            budget = self._limits.response_budget_bytes
            cursor = after
            examined = 0
            for task in reader.tasks(queue, after, payloads=payloads):
                if examined >= LIST_SCAN_BUDGET:
                    return found, cursor
                examined += 1
                state = task.state(now_us)
                if not transitions.purged(queue, task) and state is not None and task_filter.matches(state, task.tag):
                    size = task_message_bound(queue_id, task, payload=payloads)
                    if found and size > budget:
                        return found, cursor
                    budget -= size
                    found.append(task)
                cursor = task.task_id
                if len(found) == page_size:
                    return found, cursor
            return found, ""

        return await self._db.read(read)

    # Delete and acknowledge ---------------------------------------------------------------

    async def delete(self, queue_id: str, requests: list[DeleteRequest | TaskqError]) -> list[TaskqError | None]:
        """Deletes (no token) or acknowledges (token) tasks in one durable commit."""

        def mutation(change: Change) -> list[TaskqError | None]:
            queue = existing_queue(change.txn, queue_id)
            now_us = self._clock.now_us()
            change.txn.prefetch(queue, [r.task_id for r in requests if isinstance(r, DeleteRequest)])
            results: list[TaskqError | None] = []
            done: set[str] = set()
            acked = 0
            for request in requests:
                if isinstance(request, TaskqError):
                    results.append(request)
                    continue
                try:
                    name = task_name(queue_id, request.task_id)
                    if request.task_id in done:
                        raise (
                            LeaseLost(name, "an earlier item of the same request already deleted the task")
                            if request.lease_token
                            else TaskNotFound(name)
                        )
                    if request.lease_token:
                        transitions.ack(change, queue, request.task_id, request.lease_token, now_us)
                        acked += 1
                    else:
                        transitions.delete(change, queue, request.task_id, now_us)
                    done.add(request.task_id)
                    results.append(None)
                except TaskqError as error:
                    results.append(error)
            if acked:
                change.on_commit(lambda: self._activity.executed(queue_id, acked))
            return results

        return await self._db.write(mutation)

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
            try:
                leased = await self._db.write(
                    lambda change: self._lease_now(change, queue_id, lease_duration_us, max_tasks, tag, oldest_tag)
                )
                now_us = self._clock.now_us()
                if leased or now_us >= deadline_us or self._wakeups.closed:
                    return leased
                next_due_us = await self._db.read(lambda reader: self._next_due(reader, queue_id, tag))
                wake_us = deadline_us
                if next_due_us is not None:
                    # A task due already became due while the lease was being committed: try again.
                    wake_us = min(wake_us, max(next_due_us, now_us))
                if self._db.poll_interval_s is not None:  # a signal from another server may be missed
                    wake_us = min(wake_us, now_us + int(self._db.poll_interval_s * US_PER_SECOND))
                await self._wakeups.wait(changed, wake_us)
            finally:
                self._wakeups.unwatch(queue_id, changed)

    @staticmethod
    def _next_due(reader: Reader, queue_id: str, tag: str | None) -> int | None:
        queue = existing_queue(reader, queue_id)
        if tag is None:
            oldest = reader.oldest_waiting(queue)
            return oldest[0] if oldest is not None else None
        for task in reader.waiting(queue, 2**63 - 1, tag, 1):
            return task.schedule_time_us
        return None

    def _lease_now(
        self,
        change: Change,
        queue_id: str,
        lease_duration_us: int,
        max_tasks: int,
        tag: str | None,
        oldest_tag: bool,
    ) -> list[Task]:
        txn = change.txn
        queue = existing_queue(txn, queue_id)
        if queue.type is not QueueType.PULL:
            raise WrongQueueType(queue.name, "push", "LeaseTasks")
        if queue.state is QueueState.PAUSED:
            raise QueuePaused(queue.name)
        now_us = self._clock.now_us()
        if oldest_tag:
            oldest = txn.oldest_waiting(queue)
            if oldest is None or oldest[0] > now_us:
                return []
            tag = oldest[1]
        leased = transitions.lease_due(
            change, queue, now_us, max_tasks, self._limits.response_budget_bytes, lambda task: lease_duration_us, tag
        )
        if leased:
            count = len(leased)
            expiry = now_us + lease_duration_us
            change.on_commit(lambda: self._activity.leased(queue_id, count))
            change.on_commit(lambda: self._reaper_alarm.poke(expiry))
        return leased

    async def modify_lease(self, queue_id: str, task_id: str, lease_token: str, lease_duration_us: int) -> Task:
        """Renews the lease for `lease_duration_us` from now, or releases it when that is 0."""

        def mutation(change: Change) -> Task:
            queue = existing_queue(change.txn, queue_id)
            now_us = self._clock.now_us()
            if lease_duration_us == 0:
                before = transitions.held(change, queue, task_id, lease_token, now_us)
                after = transitions.release(change, queue, task_id, lease_token, now_us, "lease released")
                if after is None:  # moved to the dead-letter queue: shown as it ended here
                    gone = before.copy()
                    gone.stage = Stage.FAILED
                    gone.lease_token = ""
                    gone.lease_expire_us = 0
                    return gone
                return after
            renewed = transitions.renew(change, queue, task_id, lease_token, now_us, lease_duration_us)
            expiry = renewed.lease_expire_us
            change.on_commit(lambda: self._reaper_alarm.poke(expiry))
            return renewed

        return await self._db.write(mutation)

    async def run(self, queue_id: str, task_id: str) -> Task:
        """Makes a scheduled, ready or failed task ready now."""

        def mutation(change: Change) -> Task:
            queue = existing_queue(change.txn, queue_id)
            return transitions.run(change, queue, task_id, self._clock.now_us())

        return await self._db.write(mutation)
