"""The Database of the PostgreSQL engine: many servers, one database.

Each mutation runs in its own transaction on a pooled connection, in a worker thread (psycopg's
blocking API; the event loop keeps serving), concurrently with this server's other mutations
and with every other server's. Conflicts are settled by the database: rows a mutation reads to
decide are locked (store/postgres/reader.py), so the loser of a race waits and then sees the
winner's change. A serialization failure, a deadlock, or a unique-key race (two servers
creating one name) aborts the transaction; the mutation then runs again from the start,
which is why mutations are plain functions of their Change (store/database.py).

An answered write is committed. With durability `fsync` (the default) the commit waits for
PostgreSQL's WAL flush (`synchronous_commit = on`); push deliveries (durable=False) and the
whole `nosync` mode commit with `synchronous_commit = off`, which loses at most the last few
hundred milliseconds of commits if the database server (not taskq) crashes.

After each commit the local listener hears what changed, and other servers hear which queues
changed through a debounced NOTIFY (store/postgres/notify.py). A connection failure puts the
server out of service until the database answers again (`reopen`).
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import socket
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import psycopg

from taskq.core.errors import BackupNotSupported, StorageUnavailable, TaskqError
from taskq.store.base import Reader, StoreError
from taskq.store.database import Change, Durability, Listener, Mutation, Observer
from taskq.store.disk import DiskSpace
from taskq.store.postgres.notify import Notifier
from taskq.store.postgres.store import ConflictError, PgStore, QueryError, storage_error

log = logging.getLogger(__name__)

T = TypeVar("T")

#: How many times a mutation that lost a race is run again before its caller gets ABORTED.
MAX_ATTEMPTS = 20
#: Leadership lasts this long unless renewed (seconds); a new leader takes over within it.
LEADER_TTL_S = 6.0


class PgDatabase:
    """A Database (store/database.py) on PostgreSQL; see the module docstring."""

    #: This server shares the database with others: it may not release every push lease at
    #: start-up, and housekeeping runs only where leadership is held.
    exclusive = False
    #: Without a NOTIFY (missed while reconnecting), waiters look again at least this often
    #: (seconds; the server's `database_poll_interval_seconds`).
    poll_interval_s: float | None = 2.0

    def __init__(
        self,
        dsn: str,
        durability: Durability = Durability.FSYNC,
        listener: Listener | None = None,
        pool_size: int = 16,
        poll_interval_s: float = 2.0,
        *,
        notify_dsn: str | None = None,
        prepared_statements: bool = True,
    ) -> None:
        self._dsn = dsn
        #: LISTEN needs a session of its own: behind a transaction-mode pooler, point this at
        #: the database directly (docs/postgres.md).
        self._notify_dsn = notify_dsn or dsn
        self._prepared = prepared_statements
        self.poll_interval_s = poll_interval_s
        self._durability = durability
        self._pool_size = pool_size
        self.store: PgStore | None = None
        self._threads = ThreadPoolExecutor(pool_size, thread_name_prefix="taskq-pg")
        self._failed: str | None = None
        self._closing = False
        self.notifier: Notifier | None = None
        self.listener = listener
        self.observer: Observer | None = None
        #: The holder id this server uses for leadership rows.
        self.server_id = f"{socket.gethostname()}-{os.getpid()}-{random.getrandbits(32):08x}"
        self.space: DiskSpace | None = None  # no local disk to watch

    @property
    def failed(self) -> str | None:
        return self._failed

    async def open(self) -> None:
        self.store = await asyncio.to_thread(self._open_store)
        self.notifier = Notifier(self._notify_dsn, self._remote_wake)
        await self.notifier.start()

    def _open_store(self) -> PgStore:
        return PgStore(self._dsn, pool_size=self._pool_size, prepared_statements=self._prepared)

    async def close(self) -> None:
        self._closing = True
        if self.notifier is not None:
            await self.notifier.stop()
        store, self.store = self.store, None
        if store is not None:
            await asyncio.to_thread(store.close)
        self._threads.shutdown(wait=True)

    async def reopen(self) -> None:
        """After a failure: succeeds once the database answers again."""
        store = self.store
        if store is None:
            self.store = await asyncio.to_thread(self._open_store)
        else:
            await asyncio.to_thread(store.check)
        self._failed = None
        log.warning("the database answers again; writes are accepted again")

    async def maintain(self) -> None:
        """Nothing to do: PostgreSQL's autovacuum keeps the tables."""

    async def size_bytes(self) -> int | None:
        store = self._usable()
        try:
            return await asyncio.get_running_loop().run_in_executor(self._threads, store.size_bytes)
        except StoreError as error:
            raise StorageUnavailable(f"the database cannot be measured: {error}", retry_delay_seconds=1.0) from None

    async def backup(self, destination: str) -> None:
        raise BackupNotSupported(
            "taskq backup copies a RocksDB data directory; back up PostgreSQL with pg_dump or "
            "point-in-time recovery (docs/operations.md)"
        )

    # Reads and writes ---------------------------------------------------------------------

    def _usable(self) -> PgStore:
        if self._failed is not None or self.store is None:
            raise StorageUnavailable(
                f"the database cannot be reached: {self._failed or 'not open'}", retry_delay_seconds=1.0
            )
        return self.store

    async def read(self, fn: Callable[[Reader], T]) -> T:
        store = self._usable()
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._threads, fn, store)
        except QueryError as error:
            log.error("a read was refused by the database: %s", error)
            raise StorageUnavailable(f"the database refused a query: {error}", retry_delay_seconds=1.0) from None
        except StoreError as error:
            reason = str(error)
        await self._failure(reason)
        raise StorageUnavailable(f"the database cannot be reached: {reason}", retry_delay_seconds=1.0)

    async def write(self, mutation: Mutation[T], *, durable: bool = True, grows: bool = False) -> T:
        store = self._usable()
        if self._closing:
            raise StorageUnavailable("the server is shutting down", retry_delay_seconds=1.0)
        synchronous = durable and self._durability is Durability.FSYNC
        loop = asyncio.get_running_loop()
        try:
            report = self.listener.report_events if self.listener is not None else None
            result, change, seconds, attempts = await loop.run_in_executor(
                self._threads, self._transact, store, mutation, synchronous, report
            )
        except TaskqError:
            raise
        except QueryError as error:
            log.error("a write was refused by the database: %s", error)
            raise StorageUnavailable(f"the database refused a statement: {error}", retry_delay_seconds=1.0) from None
        except ConflictError as error:
            raise StorageUnavailable(
                f"the write kept conflicting with others ({MAX_ATTEMPTS} attempts): {error}", retry_delay_seconds=0.1
            ) from None
        except StoreError as error:
            reason = str(error)
            await self._failure(reason)
            raise StorageUnavailable(f"the database cannot be reached: {reason}", retry_delay_seconds=1.0) from None
        if self.observer is not None:
            self.observer.transaction_committed(seconds, attempts)
        for hook in change.after_commit:
            try:
                hook()
            except Exception:
                log.exception("an after-commit hook raised")
        if self.listener is not None:
            if change.woken:
                self.listener.woken(set(change.woken))
            if change.ended:
                self.listener.leases_ended(change.ended)
            if change.due_us is not None:
                self.listener.housekeeping_due(change.due_us)
        if change.woken and self.notifier is not None:
            self.notifier.publish(change.woken)
        return result

    @staticmethod
    def _transact(
        store: PgStore, mutation: Mutation[T], synchronous: bool, report: Callable[[list[Any]], None] | None
    ) -> tuple[T, Change, float, int]:
        """Runs the mutation in a transaction (in a worker thread), again after each conflict.
        Returns its result, its Change, the seconds it took (all runs) and how many runs."""
        started = time.perf_counter()
        for attempt in range(1, MAX_ATTEMPTS + 1):
            txn = store.begin()
            change = Change(txn, report)
            try:
                if not synchronous:
                    txn.conn.execute("SET LOCAL synchronous_commit = off")
                result = mutation(change)
            except BaseException as error:
                store.discard(txn)
                if isinstance(error, psycopg.Error):
                    converted = storage_error(error)
                    if isinstance(converted, ConflictError) and attempt < MAX_ATTEMPTS:
                        time.sleep(random.uniform(0, 0.002 * attempt))
                        continue
                    raise converted from error
                raise
            try:
                store.apply(txn)
            except ConflictError:
                if attempt < MAX_ATTEMPTS:
                    time.sleep(random.uniform(0, 0.002 * attempt))
                    continue
                raise
            return result, change, time.perf_counter() - started, attempt
        raise AssertionError("unreachable")

    async def _failure(self, reason: str) -> None:
        """A statement failed for want of the database: out of service, unless it answers (a
        single dropped connection, which the pool replaces)."""
        store = self.store
        if self._failed is not None or store is None:
            return
        try:
            await asyncio.to_thread(store.check)
            return  # it answers: that call failed alone
        except StoreError:
            pass
        if self._failed is None:
            self._failed = reason
            log.critical("the database cannot be reached; out of service until it answers: %s", reason)
            if self.listener is not None:
                self.listener.storage_failed(reason)

    # Leadership -----------------------------------------------------------------------------

    async def hold_leadership(self, name: str) -> bool:
        """Takes or renews leadership `name` for LEADER_TTL_S; whether this server holds it."""
        store = self._usable()
        loop = asyncio.get_running_loop()

        def claim() -> bool:
            with store._pool.connection() as conn:
                row = conn.execute(
                    "INSERT INTO taskq_leader (name, holder, expires_at) "
                    "VALUES (%s, %s, now() + make_interval(secs => %s)) "
                    "ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at "
                    "WHERE taskq_leader.holder = excluded.holder OR taskq_leader.expires_at < now() "
                    "RETURNING holder",
                    (name, self.server_id, LEADER_TTL_S),
                ).fetchone()
                conn.commit()
                return row is not None and row[0] == self.server_id

        try:
            return await loop.run_in_executor(self._threads, claim)
        except psycopg.Error as error:
            log.warning("leadership %s: %s", name, error)
            if isinstance(error, psycopg.OperationalError | psycopg.InterfaceError):
                # The renewal is this server's heartbeat on the database: an idle server, which
                # runs no other statement, learns here that the database cannot be reached and
                # reports NOT_SERVING (unless the database answers: one connection failed).
                await self._failure(f"the database failed: {' '.join(str(error).split())}")
            return False

    async def resign(self, name: str) -> None:
        store = self.store
        if store is None or self._failed is not None:
            return

        def give_up() -> None:
            with store._pool.connection() as conn:
                conn.execute("DELETE FROM taskq_leader WHERE name = %s AND holder = %s", (name, self.server_id))
                conn.commit()

        try:
            await asyncio.get_running_loop().run_in_executor(self._threads, give_up)
        except psycopg.Error as error:
            log.warning("resigning leadership %s: %s", name, error)

    def _remote_wake(self, queue_ids: set[str]) -> None:
        if self.listener is not None:
            self.listener.woken(queue_ids)

