"""When the disk fails, through the real API: a failed fsync or write is never answered OK, the
server says NOT_SERVING while it reopens the database, and it serves again by itself; a scan
that fails mid-way is an error, never a short answer. Failures are injected into the store
(store/faults.py); the same object outlives reopening, as a failing disk would."""

from __future__ import annotations

import threading

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from harness import error_reason, eventually
from taskq.v1 import task_service_pb2

# Failures injected into RocksDB (its faults and its reopening); PostgreSQL's own failures are
# tested with a real database restart in tests/postgres/.
pytestmark = pytest.mark.engines("rocksdb")

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


def health(server, service: str = "") -> int:
    stub = health_pb2_grpc.HealthStub(server.channel)
    return stub.Check(health_pb2.HealthCheckRequest(service=service)).status


def refused(call) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as raised:
        call()
    return raised.value.code(), error_reason(raised.value)


@pytest.fixture
def held_reopen(server):
    """Holds the server's reopening of its database until the test sets the event, so the
    test can look at the server while it is out of service."""
    gate = threading.Event()
    db = server.engine.db
    original = db.open_store

    def open_when_released():
        gate.wait(30)
        return original()

    db.open_store = open_when_released
    yield gate
    gate.set()


def test_a_failed_fsync_is_never_answered_ok_and_the_server_recovers_by_itself(server, held_reopen):
    server.create_queue("q")
    kept = server.create_task("q", b"kept")
    server.server.faults.failing_syncs = 1
    assert refused(lambda: server.create_task("q", b"unsure")) == (
        grpc.StatusCode.UNAVAILABLE, "STORAGE_UNAVAILABLE"
    )
    assert health(server) == NOT_SERVING
    assert health(server, "liveness") == SERVING  # out of service, not dead: no restart needed
    assert refused(lambda: server.create_task("q", b"later"))[0] == grpc.StatusCode.UNAVAILABLE
    held_reopen.set()
    eventually(lambda: health(server) == SERVING)
    assert server.get_task(kept.name).payload == b"kept"
    after = server.create_task("q", b"after")
    assert server.get_task(after.name).payload == b"after"


def test_writes_failing_for_want_of_space_resume_once_it_is_back(server):
    server.create_queue("q")
    faults = server.server.faults
    faults.failing_writes = "IO error: No space left on device"
    assert refused(lambda: server.create_task("q", b"x"))[0] == grpc.StatusCode.UNAVAILABLE
    # Reopening fails while the disk is still full: the server stays out of service...
    eventually(lambda: health(server) == NOT_SERVING)
    assert refused(lambda: server.create_task("q", b"x"))[0] == grpc.StatusCode.UNAVAILABLE
    # ...and is back once space is.
    faults.failing_writes = ""
    eventually(lambda: health(server) == SERVING)
    server.create_task("q", b"x")
    assert server.stats("q").tasks_count >= 1


def test_a_scan_that_fails_mid_way_is_an_error_not_a_short_answer(server):
    server.create_queue("q")
    for index in range(5):
        server.create_task("q", b"x", name=f"queues/q/tasks/t{index}")
    server.server.faults.failing_scans = "Corruption: block checksum mismatch"
    code, reason = refused(lambda: server.tasks.ListTasks(task_service_pb2.ListTasksRequest(parent="queues/q")))
    assert (code, reason) == (grpc.StatusCode.UNAVAILABLE, "STORAGE_UNAVAILABLE")
    server.server.faults.failing_scans = ""
    eventually(lambda: health(server) == SERVING)
    listed = server.tasks.ListTasks(task_service_pb2.ListTasksRequest(parent="queues/q")).tasks
    assert [task.name for task in listed] == [f"queues/q/tasks/t{index}" for index in range(5)]
