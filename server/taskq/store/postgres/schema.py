"""The PostgreSQL schema, as numbered migrations: the one place that knows it.

`migrate` brings a database to SCHEMA_VERSION at start-up (and `taskq migrate` does it alone):
under an advisory lock, so replicas starting together migrate once; each migration in its own
transaction with its version, so a crash leaves the database at the last complete one. A
database whose version is newer than this server knows is refused: an older binary must not
write into a layout it does not understand.

Tables (all prefixed `taskq_`, so taskq can share a database with an application):

    meta        key -> value: schema_version, page_token_key
    queues      a queue's configuration (records.proto QueueRecord), by storage id and name
    tasks       one row per task: the columns the indexes need, the packed record
                (store/task_record.py, without its payload), and the payload apart, so that a
                lease or an ack rewrites a small row and never the payload (TOAST keeps it)
    tombstones  reserved names of finished tasks, until expire_us
    requests    create idempotency keys, by the hour they were made in
    acks        acknowledged tasks' lease tokens, by the hour, for retried acknowledgements
    counters    task counts per queue, in STRIPES rows that transactions update at random, so
                no single row is written by every transaction; read as their sum
    buckets     push queues' token buckets (locked by each dispatch transaction: the lock that
                makes rate limits and concurrency caps hold across servers)
    leader      one row per kind of leadership: who holds it, until when

Every row of a queue's tasks, names, keys, counters and bucket references its queue (ON DELETE
CASCADE): deleting a queue deletes them in the same transaction, and a transaction that would
write into a queue deleted meanwhile fails (and is run again, to find the queue gone) instead
of leaving rows no reader would ever find.

Tasks carry `counted_ready`: whether the queue's counters count the waiting task as ready (its
schedule time had passed when it was last written or promoted) or as scheduled. Promotion
flips it in bounded batches (Txn.promote), so counting needs no shared boundary row.

Changing the schema: append a migration to MIGRATIONS (never edit a released one), which
bumps SCHEMA_VERSION; add a test that migrates a database of the previous version.
"""

from __future__ import annotations

import psycopg

from taskq.store.base import StoreError

#: Counter rows per queue (see the module docstring).
STRIPES = 16

#: Advisory lock key held while migrating (an arbitrary constant: "taskq" in ASCII).
MIGRATION_LOCK = 0x7461736B71

MIGRATIONS: list[str] = [
    # 1: the first schema.
    """
    CREATE TABLE taskq_meta (key text PRIMARY KEY, value bytea NOT NULL);
    CREATE SEQUENCE taskq_storage_ids;
    CREATE TABLE taskq_queues (
        storage_id integer PRIMARY KEY,
        queue_id text NOT NULL UNIQUE,
        record bytea NOT NULL,
        purging boolean NOT NULL DEFAULT false,
        dead_letter_queue text NOT NULL DEFAULT ''
    );
    CREATE INDEX taskq_queues_purging ON taskq_queues (queue_id) WHERE purging;
    CREATE INDEX taskq_queues_dead_letter ON taskq_queues (dead_letter_queue) WHERE dead_letter_queue <> '';
    CREATE TABLE taskq_tasks (
        storage_id integer NOT NULL REFERENCES taskq_queues (storage_id) ON DELETE CASCADE,
        task_id text NOT NULL,
        stage smallint NOT NULL,
        schedule_us bigint NOT NULL,
        tag text NOT NULL,
        lease_expire_us bigint NOT NULL,
        retain_until_us bigint NOT NULL,
        counted_ready boolean NOT NULL,
        record bytea NOT NULL,
        payload bytea NOT NULL,
        PRIMARY KEY (storage_id, task_id)
    ) WITH (fillfactor = 70, autovacuum_vacuum_scale_factor = 0.01, autovacuum_vacuum_cost_delay = 0);
    CREATE INDEX taskq_tasks_waiting ON taskq_tasks (storage_id, schedule_us, task_id) WHERE stage = 1;
    CREATE INDEX taskq_tasks_waiting_tag ON taskq_tasks (storage_id, tag, schedule_us, task_id) WHERE stage = 1;
    CREATE INDEX taskq_tasks_leases ON taskq_tasks (lease_expire_us, storage_id, task_id) WHERE stage = 2;
    CREATE INDEX taskq_tasks_failed ON taskq_tasks (retain_until_us, storage_id, task_id) WHERE stage = 3;
    CREATE INDEX taskq_tasks_to_promote ON taskq_tasks (schedule_us, storage_id) WHERE stage = 1 AND NOT counted_ready;
    CREATE INDEX taskq_tasks_queue_to_promote ON taskq_tasks (storage_id, schedule_us, task_id)
        WHERE stage = 1 AND NOT counted_ready;
    CREATE TABLE taskq_tombstones (
        storage_id integer NOT NULL REFERENCES taskq_queues (storage_id) ON DELETE CASCADE,
        task_id text NOT NULL,
        expire_us bigint NOT NULL,
        PRIMARY KEY (storage_id, task_id)
    );
    CREATE INDEX taskq_tombstones_expiry ON taskq_tombstones (expire_us, storage_id, task_id);
    CREATE TABLE taskq_requests (
        storage_id integer NOT NULL REFERENCES taskq_queues (storage_id) ON DELETE CASCADE,
        request_id text NOT NULL,
        hour integer NOT NULL,
        record bytea NOT NULL,
        PRIMARY KEY (storage_id, request_id)
    );
    CREATE INDEX taskq_requests_hour ON taskq_requests (hour, storage_id);
    CREATE TABLE taskq_acks (
        storage_id integer NOT NULL REFERENCES taskq_queues (storage_id) ON DELETE CASCADE,
        task_id text NOT NULL,
        hour integer NOT NULL,
        token text NOT NULL,
        PRIMARY KEY (storage_id, task_id)
    );
    CREATE INDEX taskq_acks_hour ON taskq_acks (hour, storage_id);
    CREATE TABLE taskq_counters (
        storage_id integer NOT NULL REFERENCES taskq_queues (storage_id) ON DELETE CASCADE,
        stripe smallint NOT NULL,
        scheduled bigint NOT NULL DEFAULT 0,
        ready bigint NOT NULL DEFAULT 0,
        leased bigint NOT NULL DEFAULT 0,
        failed bigint NOT NULL DEFAULT 0,
        PRIMARY KEY (storage_id, stripe)
    );
    CREATE TABLE taskq_buckets (
        storage_id integer PRIMARY KEY REFERENCES taskq_queues (storage_id) ON DELETE CASCADE,
        tokens double precision NOT NULL,
        updated_us bigint NOT NULL
    );
    CREATE TABLE taskq_leader (
        name text PRIMARY KEY,
        holder text NOT NULL,
        expires_at timestamptz NOT NULL
    );
    """,
]

SCHEMA_VERSION = len(MIGRATIONS)


def stored_version(conn: psycopg.Connection) -> int:
    """The schema version of the database (0 for one taskq never used)."""
    # Read pg_class under the statement's snapshot rather than with to_regclass(): to_regclass
    # resolves the name through the backend's catalog cache without taking a lock, and a
    # transaction that waited for the migration lock while another server created the tables
    # has not yet taken in that news: it would find no table and create them again ("relation
    # taskq_meta already exists").
    exists = conn.execute(
        "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
        "WHERE c.relname = 'taskq_meta' AND n.nspname = ANY (current_schemas(false)))"
    ).fetchone()
    if not exists or not exists[0]:
        return 0
    row = conn.execute("SELECT value FROM taskq_meta WHERE key = 'schema_version'").fetchone()
    return int(bytes(row[0]).decode()) if row else 0


def migrate(conn: psycopg.Connection) -> tuple[int, int]:
    """Brings the database to SCHEMA_VERSION; returns (version before, version after). `conn`
    must be in autocommit mode. Raises StoreError for a database newer than this server."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
        before = stored_version(conn)
    if before > SCHEMA_VERSION:
        raise StoreError(
            f"the database has taskq schema version {before}; this server knows versions up to "
            f"{SCHEMA_VERSION}: run a newer taskq (an older one must not write into a newer layout)"
        )
    version = before
    while version < SCHEMA_VERSION:
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
            version = stored_version(conn)  # another server may have migrated meanwhile
            if version >= SCHEMA_VERSION:
                break
            conn.execute(MIGRATIONS[version])
            version += 1
            conn.execute(
                "INSERT INTO taskq_meta (key, value) VALUES ('schema_version', %s) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (str(version).encode(),),
            )
    return before, version
