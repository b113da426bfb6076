"""Push dispatch: ready tasks of a push queue go to the streams subscribed to it.

One Dispatcher per push queue that has subscribers. It sleeps until something can change its
answer (a task created or falling due, an answer freeing credit, a token refill, a new
stream, a configuration change), then leases as many tasks as all three limits allow:

- the queue's token bucket (max_dispatches_per_second, max_burst_size),
- the queue's concurrency cap (max_concurrent_dispatches, counted from the store's counters),
- the streams' credit (each stream's max_outstanding minus its unanswered tasks),

and shares them between the streams round-robin, several tasks per message. A Subscriber is
one stream's side: its credit, its unanswered tasks, and an outbox the API layer drains.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging

from taskq.core.clock import Clock
from taskq.core.errors import QueueNotFound, ShuttingDown, TaskqError
from taskq.core.model import US_PER_SECOND, QueueState, Task
from taskq.core.push import PushTasks, Refusal
from taskq.core.ratelimit import TokenBucket
from taskq.core.wakeups import Wakeups
from taskq.store.base import Store

log = logging.getLogger(__name__)

#: The fewest tasks a stream is dealt at once when there are more (see Dispatcher._share).
MIN_CHUNK = 16

#: After an unexpected failure a dispatcher waits this long before trying again.
RETRY_AFTER_FAILURE_US = US_PER_SECOND


@dataclasses.dataclass(slots=True)
class Delivery:
    """Tasks for the stream, in one message."""

    tasks: list[Task]


@dataclasses.dataclass(slots=True)
class Refusals:
    """Answers of the stream that could not be applied."""

    refusals: list[Refusal]


class Subscriber:
    """One stream subscribed to a push queue."""

    def __init__(self, queue_id: str, max_outstanding: int) -> None:
        self.queue_id = queue_id
        self.max_outstanding = max_outstanding
        #: task id -> (lease token, lease expiry) of tasks sent and not yet answered.
        self.outstanding: dict[str, tuple[str, int]] = {}
        #: Delivery / Refusals for the stream; None ends it.
        self.outbox: asyncio.Queue[Delivery | Refusals | None] = asyncio.Queue()
        self.closed = False
        #: Why the server ended the stream, if it did (e.g. the queue was deleted).
        self.end_error: TaskqError | None = None

    def credit(self, now_us: int) -> int:
        """How many more tasks the stream may take now. Leases that ran out no longer count:
        the reaper retries those tasks, and the stream's answers to them will be refused."""
        expired = [task_id for task_id, (_, expire_us) in self.outstanding.items() if expire_us <= now_us]
        for task_id in expired:
            del self.outstanding[task_id]
        return max(0, self.max_outstanding - len(self.outstanding))

    def deliver(self, tasks: list[Task]) -> None:
        for task in tasks:
            self.outstanding[task.task_id] = (task.lease_token, task.lease_expire_us)
        self.outbox.put_nowait(Delivery(tasks))

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

    def end(self, error: TaskqError | None = None) -> None:
        if not self.closed:
            self.closed = True
            self.end_error = error
            self.outbox.put_nowait(None)


class Dispatcher:
    """Feeds one push queue's subscribers."""

    def __init__(self, queue_id: str, store: Store, push: PushTasks, clock: Clock, wakeups: Wakeups) -> None:
        self.queue_id = queue_id
        self._store = store
        self._push = push
        self._clock = clock
        self._wakeups = wakeups
        self.subscribers: list[Subscriber] = []
        self._bucket: TokenBucket | None = None
        self._next_first = 0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name=f"taskq-dispatch-{self.queue_id}")

    async def join(self) -> None:
        if self._task is not None:
            await self._task

    async def _run(self) -> None:
        while self.subscribers and not self._wakeups.closed:
            changed = self._wakeups.watch(self.queue_id)
            try:
                wake_us = await self.dispatch_once()
            except TaskqError as error:
                log.warning("dispatcher of %s: %s", self.queue_id, error)
                wake_us = self._clock.now_us() + RETRY_AFTER_FAILURE_US
            except Exception:
                log.exception("dispatcher of %s failed; retrying", self.queue_id)
                wake_us = self._clock.now_us() + RETRY_AFTER_FAILURE_US
            if wake_us is not None and wake_us <= self._clock.now_us():
                await asyncio.sleep(0)
                continue
            await self._wakeups.wait(changed, wake_us)

    async def dispatch_once(self) -> int | None:
        """Dispatches what the limits allow now. Returns when to look again without a signal
        (now, the next token, the next schedule time), or None to wait for a signal."""
        queue = self._store.queue(self.queue_id)
        if queue is None:
            for subscriber in list(self.subscribers):
                subscriber.end(QueueNotFound(f"queues/{self.queue_id}"))
            self.subscribers.clear()
            return None
        now_us = self._clock.now_us()
        self.subscribers = [s for s in self.subscribers if not s.closed]
        credit = sum(subscriber.credit(now_us) for subscriber in self.subscribers)
        in_flight = self._store.counters(queue).leased
        room = queue.max_concurrent_dispatches - in_flight
        if self._bucket is None:
            self._bucket = TokenBucket(queue.max_dispatches_per_second, queue.burst_size, now_us)
        else:
            self._bucket.configure(queue.max_dispatches_per_second, queue.burst_size, now_us)
        if credit <= 0 or room <= 0 or queue.state is QueueState.PAUSED:
            return None  # an answer, an expiry or a resume sends a signal
        tokens = self._bucket.available(now_us)
        if tokens <= 0:
            return self._bucket.next_token_us(now_us)
        wanted = min(credit, room, tokens)
        tasks = await self._push.lease_batch(self.queue_id, wanted)
        now_us = self._clock.now_us()
        if tasks:
            self._bucket.take(len(tasks), now_us)
            await self._share(tasks)
        if len(tasks) == wanted:
            return now_us  # the limits, not the backlog, stopped us: look again at once
        oldest = self._store.oldest_waiting(queue)
        if oldest is None:
            return None
        # Due already means time moved on while the lease was being committed: look again now.
        return max(oldest[0], now_us)

    async def _share(self, tasks: list[Task]) -> None:
        """Deals the tasks to the streams with credit in contiguous chunks, starting at a stream
        that rotates with every call. A chunk is an equal share, but at least MIN_CHUNK tasks:
        each message costs as much CPU as dozens of tasks inside it, so a trickle goes to one
        stream at a time rather than a task to each; over successive calls, every stream gets
        its turn."""
        now_us = self._clock.now_us()
        open_subscribers = [s for s in self.subscribers if not s.closed]
        count = len(open_subscribers)
        leftover = tasks
        if count:
            chunk = max(-(-len(tasks) // count), MIN_CHUNK)
            first = self._next_first % count
            self._next_first += 1
            for offset in range(count):
                if not leftover:
                    break
                subscriber = open_subscribers[(first + offset) % count]
                take = min(chunk, subscriber.credit(now_us), len(leftover))
                if take > 0:
                    subscriber.deliver(leftover[:take])
                    leftover = leftover[take:]
            for subscriber in open_subscribers:  # credit left where the chunks stopped short
                if not leftover:
                    break
                take = min(subscriber.credit(now_us), len(leftover))
                if take > 0:
                    subscriber.deliver(leftover[:take])
                    leftover = leftover[take:]
        if leftover:
            # The stream that asked for them went away between the lease and now.
            await self._push.release(
                self.queue_id, [(t.task_id, t.lease_token) for t in leftover], "the stream closed before delivery"
            )


class Dispatchers:
    """Every push queue's dispatcher, created with its first subscriber."""

    def __init__(self, store: Store, push: PushTasks, clock: Clock, wakeups: Wakeups) -> None:
        self._store = store
        self._push = push
        self._clock = clock
        self._wakeups = wakeups
        self._dispatchers: dict[str, Dispatcher] = {}

    def subscribe(self, queue_id: str, max_outstanding: int) -> Subscriber:
        """A new stream on a push queue (QueueNotFound, WrongQueueType, ShuttingDown)."""
        if self._wakeups.closed:
            raise ShuttingDown()
        self._push.push_queue(queue_id)
        subscriber = Subscriber(queue_id, max_outstanding)
        dispatcher = self._dispatchers.get(queue_id)
        if dispatcher is None or dispatcher._task is None or dispatcher._task.done():
            dispatcher = Dispatcher(queue_id, self._store, self._push, self._clock, self._wakeups)
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
        held = [(task_id, token) for task_id, (token, _) in subscriber.outstanding.items()]
        subscriber.outstanding.clear()
        if not held:
            return 0
        try:
            return await self._push.release(subscriber.queue_id, held, reason)
        except TaskqError as error:
            log.warning("releasing %d tasks of a closed stream failed: %s", len(held), error)
            return 0

    def subscriber_count(self, queue_id: str) -> int:
        dispatcher = self._dispatchers.get(queue_id)
        return len(dispatcher.subscribers) if dispatcher else 0

    async def close(self) -> None:
        """Ends every stream with UNAVAILABLE / SHUTTING_DOWN (so workers know to reconnect
        elsewhere or later; the handlers release their tasks first) and stops the dispatchers."""
        for dispatcher in self._dispatchers.values():
            for subscriber in list(dispatcher.subscribers):
                subscriber.end(ShuttingDown())
        self._wakeups.close()
        for dispatcher in list(self._dispatchers.values()):
            await dispatcher.join()
