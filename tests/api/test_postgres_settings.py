"""Settings for running behind a connection pooler: wake-ups LISTENed for on a connection string
of their own, and no server-side prepared statements."""

from __future__ import annotations

import psycopg
import pytest

from harness import ServerHarness, Stream, push_queue

pytestmark = pytest.mark.engines("postgres")


def test_wakeups_cross_servers_through_the_notify_connection_string(server, tmp_path, postgres_cluster):
    dsn = server.settings["database"]
    # The other server's poll backstop is an hour: only a NOTIFY, LISTENed for on the separate
    # connection string, can bring it the task in time.
    other = ServerHarness(
        str(tmp_path / "other"), database=dsn, database_notify=dsn + " application_name=taskq-listener",
        database_poll_interval_seconds=3600,
    )
    try:
        push_queue(server)
        stream = Stream(other.channel, "push", 10)
        created = server.create_task("push", b"x")
        [delivered] = stream.tasks(1)
        assert delivered.name == created.name
        with psycopg.connect(dsn) as conn:
            listeners = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'taskq-listener'"
            ).fetchone()
        assert listeners is not None and listeners[0] >= 1  # its listening connection
        stream.close()
    finally:
        other.close()


def test_a_server_without_prepared_statements_serves_every_kind_of_call(postgres_cluster, tmp_path):
    # (Whether a statement was prepared is visible only inside the session that prepared it;
    # what this shows is that the setting reaches psycopg and every path still works.)
    dsn = postgres_cluster.new_database() + " application_name=taskq-unprepared"
    server = ServerHarness(str(tmp_path / "data"), database=dsn, database_prepared_statements="off")
    try:
        server.create_queue("q")
        for _ in range(10):  # psycopg would prepare a statement run 5 times
            server.create_task("q", b"x")
        [leased] = server.lease("q", max_tasks=1)
        server.ack(leased)
        assert server.stats("q").tasks_count == 9
    finally:
        server.close()
