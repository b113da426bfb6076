"""Push-queue task operations: leasing a batch for a dispatcher, a worker's answers (acks,
nacks, lease extensions), releasing a stream's tasks when it ends, and recovering push leases
orphaned by a restart.

A push delivery is a lease whose duration is the task's dispatch deadline, so pull and push
share one lease mechanism (core/leases.py) and one failure path (core/attempts.py).
"""

from __future__ import annotations

import dataclasses

from taskq.core import attempts, leases
from taskq.core.activity import Activity
from taskq.core.alarm import Alarm
from taskq.core.clock import Clock
from taskq.core.errors import Code, LeaseLost, QueueNotFound, TaskqError, WrongQueueType
from taskq.core.limits import MAX_ERROR_MESSAGE_BYTES, ServerLimits
from taskq.core.model import Queue, QueueState, QueueType, Task, content_size
from taskq.core.states import Event, TaskState, transition
from taskq.core.tasks import task_name
from taskq.store.base import Store
from taskq.store.commit import CommitLoop, Committed

#: Leases released per durable commit when recovering after a restart.
RECOVERY_BATCH = 1000


@dataclasses.dataclass(slots=True)
class Ack:
    task_id: str
    lease_token: str


@dataclasses.dataclass(slots=True)
class Nack:
    task_id: str
    lease_token: str
    #: A google.rpc.Code value; 0 (unset) is recorded as UNKNOWN.
    error_code: int = 0
    error_message: str = ""
    retry_delay_us: int | None = None
    permanent: bool = False


@dataclasses.dataclass(slots=True)
class Extension:
    task_id: str
    lease_token: str
    lease_duration_us: int


@dataclasses.dataclass(slots=True)
class Refusal:
    """An answer that could not be applied, and why. `name` is the task name it gave."""

    name: str
    lease_token: str
    error: TaskqError


@dataclasses.dataclass(slots=True)
class Answered:
    """What applying a message of answers did, for the stream's bookkeeping."""

    refusals: list[Refusal]
    #: task id -> new lease expiry, for applied extensions.
    extended: dict[str, int]
    acked: int


class PushTasks:
    def __init__(
        self,
        store: Store,
        commits: CommitLoop,
        clock: Clock,
        limits: ServerLimits,
        activity: Activity,
        reaper_alarm: Alarm,
    ) -> None:
        self._store = store
        self._commits = commits
        self._clock = clock
        self._limits = limits
        self._activity = activity
        self._reaper_alarm = reaper_alarm

    def push_queue(self, queue_id: str) -> Queue:
        queue = self._store.queue(queue_id)
        if queue is None:
            raise QueueNotFound(f"queues/{queue_id}")
        if queue.type is not QueueType.PUSH:
            raise WrongQueueType(queue.name, "pull", "StreamTasks")
        return queue

    async def lease_batch(self, queue_id: str, count: int) -> list[Task]:
        """Leases up to `count` ready tasks, each for its dispatch deadline, oldest first."""

        def mutation(committed: Committed) -> list[Task]:
            queue = self.push_queue(queue_id)
            if queue.state is QueueState.PAUSED:
                return []
            now_us = self._clock.now_us()
            budget = self._limits.response_budget_bytes
            leased: list[Task] = []
            earliest_expiry = None
            for task in self._store.waiting(queue, now_us):
                size = content_size(task.payload, task.attributes, task.tag)
                if leased and size > budget:
                    break
                budget -= size
                deadline_us = task.dispatch_deadline_us or queue.dispatch_deadline_us
                granted = leases.grant(task, now_us, deadline_us)
                committed.txn.put_task(queue, granted, task)
                leased.append(granted)
                if earliest_expiry is None or granted.lease_expire_us < earliest_expiry:
                    earliest_expiry = granted.lease_expire_us
                if len(leased) >= count:
                    break
            if leased:
                number = len(leased)
                committed.on_commit(lambda: self._activity.leased(queue_id, number))
                committed.on_commit(lambda: self._reaper_alarm.poke(earliest_expiry))
            return leased

        # Delivered once applied, not once fsynced: see store/commit.py.
        return await self._commits.run(mutation, durable=False)

    async def answer(self, queue_id: str, acks: list[Ack], nacks: list[Nack], extensions: list[Extension]) -> Answered:
        """Applies one message of answers in one durable commit."""

        def mutation(committed: Committed) -> Answered:
            queue = self.push_queue(queue_id)
            now_us = self._clock.now_us()
            refusals: list[Refusal] = []
            extended: dict[str, int] = {}
            seen: set[str] = set()
            acked = 0
            for ack in acks:
                try:
                    task = self._held(queue, ack.task_id, ack.lease_token, now_us, seen)
                    transition(TaskState.LEASED, Event.ACK, None)
                    committed.txn.delete_task(queue, task)
                    if task.named and queue.tombstone_ttl_us > 0:
                        committed.txn.put_tombstone(queue, task.task_id, now_us + queue.tombstone_ttl_us)
                    acked += 1
                except TaskqError as error:
                    refusals.append(Refusal(task_name(queue_id, ack.task_id), ack.lease_token, error))
            for nack in nacks:
                try:
                    task = self._held(queue, nack.task_id, nack.lease_token, now_us, seen)
                    message = nack.error_message.encode()[:MAX_ERROR_MESSAGE_BYTES].decode(errors="ignore")
                    attempts.fail(
                        committed, queue, task, now_us, event=Event.NACK,
                        code=nack.error_code or Code.UNKNOWN, message=message,
                        retry_delay_us=nack.retry_delay_us, permanent=nack.permanent,
                    )
                except TaskqError as error:
                    refusals.append(Refusal(task_name(queue_id, nack.task_id), nack.lease_token, error))
            for extension in extensions:
                try:
                    task = self._held(queue, extension.task_id, extension.lease_token, now_us, seen)
                    renewed = leases.renew(task, now_us, extension.lease_duration_us)
                    committed.txn.put_task(queue, renewed, task)
                    extended[task.task_id] = renewed.lease_expire_us
                except TaskqError as error:
                    refusals.append(Refusal(task_name(queue_id, extension.task_id), extension.lease_token, error))
            if acked:
                committed.on_commit(lambda: self._activity.executed(queue_id, acked))
            # Answers free stream credit and concurrency: the dispatcher looks again.
            committed.wake(queue_id)
            return Answered(refusals, extended, acked)

        return await self._commits.run(mutation)

    def _held(self, queue: Queue, task_id: str, token: str, now_us: int, seen: set[str]) -> Task:
        """The task if `token` is its current lease. One message may answer a task twice; the
        store does not show this transaction's own writes, so `seen` remembers them."""
        name = task_name(queue.queue_id, task_id)
        if task_id in seen:
            raise LeaseLost(name, "an earlier answer in the same message already answered the task")
        task = leases.check(self._store.task(queue, task_id), name, token, now_us)
        seen.add(task_id)
        return task

    async def release(self, queue_id: str, held: list[tuple[str, str]], reason: str) -> int:
        """Releases the tasks a stream still held (an attempt each), ready again at once."""

        def mutation(committed: Committed) -> int:
            queue = self._store.queue(queue_id)
            if queue is None:
                return 0
            now_us = self._clock.now_us()
            released = 0
            for task_id, token in held:
                try:
                    task = leases.check(self._store.task(queue, task_id), task_name(queue_id, task_id), token, now_us)
                except TaskqError:
                    continue  # answered, expired or deleted meanwhile: not ours to release
                attempts.fail(
                    committed, queue, task, now_us, event=Event.RELEASE, code=Code.CANCELLED, message=reason,
                    retry_delay_us=0,
                )
                released += 1
            return released

        return await self._commits.run(mutation)

    async def recover(self) -> int:
        """Releases every push lease: after a restart no stream holds one. Returns the count."""
        total = 0
        for queue in self._store.queues("", 2**31):
            if queue.type is not QueueType.PUSH:
                continue
            while True:
                entries = self._store.leases(queue, RECOVERY_BATCH)
                if not entries:
                    break
                held = [(entry.task_id, self._token(queue, entry.task_id)) for entry in entries]
                released = await self.release(queue.queue_id, held, "the server restarted")
                total += released
                if released == 0:
                    break
        return total

    def _token(self, queue: Queue, task_id: str) -> str:
        task = self._store.task(queue, task_id)
        return task.lease_token if task is not None else ""
