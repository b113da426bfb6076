"""Wake-ups across servers: LISTEN/NOTIFY on one channel, debounced.

After a commit, the server that made it publishes the ids of the queues it concerned; every
other server on the database wakes those queues' waiters (long polls, push dispatchers), so a
task created on one server reaches a stream on another at once. A NOTIFY per commit would
serialise committing transactions (PostgreSQL takes a global lock at commit for it), so this
sends at most one NOTIFY per DEBOUNCE_S, from its own connection, outside the transactions,
naming every queue changed meanwhile. A missed notification (while reconnecting) only delays a
wake-up: waiters look again at least every PgDatabase.poll_interval_s.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
from collections.abc import Callable

import psycopg

log = logging.getLogger(__name__)

CHANNEL = "taskq_wake"
#: Queues changed within this long share one NOTIFY (seconds).
DEBOUNCE_S = 0.005
#: NOTIFY payloads must stay under 8000 bytes.
MAX_PAYLOAD = 7000
#: After a connection failure, try again after this long (seconds), doubling up to RETRY_MAX_S:
#: short, since until the listener is back wake-ups from other servers wait for the poll.
RETRY_FIRST_S = 0.2
RETRY_MAX_S = 5.0


class Notifier:
    def __init__(self, dsn: str, wake: Callable[[set[str]], None]) -> None:
        self._dsn = dsn
        self._wake = wake
        self._sender_id = f"{os.getpid()}-{random.getrandbits(32):08x}"
        self._pending: set[str] = set()
        self._has_pending = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False
        #: Set once the listening connection has run LISTEN (tests wait for it).
        self.listening = asyncio.Event()

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._listen(), name="taskq-pg-listen"),
            loop.create_task(self._send(), name="taskq-pg-notify"),
        ]

    async def stop(self) -> None:
        self._stopping = True
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def publish(self, queue_ids: set[str]) -> None:
        """Queues whose waiters on other servers should look again."""
        self._pending |= queue_ids
        self._has_pending.set()

    async def _listen(self) -> None:
        delay = RETRY_FIRST_S
        while not self._stopping:
            try:
                async with await psycopg.AsyncConnection.connect(self._dsn, autocommit=True) as conn:
                    await conn.execute(f"LISTEN {CHANNEL}")
                    self.listening.set()
                    delay = RETRY_FIRST_S
                    async for notification in conn.notifies():
                        sender, _, queues = notification.payload.partition("|")
                        if sender != self._sender_id and queues:
                            self._wake(set(queues.split(",")))
            except asyncio.CancelledError:
                raise
            except Exception as error:  # the database went away: listen again when it is back
                self.listening.clear()
                log.warning("listening for wake-ups failed (again in %.1f s): %s", delay, error)
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_S)

    async def _send(self) -> None:
        delay = RETRY_FIRST_S
        conn: psycopg.AsyncConnection | None = None
        while not self._stopping:
            await self._has_pending.wait()
            await asyncio.sleep(DEBOUNCE_S)
            self._has_pending.clear()
            queues, self._pending = self._pending, set()
            try:
                if conn is None or conn.closed:
                    conn = await psycopg.AsyncConnection.connect(self._dsn, autocommit=True)
                for payload in _payloads(self._sender_id, sorted(queues)):
                    await conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, payload))
                delay = RETRY_FIRST_S
            except asyncio.CancelledError:
                raise
            except Exception as error:
                log.warning("sending wake-ups failed (again in %.1f s): %s", delay, error)
                if conn is not None:
                    await conn.close()
                conn = None
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_S)
        if conn is not None:
            await conn.close()


def _payloads(sender: str, queues: list[str]) -> list[str]:
    """`sender|q1,q2,...` payloads, each under MAX_PAYLOAD bytes."""
    payloads: list[str] = []
    current: list[str] = []
    size = 0
    for queue_id in queues:
        if current and size + len(queue_id) + 1 > MAX_PAYLOAD:
            payloads.append(f"{sender}|{','.join(current)}")
            current, size = [], 0
        current.append(queue_id)
        size += len(queue_id) + 1
    if current:
        payloads.append(f"{sender}|{','.join(current)}")
    return payloads
