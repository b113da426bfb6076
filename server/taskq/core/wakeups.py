"""Per-queue signals: "something in this queue may have changed", for whoever waits on it.

Long-polling LeaseTasks calls and push dispatchers wait on their queue's signal; creates,
releases, retries, acknowledgements, pauses and deletes send it. A signal wakes every waiter
of that moment (a broadcast); waiters then look at the store again.

To miss nothing, a waiter takes the queue's event with `watch` *before* it looks at the store,
and waits on that event afterwards: a signal sent in between has already set it. Every watch
is paired with an `unwatch` when the waiter is done (in a `finally`), so that the event of a
queue nobody waits for any more is dropped: memory follows the waiters, not the calls made.
"""

from __future__ import annotations

import asyncio

from taskq.core.clock import Clock


class Wakeups:
    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        #: queue id -> (the event its next signal sets, how many waiters hold it).
        self._events: dict[str, tuple[asyncio.Event, int]] = {}
        self.closed = False

    def notify(self, queue_id: str) -> None:
        entry = self._events.pop(queue_id, None)
        if entry is not None:
            entry[0].set()

    def watch(self, queue_id: str) -> asyncio.Event:
        """The event the queue's next signal will set (already set once the server stops)."""
        entry = self._events.get(queue_id)
        if entry is None:
            event = asyncio.Event()
            if self.closed:
                event.set()
            self._events[queue_id] = (event, 1)
            return event
        self._events[queue_id] = (entry[0], entry[1] + 1)
        return entry[0]

    def unwatch(self, queue_id: str, event: asyncio.Event) -> None:
        """The waiter that watched `event` is done with it."""
        entry = self._events.get(queue_id)
        if entry is None or entry[0] is not event:
            return  # signalled (and dropped) since
        if entry[1] <= 1:
            del self._events[queue_id]
        else:
            self._events[queue_id] = (event, entry[1] - 1)

    def watched(self) -> int:
        """How many queues have an event (for tests and metrics)."""
        return len(self._events)

    async def wait(self, event: asyncio.Event, deadline_us: int | None) -> bool:
        """Waits for a watched event or `deadline_us`; True if signalled."""
        return await self._clock.wait(event, deadline_us)

    def close(self) -> None:
        """Wakes every waiter, now and from now on: the server is stopping."""
        self.closed = True
        events, self._events = self._events, {}
        for event, _ in events.values():
            event.set()
