"""Push dispatch: ready tasks of a push queue go to the streams subscribed to it.

One Dispatcher per push queue that has subscribers here. It sleeps until something can change
its answer (a task created or falling due, an answer freeing credit, a token refill, a new
stream, a configuration change), then asks core/push.py to lease as many tasks as the
streams' credit (each stream's max_outstanding minus its unanswered tasks) asks for; the
lease itself applies the queue's token bucket and concurrency cap, from the store. It shares
the tasks between the streams round-robin, several tasks per message.

A Subscriber is one stream's side: its credit, its unanswered tasks, and a bounded outbox the
API layer drains. The database tells the dispatchers (`leases_ended`) when a lease a stream
holds ended elsewhere (acknowledged by DeleteTask, deleted, purged, expired), so the stream's
credit comes back at once instead of when the lease would have run out.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections import OrderedDict

from taskq.core.clock import Clock
from taskq.core.errors import FailedPrecondition, HttpQueue, QueueNotFound, ResourceExhausted, ShuttingDown, TaskqError
from taskq.core.model import US_PER_SECOND, Queue, Task
from taskq.core.push import Limit, PushTasks, Refusal
from taskq.core.wakeups import Wakeups
from taskq.store.base import Reader
from taskq.store.database import Database

log = logging.getLogger(__name__)

#: The fewest tasks a stream is dealt at once when there are more (see Dispatcher._share).
MIN_CHUNK = 16

#: After an unexpected failure a dispatcher waits this long before trying again.
RETRY_AFTER_FAILURE_US = US_PER_SECOND

#: Messages waiting in a stream's outbox, at most. Deliveries are bounded by the stream's
#: credit; refusals are not, so a client that sends answers without reading its responses
#: would make the outbox grow without end. Past this, its stream is ended.
MAX_OUTBOX_MESSAGES = 1024

#: Tasks a stream let expire, remembered so they are dealt to another stream next time.
MAX_LOST_REMEMBERED = 1000


@dataclasses.dataclass(slots=True)
class Delivery:
    """Tasks for the stream, in one message."""

    tasks: list[Task]


@dataclasses.dataclass(slots=True)
class Refusals:
    """Answers of the stream that could not be applied."""

    refusals: list[Refusal]


class Subscriber:
    """One stream subscribed to a push queue, or the HTTP deliverer of a queue with an HTTP
    target (`http`): both take tasks the same way."""

    def __init__(self, queue_id: str, max_outstanding: int, http: bool = False) -> None:
        self.queue_id = queue_id
        self.max_outstanding = max_outstanding
        self.http = http
        #: task id -> (lease token, lease expiry) of tasks sent and not yet answered.
        self.outstanding: dict[str, tuple[str, int]] = {}
        #: Tasks whose lease this stream let run out (a frozen or slow consumer): when they are
        #: dispatched again, another stream with credit gets them.
        self.lost: OrderedDict[str, None] = OrderedDict()
        #: Delivery / Refusals for the stream; None ends it.
        self.outbox: asyncio.Queue[Delivery | Refusals | None] = asyncio.Queue()
        self.closed = False
        #: Set when the stream is ended, by either side.
        self.ended = asyncio.Event()
        #: Why the server ended the stream, if it did (e.g. the queue was deleted).
        self.end_error: TaskqError | None = None

    def credit(self, now_us: int) -> int:
        """How many more tasks the stream may take now. Leases that ran out no longer count:
        the reaper retries those tasks, and the stream's answers to them will be refused."""
        expired = [task_id for task_id, (_, expire_us) in self.outstanding.items() if expire_us <= now_us]
        for task_id in expired:
            del self.outstanding[task_id]
            self._lose(task_id)
        return max(0, self.max_outstanding - len(self.outstanding))

    def _lose(self, task_id: str) -> None:
        self.lost[task_id] = None
        self.lost.move_to_end(task_id)
        while len(self.lost) > MAX_LOST_REMEMBERED:
            self.lost.popitem(last=False)

    def deliver(self, tasks: list[Task]) -> None:
        for task in tasks:
            self.outstanding[task.task_id] = (task.lease_token, task.lease_expire_us)
            self.lost.pop(task.task_id, None)
        self._put(Delivery(tasks))

    def refuse(self, refusals: list[Refusal]) -> None:
        self._put(Refusals(refusals))

    def _put(self, item: Delivery | Refusals) -> None:
        if self.closed:
            return
        if self.outbox.qsize() >= MAX_OUTBOX_MESSAGES:
            self.end(ResourceExhausted(
                f"the stream's client has not read its last {MAX_OUTBOX_MESSAGES} messages; the stream is ended "
                "(read the stream while sending answers)",
                reason="STREAM_NOT_READ",
            ))
            return
        self.outbox.put_nowait(item)

    def answered(self, answers: list[tuple[str, str]], extended: dict[str, int]) -> None:
        """Forgets tasks the stream acked or nacked with the token it was sent; an answer with
        another token (refused as LEASE_LOST) leaves this stream's own lease counted."""
        for task_id, token in answers:
            held = self.outstanding.get(task_id)
            if held is not None and held[0] == token:
                del self.outstanding[task_id]
        for task_id, expire_us in extended.items():
            if task_id in self.outstanding:
                self.outstanding[task_id] = (self.outstanding[task_id][0], expire_us)

    def lease_ended(self, task_id: str, token: str, now_us: int) -> bool:
        """A lease ended somewhere (this stream's answer, DeleteTask, a purge, the reaper);
        forgets it if this stream held it. Returns whether it did."""
        held = self.outstanding.get(task_id)
        if held is None or held[0] != token:
            return False
        del self.outstanding[task_id]
        if held[1] <= now_us:
            self._lose(task_id)
        return True

    def end(self, error: TaskqError | None = None) -> None:
        if not self.closed:
            self.closed = True
            self.end_error = error
            self.outbox.put_nowait(None)
            self.ended.set()


class Dispatcher:
    """Feeds one push queue's subscribers."""

    def __init__(self, queue_id: str, db: Database, push: PushTasks, clock: Clock, wakeups: Wakeups) -> None:
        self.queue_id = queue_id
        self._db = db
        self._push = push
        self._clock = clock
        self._wakeups = wakeups
        self.subscribers: list[Subscriber] = []
        self._next_first = 0
        self._task: asyncio.Task[None] | None = None
        #: When the streams' leases were last checked against the database (shared databases).
        self._credit_checked_us = 0

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name=f"taskq-dispatch-{self.queue_id}")

    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def join(self) -> None:
        if self._task is not None:
            await self._task

    async def _run(self) -> None:
        while not self._wakeups.closed:
            self.subscribers = [s for s in self.subscribers if not s.closed]
            if not self.subscribers:
                return
            changed = self._wakeups.watch(self.queue_id)
            try:
                try:
                    wake_us = await self.dispatch_once()
                except TaskqError as error:
                    log.warning("dispatcher of %s: %s", self.queue_id, error)
                    wake_us = self._clock.now_us() + RETRY_AFTER_FAILURE_US
                except Exception:
                    log.exception("dispatcher of %s failed; retrying", self.queue_id)
                    wake_us = self._clock.now_us() + RETRY_AFTER_FAILURE_US
                now_us = self._clock.now_us()
                if wake_us is not None and wake_us <= now_us:
                    await asyncio.sleep(0)
                    continue
                poll_s = self._db.poll_interval_s
                if poll_s is not None:  # a signal from another server may be missed: look anyway
                    backstop_us = now_us + int(poll_s * US_PER_SECOND)
                    wake_us = backstop_us if wake_us is None else min(wake_us, backstop_us)
                await self._wakeups.wait(changed, wake_us)
            finally:
                self._wakeups.unwatch(self.queue_id, changed)

    async def dispatch_once(self) -> int | None:
        """Dispatches what the limits allow now. Returns when to look again without a signal
        (now, the next token, the next schedule time), or None to wait for a signal."""
        queue = await self._db.read(lambda reader: reader.queue(self.queue_id))
        if queue is None:
            for subscriber in list(self.subscribers):
                subscriber.end(QueueNotFound(f"queues/{self.queue_id}"))
            self.subscribers.clear()
            return None
        http = queue.http_target is not None
        for subscriber in self.subscribers:
            if subscriber.http != http:  # the queue's target was set or removed since
                subscriber.end(HttpQueue(queue.name) if http else None)
        now_us = self._clock.now_us()
        self.subscribers = [s for s in self.subscribers if not s.closed]
        credit = sum(subscriber.credit(now_us) for subscriber in self.subscribers)
        if credit <= 0 and not self._db.exclusive:
            credit = await self._forget_leases_ended_elsewhere(queue, now_us)
        if credit <= 0:
            return None  # an answer or an expiry sends a signal
        batch = await self._push.lease_batch(self.queue_id, credit)
        if batch.tasks:
            await self._share(batch.tasks)
        now_us = self._clock.now_us()
        if batch.limit is Limit.PAUSED or batch.limit is Limit.CAP:
            return None  # a resume, an answer or an expiry sends a signal
        if batch.limit is Limit.TOKENS and len(batch.tasks) == batch.allowed:
            return batch.next_token_us
        if len(batch.tasks) == batch.allowed and batch.allowed > 0:
            return now_us  # the streams' credit, not the backlog, stopped us: look again at once
        return await self._next_due(queue, now_us)

    async def _forget_leases_ended_elsewhere(self, queue: Queue, now_us: int) -> int:
        """On a shared database a stream's task can be acknowledged (or deleted, or purged) on
        another server, which tells nothing to this one: with no credit left, look up which of
        the streams' leases still stand, at most once per poll interval, and forget the rest.
        Returns the credit after that."""
        poll_s = self._db.poll_interval_s or 0.0
        if now_us - self._credit_checked_us < poll_s * US_PER_SECOND:
            return 0
        self._credit_checked_us = now_us
        held = {task_id: token for s in self.subscribers for task_id, (token, _) in s.outstanding.items()}

        def standing(reader: Reader) -> set[str]:
            found = set()
            for task_id, token in held.items():
                task = reader.task(queue, task_id)
                if task is not None and task.lease_token == token:
                    found.add(task_id)
            return found

        still = await self._db.read(standing)
        ended = [(task_id, token) for task_id, token in held.items() if task_id not in still]
        for task_id, token in ended:
            for subscriber in self.subscribers:
                subscriber.lease_ended(task_id, token, now_us)
        return sum(subscriber.credit(now_us) for subscriber in self.subscribers)

    async def _next_due(self, queue: Queue, now_us: int) -> int | None:
        oldest = await self._db.read(lambda reader: reader.oldest_waiting(queue))
        if oldest is None:
            return None
        # Due already means time moved on while the lease was being committed: look again now.
        return max(oldest[0], now_us)

    async def _share(self, tasks: list[Task]) -> None:
        """Deals the tasks to the streams with credit in contiguous chunks, starting at a stream
        that rotates with every call. A chunk is an equal share, but at least MIN_CHUNK tasks:
        each message costs as much CPU as dozens of tasks inside it, so a trickle goes to one
        stream at a time rather than a task to each; over successive calls, every stream gets
        its turn. A task goes back to a stream that let it expire only when no other stream
        has credit for it (a frozen consumer would only let it expire again)."""
        now_us = self._clock.now_us()
        streams = [s for s in self.subscribers if not s.closed]
        room = {id(s): s.credit(now_us) for s in streams}
        dealt: dict[int, list[Task]] = {id(s): [] for s in streams}
        leftover = list(tasks)
        if streams:
            count = len(streams)
            chunk = max(-(-len(tasks) // count), MIN_CHUNK)
            first = self._next_first % count
            self._next_first += 1
            order = [streams[(first + offset) % count] for offset in range(count)]
            for stream in order:  # a chunk each, in turn
                take = min(chunk, room[id(stream)], len(leftover))
                dealt[id(stream)] += leftover[:take]
                leftover = leftover[take:]
            for stream in order:  # credit left where the chunks stopped short
                take = min(room[id(stream)] - len(dealt[id(stream)]), len(leftover))
                dealt[id(stream)] += leftover[:take]
                leftover = leftover[take:]
            self._avoid_lost(order, room, dealt)
        for stream in streams:
            if dealt[id(stream)]:
                stream.deliver(dealt[id(stream)])
        if leftover:
            # The stream that asked for them went away between the lease and now.
            await self._push.release(
                self.queue_id, [(t.task_id, t.lease_token) for t in leftover], "the stream closed before delivery"
            )

    @staticmethod
    def _avoid_lost(order: list[Subscriber], room: dict[int, int], dealt: dict[int, list[Task]]) -> None:
        """Moves each task dealt to a stream that lost it before to another stream with credit
        left that did not."""
        for stream in order:
            if not stream.lost:
                continue
            keep: list[Task] = []
            for task in dealt[id(stream)]:
                if task.task_id in stream.lost:
                    other = next(
                        (o for o in order if o is not stream and room[id(o)] > len(dealt[id(o)])
                         and task.task_id not in o.lost),
                        None,
                    )
                    if other is not None:
                        dealt[id(other)].append(task)
                        continue
                keep.append(task)
            dealt[id(stream)] = keep


class Dispatchers:
    """Every push queue's dispatcher, created with its first subscriber."""

    def __init__(self, db: Database, push: PushTasks, clock: Clock, wakeups: Wakeups) -> None:
        self._db = db
        self._push = push
        self._clock = clock
        self._wakeups = wakeups
        self._dispatchers: dict[str, Dispatcher] = {}

    async def subscribe(self, queue_id: str, max_outstanding: int, http: bool = False) -> Subscriber:
        """A new stream on a push queue (QueueNotFound, WrongQueueType, HttpQueue,
        ShuttingDown), or with `http` the HTTP deliverer of a queue with an HTTP target."""
        if self._wakeups.closed:
            raise ShuttingDown()
        queue = await self._push.queue(queue_id)
        if (queue.http_target is not None) != http:
            if not http:
                raise HttpQueue(queue.name)
            raise FailedPrecondition(f"queue {queue.name} has no http_target", reason="NOT_AN_HTTP_QUEUE")
        subscriber = Subscriber(queue_id, max_outstanding, http)
        dispatcher = self._dispatchers.get(queue_id)
        if dispatcher is None or not dispatcher.running():
            dispatcher = Dispatcher(queue_id, self._db, self._push, self._clock, self._wakeups)
            self._dispatchers[queue_id] = dispatcher
            dispatcher.subscribers.append(subscriber)
            dispatcher.start()
        else:
            dispatcher.subscribers.append(subscriber)
            self._wakeups.notify(queue_id)
        return subscriber

    async def unsubscribe(self, subscriber: Subscriber, reason: str = "the stream ended") -> int:
        """Ends a stream: its unanswered tasks are released at once (an attempt each)."""
        subscriber.end()
        dispatcher = self._dispatchers.get(subscriber.queue_id)
        if dispatcher is not None and subscriber in dispatcher.subscribers:
            dispatcher.subscribers.remove(subscriber)
            self._wakeups.notify(subscriber.queue_id)  # a dispatcher left without streams stops
            if not dispatcher.subscribers and not dispatcher.running():
                del self._dispatchers[subscriber.queue_id]
        held = [(task_id, token) for task_id, (token, _) in subscriber.outstanding.items()]
        subscriber.outstanding.clear()
        if not held:
            return 0
        try:
            return await self._push.release(subscriber.queue_id, held, reason)
        except TaskqError as error:
            log.warning("releasing %d tasks of a closed stream failed: %s", len(held), error)
            return 0

    def leases_ended(self, ended: dict[str, list[tuple[str, str]]]) -> None:
        """Leases ended by committed changes: the streams holding them get their credit back."""
        now_us = self._clock.now_us()
        for queue_id, leases in ended.items():
            dispatcher = self._dispatchers.get(queue_id)
            if dispatcher is None:
                continue
            freed = False
            for task_id, token in leases:
                for subscriber in dispatcher.subscribers:
                    if subscriber.lease_ended(task_id, token, now_us):
                        freed = True
                        break
            if freed:
                self._wakeups.notify(queue_id)

    def subscriber_count(self, queue_id: str) -> int:
        dispatcher = self._dispatchers.get(queue_id)
        return len(dispatcher.subscribers) if dispatcher else 0

    async def close(self, error: TaskqError | None = None) -> None:
        """Ends every stream with `error` (default UNAVAILABLE / SHUTTING_DOWN, so workers know
        to reconnect elsewhere or later; the handlers release their tasks first) and stops the
        dispatchers."""
        for dispatcher in self._dispatchers.values():
            for subscriber in list(dispatcher.subscribers):
                subscriber.end(error or ShuttingDown())
        for dispatcher in list(self._dispatchers.values()):
            self._wakeups.notify(dispatcher.queue_id)
        for dispatcher in list(self._dispatchers.values()):
            await dispatcher.join()
        self._dispatchers.clear()
