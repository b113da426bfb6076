"""Push-queue task operations: leasing a batch for a dispatcher under the queue's limits, a
worker's answers (acks, nacks, lease extensions), releasing a stream's tasks when it ends,
and recovering push leases orphaned by a restart.

A push delivery is a lease whose duration is the task's dispatch deadline, so pull and push
share one lease mechanism and one failure path (core/transitions.py). The queue's token
bucket and concurrency cap are applied inside the transaction that leases, from the stored
bucket and the stored count of leased tasks: the limits hold however many dispatchers share
the queue.
"""

from __future__ import annotations

import dataclasses
import enum

from taskq.core import transitions
from taskq.core.activity import Activity
from taskq.core.alarm import Alarm
from taskq.core.clock import Clock
from taskq.core.errors import Code, LeaseLost, QueueNotFound, TaskqError, WrongQueueType
from taskq.core.limits import MAX_ERROR_MESSAGE_BYTES, ServerLimits
from taskq.core.model import LeaseEntry, Queue, QueueState, QueueType, Task
from taskq.core.ratelimit import TokenBucket
from taskq.core.transitions import task_name
from taskq.store.base import Reader
from taskq.store.database import Change, Database

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
    #: HTTP push: the retry waits at least this long (the worker's Retry-After).
    min_retry_delay_us: int = 0
    #: HTTP push: the status the worker answered; 0 when it did not answer.
    http_status: int = 0


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


class Limit(enum.Enum):
    """What capped a dispatch batch."""

    WANTED = "wanted"  # the streams' credit: all they asked for was allowed
    TOKENS = "tokens"  # the token bucket
    CAP = "cap"  # max_concurrent_dispatches
    PAUSED = "paused"


@dataclasses.dataclass(slots=True)
class Batch:
    """A dispatch batch: the tasks leased, how many the limits allowed, and what limited it."""

    tasks: list[Task]
    allowed: int
    limit: Limit
    #: When the token bucket has its next token (set when the bucket limited the batch).
    next_token_us: int | None = None


def push_queue(reader: Reader, queue_id: str) -> Queue:
    queue = reader.queue(queue_id)
    if queue is None:
        raise QueueNotFound(f"queues/{queue_id}")
    if queue.type is not QueueType.PUSH:
        raise WrongQueueType(queue.name, "pull", "StreamTasks")
    return queue


class PushTasks:
    def __init__(
        self,
        db: Database,
        clock: Clock,
        limits: ServerLimits,
        activity: Activity,
        reaper_alarm: Alarm,
    ) -> None:
        self._db = db
        self._clock = clock
        self._limits = limits
        self._activity = activity
        self._reaper_alarm = reaper_alarm

    async def queue(self, queue_id: str) -> Queue:
        """The push queue (QueueNotFound, WrongQueueType)."""
        return await self._db.read(lambda reader: push_queue(reader, queue_id))

    async def lease_batch(self, queue_id: str, wanted: int) -> Batch:
        """Leases up to `wanted` ready tasks, each for its dispatch deadline, oldest first, as
        far as the queue's token bucket and concurrency cap allow."""

        def mutation(change: Change) -> Batch:
            txn = change.txn
            queue = push_queue(txn, queue_id)
            if queue.state is QueueState.PAUSED:
                return Batch([], 0, Limit.PAUSED)
            # The bucket first: on a shared database reading it locks it, so the queue's dispatches
            # take turns from here and the leased count read next includes every earlier one.
            stored_bucket = txn.bucket(queue)
            now_us = self._clock.now_us()
            room = queue.max_concurrent_dispatches - txn.counters(queue).leased
            bucket = TokenBucket(queue.max_dispatches_per_second, queue.burst_size, now_us, stored_bucket)
            tokens = bucket.available(now_us)
            allowed = max(0, min(wanted, room, tokens))
            limit = Limit.WANTED
            if allowed == room and room < wanted:
                limit = Limit.CAP
            elif allowed == tokens and tokens < wanted:
                limit = Limit.TOKENS
            leased: list[Task] = []
            if allowed > 0:
                leased = transitions.lease_due(
                    change, queue, now_us, allowed, self._limits.response_budget_bytes,
                    lambda task: task.dispatch_deadline_us or queue.dispatch_deadline_us,
                )
            if leased:
                if queue.max_dispatches_per_second is not None:
                    bucket.take(len(leased), now_us)
                    txn.put_bucket(queue, bucket.state())
                number = len(leased)
                earliest_expiry = min(task.lease_expire_us for task in leased)
                change.on_commit(lambda: self._activity.leased(queue_id, number))
                change.on_commit(lambda: self._reaper_alarm.poke(earliest_expiry))
            next_token_us = bucket.next_token_us(now_us) if limit is Limit.TOKENS else None
            return Batch(leased, allowed, limit, next_token_us)

        # Delivered once applied, not once fsynced: see store/commit.py.
        return await self._db.write(mutation, durable=False)

    async def answer(self, queue_id: str, acks: list[Ack], nacks: list[Nack], extensions: list[Extension]) -> Answered:
        """Applies one message of answers in one durable commit."""

        def mutation(change: Change) -> Answered:
            queue = push_queue(change.txn, queue_id)
            now_us = self._clock.now_us()
            change.txn.prefetch(queue, [a.task_id for a in acks] + [n.task_id for n in nacks] + [e.task_id for e in extensions])
            refusals: list[Refusal] = []
            extended: dict[str, int] = {}
            seen: set[str] = set()
            acked = 0

            def once(task_id: str) -> None:
                if task_id in seen:
                    raise LeaseLost(
                        task_name(queue_id, task_id), "an earlier answer in the same message already answered the task"
                    )
                seen.add(task_id)

            for ack in acks:
                try:
                    once(ack.task_id)
                    transitions.ack(change, queue, ack.task_id, ack.lease_token, now_us)
                    acked += 1
                except TaskqError as error:
                    refusals.append(Refusal(task_name(queue_id, ack.task_id), ack.lease_token, error))
            for nack in nacks:
                try:
                    once(nack.task_id)
                    message = nack.error_message.encode()[:MAX_ERROR_MESSAGE_BYTES].decode(errors="ignore")
                    transitions.nack(
                        change, queue, nack.task_id, nack.lease_token, now_us, code=nack.error_code or Code.UNKNOWN.value,
                        message=message, retry_delay_us=nack.retry_delay_us, permanent=nack.permanent,
                        min_retry_delay_us=nack.min_retry_delay_us, http_status=nack.http_status,
                    )
                except TaskqError as error:
                    refusals.append(Refusal(task_name(queue_id, nack.task_id), nack.lease_token, error))
            for extension in extensions:
                try:
                    once(extension.task_id)
                    renewed = transitions.renew(
                        change, queue, extension.task_id, extension.lease_token, now_us, extension.lease_duration_us
                    )
                    extended[extension.task_id] = renewed.lease_expire_us
                except TaskqError as error:
                    refusals.append(Refusal(task_name(queue_id, extension.task_id), extension.lease_token, error))
            if acked:
                change.on_commit(lambda: self._activity.executed(queue_id, acked))
            # Answers free stream credit and concurrency: the dispatcher looks again.
            change.wake(queue_id)
            return Answered(refusals, extended, acked)

        return await self._db.write(mutation)

    async def release(self, queue_id: str, held: list[tuple[str, str]], reason: str) -> int:
        """Releases the tasks a stream still held (an attempt each), ready again at once."""

        def mutation(change: Change) -> int:
            queue = change.txn.queue(queue_id)
            if queue is None:
                return 0
            now_us = self._clock.now_us()
            change.txn.prefetch(queue, [task_id for task_id, _ in held])
            released = 0
            for task_id, token in held:
                try:
                    transitions.release(change, queue, task_id, token, now_us, reason, retry_delay_us=0)
                except LeaseLost:
                    continue  # answered, expired or deleted meanwhile: not ours to release
                released += 1
            return released

        return await self._db.write(mutation)

    async def recover(self) -> int:
        """Releases every push lease: after a restart of the only server on a database, no
        stream holds one. Returns the count."""
        total = 0
        after: LeaseEntry | None = None
        while True:
            def page(reader: Reader, after: LeaseEntry | None = after) -> list[LeaseEntry]:
                return reader.leases(after, RECOVERY_BATCH)

            entries = await self._db.read(page)
            if not entries:
                return total
            after = entries[-1]

            def mutation(change: Change, entries: list[LeaseEntry] = entries) -> int:
                now_us = self._clock.now_us()
                released = 0
                for entry in entries:
                    queue = change.txn.queue_by_storage_id(entry.storage_id)
                    if queue is None or queue.type is not QueueType.PUSH:
                        continue
                    task = transitions.stored(change, queue, entry.task_id)
                    if task is None or task.lease_expire_us != entry.expire_us:
                        continue
                    try:
                        transitions.release(
                            change, queue, entry.task_id, task.lease_token, now_us, "the server restarted",
                            retry_delay_us=0,
                        )
                    except LeaseLost:
                        continue  # expired: the reaper retries it
                    released += 1
                return released

            total += await self._db.write(mutation)
