"""Per-queue signals: "something in this queue may have changed", for whoever waits on it.

Long-polling LeaseTasks calls and push dispatchers wait on their queue's signal; creates,
releases, retries that fall due, pauses and deletes send it. A signal wakes every waiter at
that moment (a broadcast); waiters then look at the store again.
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

    async def wait(self, queue_id: str, deadline_us: int | None) -> bool:
        """Waits for the queue's next signal or `deadline_us`; True if signalled."""
        if self.closed:
            return True
        event = self._events.get(queue_id)
        if event is None:
            event = self._events[queue_id] = asyncio.Event()
        return await self._clock.wait(event, deadline_us)

    def close(self) -> None:
        """Wakes every waiter, now and from now on: the server is stopping."""
        self.closed = True
        events, self._events = self._events, {}
        for event in events.values():
            event.set()
