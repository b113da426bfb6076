"""A throwaway PostgreSQL cluster for the PostgreSQL scenarios (g, h): the tests' own
(tests/postgres_cluster.py, loaded by path: initdb in a temporary directory, a server on a free
port of 127.0.0.1, run as the `postgres` user when root), wrapped so that the harness can

- make one fresh database per system run and drop it afterwards (`new_database`, `drop`),
- start every run from a checkpoint, so no run pays for the previous one's dirty pages,
- measure the CPU time of the whole cluster (`cpu_seconds`: the postmaster, every process it
  runs — backends, WAL writer, checkpointer, autovacuum — and those that already exited),
- stop it with the other servers (`peers.stop_all`, also after an error or Ctrl-C).

The cluster keeps PostgreSQL's durability defaults (fsync on, synchronous_commit on,
full_page_writes on); `settings()` reads them back from the server, for the report.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import subprocess
import time
from types import ModuleType

from bench import peers

CLUSTER_MODULE = peers.ROOT / "tests" / "postgres_cluster.py"
#: The settings the report quotes: read from the running server, not assumed.
REPORTED_SETTINGS = ("fsync", "synchronous_commit", "full_page_writes", "wal_level", "shared_buffers",
                     "max_connections", "commit_delay", "checkpoint_timeout", "max_wal_size")


def _cluster_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("taskq_bench_postgres_cluster", CLUSTER_MODULE)
    if spec is None or spec.loader is None:
        raise peers.PeerUnavailable(f"cannot load {CLUSTER_MODULE}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def binaries() -> str | None:
    return _cluster_module().binaries()


def ensure_installed(*, log=print) -> None:
    """Installs PostgreSQL's binaries (tools/install-postgres.sh) when they are missing."""
    if binaries():
        return
    log("installing PostgreSQL with tools/install-postgres.sh")
    done = subprocess.run(["bash", str(peers.ROOT / "tools" / "install-postgres.sh")], check=False)
    if done.returncode != 0 or not binaries():
        raise peers.PeerUnavailable("PostgreSQL is not installed and tools/install-postgres.sh could not install it")


def _proc_times(pid: int) -> tuple[int, int]:
    """(utime + stime, cutime + cstime) of a process, in clock ticks."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rpartition(")")[2].split()
    # After the command: state is fields[0], so utime/stime/cutime/cstime are fields[11:15].
    return int(fields[11]) + int(fields[12]), int(fields[13]) + int(fields[14])


def _children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        with contextlib.suppress(OSError):
            with open(f"/proc/{entry}/stat") as stat:
                fields = stat.read().rpartition(")")[2].split()
            if int(fields[1]) == pid:
                found.append(int(entry))
    return found


class PgCluster:
    """One throwaway cluster (see the module docstring); registered with peers.stop_all."""

    label = "PostgreSQL"

    def __init__(self) -> None:
        self._module = _cluster_module()
        self._cluster = None
        self.startup_s: float | None = None

    def start(self) -> PgCluster:
        started = time.monotonic()
        self._cluster = self._module.PostgresCluster(fsync=True)
        peers._RUNNING.append(self)  # stopped by peers.stop_all() too
        self._cluster.start()
        self.startup_s = round(time.monotonic() - started, 2)
        return self

    @property
    def port(self) -> int:
        return self._cluster.port

    def _connect(self, dsn: str | None = None):
        import psycopg

        return psycopg.connect(dsn or self._cluster.dsn(), autocommit=True, connect_timeout=10)

    def new_database(self) -> str:
        """A fresh, empty database; its libpq connection string."""
        return self._cluster.new_database()

    def drop(self, dsn: str) -> None:
        """Drops a database made by `new_database` (its connections are ended first)."""
        import psycopg

        name = psycopg.conninfo.conninfo_to_dict(dsn)["dbname"]
        with self._connect() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def analyze(self, dsn: str) -> None:
        """Fresh planner statistics for the database of `dsn` (after a bulk load, as autovacuum
        would eventually give them: without them the plans of the first queries vary by run)."""
        with self._connect(dsn) as conn:
            conn.execute("ANALYZE")

    def checkpoint(self) -> None:
        with self._connect() as conn:
            conn.execute("CHECKPOINT")

    def settings(self) -> dict[str, str]:
        with self._connect() as conn:
            rows = conn.execute("SELECT name, setting, unit FROM pg_settings WHERE name = ANY(%s)",
                                (list(REPORTED_SETTINGS),)).fetchall()
        return {name: setting + (f" ({unit})" if unit else "") for name, setting, unit in rows}

    def activity(self, dsn: str) -> dict[str, int]:
        """Cumulative counters of the database of `dsn` and of the cluster's WAL: subtract two
        of them for the work done in between (commits, rows, WAL records, bytes and fsyncs).
        Backends report their counts at most every second and when they exit, so read the
        final one after the system's connections are closed."""
        import psycopg

        name = psycopg.conninfo.conninfo_to_dict(dsn)["dbname"]
        with self._connect() as conn:
            database = conn.execute(
                "SELECT xact_commit, xact_rollback, tup_inserted, tup_updated, tup_deleted, "
                "pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint FROM pg_stat_database WHERE datname = %s",
                (name,)).fetchone()
            wal = conn.execute("SELECT wal_records, wal_fpi, wal_write, wal_sync FROM pg_stat_wal").fetchone()
        keys = ("commits", "rollbacks", "rows_inserted", "rows_updated", "rows_deleted", "wal_bytes",
                "wal_records", "wal_full_page_images", "wal_writes", "wal_syncs")
        return dict(zip(keys, (int(v) for v in (*database, *wal))))

    def wait_idle(self, dsn: str, timeout: float = 5.0) -> None:
        """Waits until nobody is connected to the database of `dsn` (so every backend that
        served it has exited and reported its counts), at most `timeout` seconds."""
        import psycopg

        name = psycopg.conninfo.conninfo_to_dict(dsn)["dbname"]
        deadline = time.monotonic() + timeout
        with self._connect() as conn:
            while time.monotonic() < deadline:
                row = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s", (name,)).fetchone()
                if not row[0]:
                    return
                time.sleep(0.02)

    def version(self) -> str:
        with self._connect() as conn:
            return conn.execute("SHOW server_version").fetchone()[0]

    def postmaster_pid(self) -> int:
        with open(os.path.join(self._cluster.data, "postmaster.pid")) as pid_file:
            return int(pid_file.readline())

    def cpu_seconds(self) -> float:
        """User + system CPU of the cluster so far: the postmaster's own, its live children's,
        and (cutime/cstime) that of the children it has reaped, i.e. backends that exited."""
        postmaster = self.postmaster_pid()
        own, reaped = _proc_times(postmaster)
        ticks = own + reaped
        for child in _children(postmaster):
            with contextlib.suppress(OSError):
                ticks += _proc_times(child)[0]
        return ticks / os.sysconf("SC_CLK_TCK")

    def backends(self) -> int:
        return len(_children(self.postmaster_pid()))

    def log_tail(self, lines: int = 20) -> str:
        with contextlib.suppress(OSError), open(os.path.join(self._cluster.directory, "server.log"),
                                                 errors="replace") as log:
            return "".join(log.readlines()[-lines:])
        return ""

    def stop(self) -> None:
        if self in peers._RUNNING:
            peers._RUNNING.remove(self)
        if self._cluster is not None:
            cluster, self._cluster = self._cluster, None
            cluster.close()

    def __enter__(self) -> PgCluster:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def url_of(dsn: str) -> str:
    """The postgresql:// URL of a libpq key=value connection string (asyncpg takes URLs)."""
    import psycopg

    info = psycopg.conninfo.conninfo_to_dict(dsn)
    user = info.get("user", "postgres")
    return f"postgresql://{user}@{info.get('host', '127.0.0.1')}:{info.get('port', 5432)}/{info['dbname']}"
