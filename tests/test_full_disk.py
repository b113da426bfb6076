"""A real full disk: `taskq serve` in a private mount namespace whose data directory is a 64 MiB
tmpfs holding a 12 MiB filler file (the reproduction of the robustness issue), filled with
256 KiB tasks. With its reserve, the server refuses new tasks before the disk is full, keeps
taking acknowledgements, reports NOT_SERVING, and takes tasks again once the filler is deleted.
Without the reserve, the write-ahead log itself hits ENOSPC: the server fails the write,
reports NOT_SERVING, reopens the database once space is back and serves again. Either way it
stops cleanly on SIGTERM and starts again on the same directory.

The namespace (unshare --user --mount) needs no privileges; the test is skipped, saying why,
where the kernel does not allow unprivileged user namespaces."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from harness import error_reason, eventually
from processes import ServerProcess
from taskq.v1 import (
    queue_pb2,
    queue_service_pb2,
    queue_service_pb2_grpc,
    task_pb2,
    task_service_pb2,
    task_service_pb2_grpc,
)

MIB = 1024 * 1024
TASK = os.urandom(256 * 1024)  # incompressible, as payloads often are


class SmallDisk:
    """A tmpfs of `size_mib` in a mount namespace kept alive by a sleeping process."""

    def __init__(self, mount_point: Path, size_mib: int) -> None:
        self.mount_point = mount_point
        #: Servers started on the disk (stopped at the end of the test, whatever happened).
        self.servers: list[ServerProcess] = []
        self.holder = subprocess.Popen(
            ["unshare", "--user", "--map-root-user", "--mount", "sh", "-c",
             f"mount -t tmpfs -o size={size_mib}m tmpfs {mount_point} && echo ready && exec sleep 3600"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        ready = self.holder.stdout.readline().strip()
        if ready != "ready":
            self.holder.kill()
            raise OSError(self.holder.stderr.read().strip() or "unshare failed")

    def path(self, name: str) -> Path:
        """`name` inside the tmpfs, as seen from outside the namespace."""
        return Path(f"/proc/{self.holder.pid}/root{self.mount_point}") / name

    def prefix(self) -> list[str]:
        """Runs a command inside the namespace (same network, so its port is reachable)."""
        return ["nsenter", f"--target={self.holder.pid}", "--user", "--mount", "--preserve-credentials"]

    def close(self) -> None:
        self.holder.kill()
        self.holder.wait()


@pytest.fixture
def small_disk(tmp_path) -> Iterator[SmallDisk]:
    if shutil.which("unshare") is None or shutil.which("nsenter") is None:
        pytest.skip("unshare and nsenter (util-linux) are needed for a private tmpfs")
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    try:
        disk = SmallDisk(mount_point, 64)
    except OSError as error:
        pytest.skip(f"this kernel does not allow a private tmpfs in a user namespace: {error}")
    disk.path("filler").write_bytes(b"\0" * (12 * MIB))
    yield disk
    for server in disk.servers:  # a test that failed midway leaves no server running
        if server.process.poll() is None:
            server.process.kill()
            server.process.wait()
    disk.close()


def start(disk: SmallDisk, *options: str) -> ServerProcess:
    server = ServerProcess(disk.mount_point / "data", "--write-buffer-mb", "4", *options, prefix=disk.prefix())
    disk.servers.append(server)
    return server


def status(server: ServerProcess) -> int:
    stub = health_pb2_grpc.HealthStub(server.channel)
    return stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=5).status


def create(server: ServerProcess) -> task_pb2.Task:
    stub = task_service_pb2_grpc.TaskServiceStub(server.channel)
    request = task_service_pb2.CreateTaskRequest(parent="queues/q", task=task_pb2.Task(payload=TASK))
    return stub.CreateTask(request, timeout=10).task


def created_or_refused(server: ServerProcess) -> bool:
    """Whether a create succeeded; False if it was refused as UNAVAILABLE (storage)."""
    try:
        create(server)
    except grpc.RpcError as error:
        if error.code() != grpc.StatusCode.UNAVAILABLE:
            raise
        return False
    return True


def fill_until_out_of_service(server: ServerProcess) -> grpc.RpcError:
    """Creates 256 KiB tasks until the server refuses them and reports NOT_SERVING; returns the
    last refusal. (A refusal can come in a passing dip of free space, while RocksDB holds a
    log file and the table file it is flushing into; the server serves again once the log is
    deleted, so one refusal alone is not the end.)"""
    for _ in range(1000):  # 250 MiB: far more than the disk holds
        try:
            create(server)
        except grpc.RpcError as error:
            for _ in range(30):
                if status(server) == health_pb2.HealthCheckResponse.NOT_SERVING:
                    return error
                time.sleep(0.1)
    raise AssertionError("the server never went out of service")


def stop_cleanly(server: ServerProcess) -> None:
    assert server.stop(signal.SIGTERM) == 0
    assert "Traceback" not in server.process.stderr.read()


def test_with_its_reserve_the_server_refuses_new_tasks_before_the_disk_is_full(small_disk):
    # 24 MiB: room for a compaction of four 4 MiB memtable files besides the flush itself.
    server = start(small_disk, "--min-free-disk-mb", "24")
    queues = queue_service_pb2_grpc.QueueServiceStub(server.channel)
    tasks = task_service_pb2_grpc.TaskServiceStub(server.channel)
    queues.CreateQueue(queue_service_pb2.CreateQueueRequest(queue=queue_pb2.Queue(name="queues/q", type=2)))
    refusal = fill_until_out_of_service(server)
    assert (refusal.code(), error_reason(refusal)) == (grpc.StatusCode.RESOURCE_EXHAUSTED, "DISK_FULL")
    # Workers can still drain the queue while new tasks are refused.
    [leased] = tasks.LeaseTasks(task_service_pb2.LeaseTasksRequest(
        parent="queues/q", max_tasks=1, lease_duration={"seconds": 60},
    )).tasks
    tasks.DeleteTask(task_service_pb2.DeleteTaskRequest(name=leased.name, lease_token=leased.lease_token))
    small_disk.path("filler").unlink()
    eventually(lambda: status(server) == health_pb2.HealthCheckResponse.SERVING)
    create(server)
    stop_cleanly(server)
    again = start(small_disk, "--min-free-disk-mb", "24")
    assert status(again) == health_pb2.HealthCheckResponse.SERVING
    create(again)
    stop_cleanly(again)


def test_a_write_ahead_log_that_hits_enospc_recovers_once_space_is_back(small_disk):
    # Another 12 MiB to free later: reopening replays the log into table files, which takes
    # some of what is freed, and the test then writes again.
    small_disk.path("filler2").write_bytes(b"\0" * (12 * MIB))
    server = start(small_disk, "--min-free-disk-mb", "0")  # no reserve: the disk really fills
    queues = queue_service_pb2_grpc.QueueServiceStub(server.channel)
    queues.CreateQueue(queue_service_pb2.CreateQueueRequest(queue=queue_pb2.Queue(name="queues/q", type=2)))
    kept = create(server)
    refusal = fill_until_out_of_service(server)
    assert (refusal.code(), error_reason(refusal)) == (grpc.StatusCode.UNAVAILABLE, "STORAGE_UNAVAILABLE")
    small_disk.path("filler").unlink()
    small_disk.path("filler2").unlink()
    eventually(lambda: status(server) == health_pb2.HealthCheckResponse.SERVING, seconds=60)
    # The reopened database replays its log into table files and compacts them, holding old and
    # new files at once for a moment: on a machine slow enough (a loaded CI box) a write can
    # meet that passing peak and be refused (UNAVAILABLE, nothing lost). Space is back: the
    # server must take writes again within the minute, and keep what it had.
    eventually(lambda: created_or_refused(server), seconds=60)
    tasks = task_service_pb2_grpc.TaskServiceStub(server.channel)
    assert tasks.GetTask(task_service_pb2.GetTaskRequest(name=kept.name)).task.payload == TASK
    stop_cleanly(server)
