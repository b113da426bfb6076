"""A throwaway PostgreSQL cluster for the tests: initdb in a temporary directory, a server on a
free port on 127.0.0.1 (and a socket in that directory), stopped and removed at the end. Never
a system service. Debian's `postgresql` package provides the binaries (`make test` installs it
when missing); as root, the cluster runs as the `postgres` user, since PostgreSQL refuses root.

    with PostgresCluster() as cluster:
        dsn = cluster.new_database()      # a fresh, empty database for one test
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid

import psycopg


def binaries() -> str | None:
    """The directory of initdb/pg_ctl, or None when PostgreSQL is not installed."""
    found = shutil.which("pg_config")
    if found:
        bindir = subprocess.run([found, "--bindir"], capture_output=True, text=True).stdout.strip()
        if os.path.exists(os.path.join(bindir, "initdb")):
            return bindir
    for candidate in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if os.path.exists(os.path.join(candidate, "initdb")):
            return candidate
    return None


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class PostgresCluster:
    def __init__(self, fsync: bool = True) -> None:
        self.bindir = binaries()
        if self.bindir is None:
            raise RuntimeError("PostgreSQL is not installed (Debian: apt-get install postgresql)")
        self.fsync = fsync
        self.directory = tempfile.mkdtemp(prefix="taskq-pg-")
        self.data = os.path.join(self.directory, "data")
        self.port = free_port()
        self._as_postgres = os.geteuid() == 0

    def _run(self, *command: str, check: bool = True) -> subprocess.CompletedProcess:
        argv = list(command)
        if self._as_postgres:
            argv = ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups", "--", *argv]
        return subprocess.run(argv, capture_output=True, text=True, check=check, timeout=120)

    def start(self) -> PostgresCluster:
        if self._as_postgres:
            shutil.chown(self.directory, "postgres", "postgres")
        self._run(os.path.join(self.bindir, "initdb"), "-D", self.data, "-U", "postgres", "--auth=trust",
                  "--no-instructions", "-E", "UTF8", "--locale=C")
        settings = [
            f"port = {self.port}", "listen_addresses = '127.0.0.1'", f"unix_socket_directories = '{self.directory}'",
            "max_connections = 300", "shared_buffers = 128MB", f"fsync = {'on' if self.fsync else 'off'}",
            "log_min_messages = warning", "logging_collector = off",
        ]
        with open(os.path.join(self.data, "postgresql.conf"), "a") as conf:
            conf.write("\n".join(settings) + "\n")
        if self._as_postgres:
            shutil.chown(os.path.join(self.data, "postgresql.conf"), "postgres", "postgres")
        self._pg_ctl("start", "-w", "-t", "60", "-l", os.path.join(self.directory, "server.log"))
        return self

    def _pg_ctl(self, *arguments: str, check: bool = True) -> subprocess.CompletedProcess:
        return self._run(os.path.join(self.bindir, "pg_ctl"), "-D", self.data, *arguments, check=check)

    def dsn(self, database: str = "postgres") -> str:
        return f"host=127.0.0.1 port={self.port} user=postgres dbname={database}"

    def new_database(self, template: str | None = None) -> str:
        """A fresh database, empty or a copy of the database of the connection string
        `template` (nobody may be connected to it); returns its connection string."""
        name = f"t_{uuid.uuid4().hex[:12]}"
        copy = ""
        if template is not None:
            copy = f" TEMPLATE {psycopg.conninfo.conninfo_to_dict(template)['dbname']}"
        with psycopg.connect(self.dsn(), autocommit=True) as conn:
            if template is not None:
                # A server that used it may still be disconnecting: nobody may be on a template.
                conn.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
                    (psycopg.conninfo.conninfo_to_dict(template)["dbname"],),
                )
            conn.execute(f"CREATE DATABASE {name}{copy}")
        return self.dsn(name)

    def stop(self, mode: str = "fast") -> None:
        self._pg_ctl("stop", "-m", mode, "-w", check=False)

    def restart(self) -> None:
        """Stops the server (as a crash would: `immediate`) and starts it again on its data."""
        self.stop("immediate")
        self._pg_ctl("start", "-w", "-t", "60", "-l", os.path.join(self.directory, "server.log"))

    def wait_ready(self, seconds: float = 30) -> None:
        deadline = time.monotonic() + seconds
        while True:
            try:
                with psycopg.connect(self.dsn(), connect_timeout=2):
                    return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def close(self) -> None:
        self.stop("immediate")
        pid_file = os.path.join(self.data, "postmaster.pid")
        if os.path.exists(pid_file):  # pg_ctl failed to stop it: kill it
            try:
                os.kill(int(open(pid_file).readline()), signal.SIGKILL)
            except (OSError, ValueError):
                pass
        shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> PostgresCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
