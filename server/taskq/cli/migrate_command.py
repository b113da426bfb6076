"""`taskq migrate`: brings a PostgreSQL database to this taskq's schema, or says where it is.

Servers migrate by themselves at start-up (under an advisory lock, so replicas starting
together migrate once); this command does it ahead of a rolling upgrade, or checks. Exit
status: 0 done (or, with --check, nothing to do); 1 the database cannot be used or is newer
than this taskq; 3 with --check, a migration is needed; 2 a usage error.
"""

from __future__ import annotations

import argparse
import os
import sys

import psycopg

from taskq.store.base import StoreError
from taskq.store.postgres.schema import SCHEMA_VERSION, migrate, stored_version
from taskq.store.postgres.store import one_line

#: Exit status of `--check` when the database needs migrating.
NEEDS_MIGRATION = 3


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "migrate", help="bring a PostgreSQL database to this taskq's schema",
        description="Apply taskq's schema migrations to a PostgreSQL database (servers also do it at start-up).",
    )
    parser.add_argument("--database", help="PostgreSQL connection string (default: $TASKQ_DATABASE)")
    parser.add_argument("--check", action="store_true",
                        help=f"change nothing; exit {NEEDS_MIGRATION} if a migration is needed")
    parser.set_defaults(run=run)


def run(arguments: argparse.Namespace) -> int:
    database = arguments.database or os.environ.get("TASKQ_DATABASE")
    if not database:
        print("taskq migrate: give --database (or TASKQ_DATABASE)", file=sys.stderr)
        return 2
    try:
        with psycopg.connect(database, autocommit=True, connect_timeout=10) as conn:
            if arguments.check:
                version = stored_version(conn)
                if version > SCHEMA_VERSION:
                    print(f"taskq migrate: the database is at schema {version}, newer than this taskq "
                          f"({SCHEMA_VERSION})", file=sys.stderr)
                    return 1
                print(f"schema {version}; this taskq uses {SCHEMA_VERSION}")
                return NEEDS_MIGRATION if version < SCHEMA_VERSION else 0
            before, after = migrate(conn)
    except psycopg.Error as error:
        print(f"taskq migrate: cannot use the database: {one_line(error)}", file=sys.stderr)
        return 1
    except StoreError as error:
        print(f"taskq migrate: {error}", file=sys.stderr)
        return 1
    print(f"schema {after}" + (f" (migrated from {before})" if before != after else " (already there)"))
    return 0
