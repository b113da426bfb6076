"""Per-queue signals: "something in this queue may have changed", for whoever waits on it.

Long-polling LeaseTasks calls and push dispatchers wait on their queue's signal; creates,
releases, retries, acknowledgements, pauses and deletes send it. A signal wakes every waiter
of that moment (a broadcast); waiters then look at the store again.

To miss nothing, a waiter takes the queue's event with `watch` *before* it looks at the store,
and waits on that event afterwards: a signal sent in between has already set it.
"""

from __future__ import annotations

import asyncio

from taskq.core.clock import Clock


class Wakeups:
    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._events: dict[str, asyncio.Event] = {}
        self.closed = False

    def notify(self, queue_id: str) -> None:
        event = self._events.pop(queue_id, None)
        if event is not None:
            event.set()

    def watch(self, queue_id: str) -> asyncio.Event:
        """The event the queue's next signal will set (already set once the server stops)."""
        event = self._events.get(queue_id)
        if event is None:
            event = self._events[queue_id] = asyncio.Event()
            if self.closed:
                event.set()
        return event

    async def wait(self, event: asyncio.Event, deadline_us: int | None) -> bool:
        """Waits for a watched event or `deadline_us`; True if signalled."""
        return await self._clock.wait(event, deadline_us)

    def close(self) -> None:
        """Wakes every waiter, now and from now on: the server is stopping."""
        self.closed = True
        events, self._events = self._events, {}
        for event in events.values():
            event.set()
