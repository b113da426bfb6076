"""Fixtures of the multi-replica tests: three `taskq serve` processes on one fresh database.

`replicas()` starts them on a new database of the session's PostgreSQL cluster (or of the
cluster given); they are stopped at the end of the test, and when the test failed, the end of
each server's log is printed with its report. `private_cluster` is a cluster of the module's
own, for tests that stop or restart PostgreSQL under the servers.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from replica_support import ClientLog, Replicas  # noqa: E402


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Keeps each phase's report on the test item, so that fixtures know whether it failed."""
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"report_{report.when}", report)


@pytest.fixture
def replicas(request, tmp_path):
    """`replicas(count=3, extra=(...), per_replica={i: (...)}, dsn=None)`: servers on a fresh
    database of the session's cluster (or on `dsn`)."""
    started: list[Replicas] = []

    def start(count: int = 3, extra=(), per_replica=None, dsn: str | None = None) -> Replicas:
        if dsn is None:
            dsn = request.getfixturevalue("postgres_cluster").new_database()
        directory = tmp_path / f"replicas-{len(started)}"
        directory.mkdir()
        group = Replicas(directory, dsn, count, extra, per_replica)
        started.append(group)
        return group

    yield start
    failed = getattr(request.node, "report_call", None) is not None and request.node.report_call.failed
    for group in started:
        group.close()
        if failed:
            print(group.log_tails())


@pytest.fixture
def client_log():
    """What the workers of the test logged about failed streams and leases."""
    log = ClientLog()
    yield log
    log.close()


@pytest.fixture(scope="module")
def private_cluster():
    """A PostgreSQL cluster for this module alone: its tests stop and restart it, which the
    session's cluster (every other test's) must not see. Skipped like `postgres_cluster`."""
    from postgres_cluster import PostgresCluster, binaries

    if binaries() is None:
        if os.environ.get("TASKQ_REQUIRE_POSTGRES"):
            pytest.fail("PostgreSQL is not installed (make test installs Debian's postgresql package)")
        pytest.skip("PostgreSQL is not installed")
    cluster = PostgresCluster().start()
    yield cluster
    cluster.close()
