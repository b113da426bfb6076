"""`taskq migrate` and the schema version of a PostgreSQL database: migrated once, checked,
and a database newer than the binary refused by the command and by the server."""

from __future__ import annotations

import psycopg
import pytest

from harness import ServerHarness
from taskq.app import StartupError
from taskq.cli.main import main
from taskq.store.postgres.schema import SCHEMA_VERSION


def test_migrate_applies_the_schema_once_and_check_reports_it(postgres_cluster, capsys):
    dsn = postgres_cluster.new_database()
    assert main(["migrate", "--database", dsn, "--check"]) == 3
    assert capsys.readouterr().out.startswith(f"schema 0; this taskq uses {SCHEMA_VERSION}")
    assert main(["migrate", "--database", dsn]) == 0
    assert capsys.readouterr().out.strip() == f"schema {SCHEMA_VERSION} (migrated from 0)"
    assert main(["migrate", "--database", dsn]) == 0
    assert "already there" in capsys.readouterr().out
    assert main(["migrate", "--database", dsn, "--check"]) == 0


def test_a_database_newer_than_this_taskq_is_refused(postgres_cluster, tmp_path, capsys):
    dsn = postgres_cluster.new_database()
    assert main(["migrate", "--database", dsn]) == 0
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("UPDATE taskq_meta SET value = %s WHERE key = 'schema_version'", (b"99",))
    capsys.readouterr()
    assert main(["migrate", "--database", dsn]) == 1
    assert "schema version 99" in capsys.readouterr().err
    with pytest.raises(StartupError, match="schema version 99"):
        ServerHarness(str(tmp_path / "data"), database=dsn)


def test_an_unreachable_database_is_one_line_and_status_1(capsys):
    assert main(["migrate", "--database", "host=127.0.0.1 port=1 dbname=none connect_timeout=2"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("taskq migrate: cannot use the database") and err.count("\n") == 1
