"""The PostgreSQL engine: a Store (store/base.py) on a pool of psycopg 3 connections.

Reads outside a transaction use a pooled connection in autocommit mode. `begin` takes a
connection from the pool for a transaction (READ COMMITTED, the default: every read that a
decision rests on locks its row, see reader.py), `apply` sends the buffered writes and commits,
`discard` rolls back; either way the connection goes back to the pool. `sync` does nothing:
a committed transaction is durable when `synchronous_commit` is on (the default; the `nosync`
durability mode turns it off per transaction, see store/postgres/database.py).

Errors: a lost connection or a database that cannot be reached is a StoreError (the storage
failed: the server goes out of service until it can reach the database again); a
serialization failure, a deadlock or a unique-key race is a ConflictError, after which the
caller runs its mutation again from the start.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from typing import Any

import psycopg
import psycopg.errors
from psycopg_pool import ConnectionPool

from taskq.core.model import Expiry, LeaseEntry, Promotion, Queue, Task
from taskq.store.base import ConflictError, StoreError
from taskq.store.faults import Faults
from taskq.store.postgres.reader import PgReader
from taskq.store.postgres.schema import migrate
from taskq.store.postgres.txn import PgTxn

log = logging.getLogger(__name__)

#: Errors after which a transaction is simply run again: it lost a race with another one.
RETRYABLE = (
    psycopg.errors.SerializationFailure,
    psycopg.errors.DeadlockDetected,
    psycopg.errors.UniqueViolation,
    psycopg.errors.LockNotAvailable,
    # A write into a queue another transaction deleted: run again, it finds no queue.
    psycopg.errors.ForeignKeyViolation,
)


class QueryError(StoreError):
    """The database refused one statement (not a lost connection): that call fails alone."""


def one_line(error: BaseException) -> str:
    """libpq's messages run over several lines (a hint after a tab): one line for logs and answers."""
    return " ".join(str(error).split())


def storage_error(error: Exception) -> StoreError:
    """The StoreError for a psycopg error: a conflict to run again, a connection lost (the
    storage failing), or one statement refused."""
    if isinstance(error, RETRYABLE):
        return ConflictError(one_line(error))
    if isinstance(error, psycopg.OperationalError | psycopg.InterfaceError):
        return StoreError(f"the database failed: {one_line(error)}")
    return QueryError(f"the database refused a statement: {one_line(error)}")


class _Rows:
    """The rows of one query, fetched."""

    def __init__(self, rows: list[Any]) -> None:
        self._rows = rows

    def fetchone(self) -> Any:
        return self._rows[0] if self._rows else None

    def fetchall(self) -> list[Any]:
        return self._rows


class _Pooled:
    """Runs each query on a connection from the pool, in autocommit mode: what a PgReader
    outside a transaction reads through."""

    def __init__(self, pool: ConnectionPool) -> None:
        self._pool = pool

    def execute(self, sql: str, params: tuple[Any, ...] = ()) -> _Rows:
        try:
            with self._pool.connection() as conn:
                conn.autocommit = True
                try:
                    cursor = conn.execute(sql, params)
                    return _Rows(cursor.fetchall() if cursor.description is not None else [])
                finally:
                    conn.autocommit = False
        except psycopg.Error as error:
            raise storage_error(error) from error
        except StoreError:
            raise
        except Exception as error:  # psycopg_pool.PoolTimeout: no connection to be had
            raise StoreError(f"no connection to the database: {error}") from error


class PgStore(PgReader):
    """A Store on a PostgreSQL database. See store/base.py for the contract."""

    def __init__(
        self, dsn: str, *, pool_size: int = 16, migrate_schema: bool = True, faults: Faults | None = None,
        prepared_statements: bool = True,
    ) -> None:
        self.faults = faults or Faults()
        self._dsn = dsn
        try:
            if migrate_schema:
                with psycopg.connect(dsn, autocommit=True, connect_timeout=10) as conn:
                    migrate(conn)
            self._pool = ConnectionPool(
                dsn, min_size=min(2, pool_size), max_size=pool_size, open=True, timeout=10,
                # Behind a transaction-mode PgBouncer older than 1.21, server-side prepared
                # statements (psycopg prepares a query run 5 times) must be turned off.
                kwargs={"autocommit": False, "connect_timeout": 10,
                        "prepare_threshold": 5 if prepared_statements else None},
                name="taskq",
            )
            self._pool.wait(timeout=10)
            with self._pool.connection() as conn:
                key = _page_token_key(conn)
                conn.commit()
        except psycopg.Error as error:
            raise StoreError(f"cannot use the database {_redacted(dsn)}: {one_line(error)}") from error
        except StoreError:
            raise
        except Exception as error:  # psycopg_pool.PoolTimeout and the like
            raise StoreError(f"cannot connect to the database {_redacted(dsn)}: {error}") from error
        super().__init__(_Pooled(self._pool), key)  # type: ignore[arg-type]

    # Scans consult the injected faults (store/faults.py) where the engines' scans end: one
    # that reached the end of its range, not one stopped by its limit or its reader.

    def tasks(self, queue: Queue, after: str, *, payloads: bool = True) -> Iterator[Task]:
        yield from super().tasks(queue, after, payloads=payloads)
        self.faults.on_scan_end()

    def waiting(self, queue: Queue, until_us: int, tag: str | None = None, limit: int = 1000) -> Iterator[Task]:
        returned = 0
        for task in super().waiting(queue, until_us, tag, limit):
            yield task
            returned += 1
        if returned < limit:
            self.faults.on_scan_end()

    def _scanned(self, found: Any, limit: int) -> Any:
        """A listing of up to `limit`: fewer means its scan reached the end."""
        if len(found) < limit:
            self.faults.on_scan_end()
        return found

    def _first(self, found: Any) -> Any:
        """The first entry of an index, or None: a scan that reached the end of an empty one."""
        if found is None:
            self.faults.on_scan_end()
        return found

    def oldest_waiting(self, queue: Queue) -> tuple[int, str] | None:
        return self._first(super().oldest_waiting(queue))

    def expired_leases(self, until_us: int, limit: int) -> list[LeaseEntry]:
        return self._scanned(super().expired_leases(until_us, limit), limit)

    def leases(self, after: LeaseEntry | None, limit: int) -> list[LeaseEntry]:
        return self._scanned(super().leases(after, limit), limit)

    def next_lease_expiry(self) -> int | None:
        return self._first(super().next_lease_expiry())

    def expiries(self, until_us: int, limit: int) -> list[Expiry]:
        return self._scanned(super().expiries(until_us, limit), limit)

    def next_expiry(self) -> int | None:
        return self._first(super().next_expiry())

    def promotions(self, until_us: int, limit: int) -> list[Promotion]:
        return self._scanned(super().promotions(until_us, limit), limit)

    def next_promotion(self) -> int | None:
        return self._first(super().next_promotion())

    def request_hours(self, before_hour: int, limit: int) -> list[tuple[int, int]]:
        return self._scanned(super().request_hours(before_hour, limit), limit)

    def first_request_hour(self) -> int | None:
        return self._first(super().first_request_hour())

    # Transactions -------------------------------------------------------------------------

    def begin(self) -> PgTxn:
        try:
            conn = self._pool.getconn()
        except Exception as error:
            raise StoreError(f"no connection to the database: {error}") from error
        return PgTxn(self, conn)

    def apply(self, txn: PgTxn) -> None:
        conn = txn.conn
        try:
            self.faults.on_write()
            txn.flush()
            conn.commit()
        except psycopg.Error as error:
            self._rollback(conn)
            raise storage_error(error) from error
        except BaseException:
            self._rollback(conn)
            raise
        finally:
            self._pool.putconn(conn)

    def discard(self, txn: PgTxn) -> None:
        self._rollback(txn.conn)
        self._pool.putconn(txn.conn)

    @staticmethod
    def _rollback(conn: psycopg.Connection) -> None:
        try:
            if not conn.closed:
                conn.rollback()
        except psycopg.Error:
            pass  # a broken connection: the pool replaces it

    def sync(self) -> None:
        self.faults.on_sync()

    def maintain(self) -> None:
        """Nothing: PostgreSQL's autovacuum does the housekeeping."""

    def check(self) -> None:
        """Raises StoreError unless the database answers."""
        try:
            with self._pool.connection(timeout=5) as conn:
                conn.execute("SELECT 1")
                conn.commit()
        except Exception as error:
            raise StoreError(f"the database does not answer: {error}") from error

    def size_bytes(self) -> int | None:
        """pg_database_size: every table and index of the database, taskq's and any other's."""
        try:
            with self._pool.connection(timeout=5) as conn:
                row = conn.execute("SELECT pg_database_size(current_database())").fetchone()
                conn.commit()
        except psycopg.Error as error:
            raise storage_error(error) from error
        return int(row[0]) if row else None

    def close(self) -> None:
        self._pool.close()


def _page_token_key(conn: psycopg.Connection) -> bytes:
    conn.execute(
        "INSERT INTO taskq_meta (key, value) VALUES ('page_token_key', %s) ON CONFLICT (key) DO NOTHING",
        (os.urandom(32),),
    )
    row = conn.execute("SELECT value FROM taskq_meta WHERE key = 'page_token_key'").fetchone()
    assert row is not None
    return bytes(row[0])


def _redacted(dsn: str) -> str:
    """The connection string without its password, for messages."""
    try:
        info = psycopg.conninfo.conninfo_to_dict(dsn)
    except psycopg.Error:
        return "(unparsable connection string)"
    if "password" in info:
        info["password"] = "***"
    return psycopg.conninfo.make_conninfo("", **info)
