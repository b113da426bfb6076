"""Online backups (`taskq backup`, AdminService.Backup) and `taskq restore`, through the real
CLI against real server processes: a copy taken while producers and consumers run holds every
task whose create was answered before the backup began, and none whose delete was."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading

import grpc
import pytest

from harness import error_reason
from processes import ServerProcess
from taskq.client import Client, TaskqError
from taskq.v1 import admin_service_pb2, admin_service_pb2_grpc

CLI = [sys.executable, "-m", "taskq.cli.main"]


def cli(*arguments: str) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *arguments], capture_output=True, text=True, timeout=60)


class Load:
    """Producers create named tasks and a consumer leases and acknowledges some, until stopped;
    what the server answered is recorded, in order."""

    def __init__(self, client: Client, queue: str) -> None:
        self.client = client
        self.queue = queue
        self.created: list[str] = []
        self.deleted: list[str] = []
        self.progress = threading.Condition()
        self.stopping = threading.Event()
        self.failures: list[BaseException] = []
        self.threads = [threading.Thread(target=self._produce, args=(n,)) for n in range(2)]
        self.threads.append(threading.Thread(target=self._consume))
        for thread in self.threads:
            thread.start()

    def _guard(self, work) -> None:
        try:
            work()
        except BaseException as error:  # reported by stop(); the server is killed under it
            if not self.stopping.is_set():
                self.failures.append(error)

    def _produce(self, number: int) -> None:
        def work() -> None:
            count = 0
            while not self.stopping.is_set():
                name = f"p{number}-{count}"
                self.client.create_task(self.queue, b"x" * 100, name=name)
                with self.progress:
                    self.created.append(name)
                    self.progress.notify_all()
                count += 1
        self._guard(work)

    def _consume(self) -> None:
        def work() -> None:
            while not self.stopping.is_set():
                for task in self.client.lease_tasks(self.queue, lease_duration=60, max_tasks=20, wait=0.2):
                    # Every other leased task is acknowledged; the rest stay leased.
                    if int(task.name.rsplit("-", 1)[1]) % 2 == 0:
                        self.client.delete_task(task)
                        with self.progress:
                            self.deleted.append(task.name.rsplit("/", 1)[1])
        self._guard(work)

    def wait_for(self, created: int) -> None:
        with self.progress:
            assert self.progress.wait_for(lambda: len(self.created) >= created or self.failures, timeout=60)
        assert not self.failures, self.failures

    def snapshot(self) -> tuple[set[str], set[str]]:
        with self.progress:
            return set(self.created), set(self.deleted)

    def stop(self) -> None:
        self.stopping.set()


@pytest.mark.engines("rocksdb")
def test_a_backup_taken_under_load_and_restored_after_kill_9_holds_every_task_answered_before_it(tmp_path):
    server = ServerProcess(tmp_path / "data")
    client = Client(server.address, batching=None)
    client.create_queue("work", type="pull")
    load = Load(client, "work")
    try:
        load.wait_for(300)
        created_before, deleted_before = load.snapshot()
        backup = cli("backup", str(tmp_path / "copy"), "--server", server.address, "--json")
        assert backup.returncode == 0, backup.stderr
        report = json.loads(backup.stdout)
        assert report["destination"] == str(tmp_path / "copy")
        assert report["file_count"] > 0 and report["size_bytes"] > 0
        # The load goes on after the backup, and none of that is in the copy's promise.
        load.wait_for(len(created_before) + 300)
    finally:
        load.stop()
        server.process.send_signal(signal.SIGKILL)
        server.process.wait(timeout=30)
        for thread in load.threads:
            thread.join(timeout=30)
        client.close()

    restored = cli("restore", str(tmp_path / "copy"), "--data-dir", str(tmp_path / "restored"))
    assert restored.returncode == 0, restored.stderr
    assert "restored" in restored.stdout
    server = ServerProcess(tmp_path / "restored")
    try:
        with Client(server.address) as client:
            present = {task.name.rsplit("/", 1)[1] for task in client.list_tasks("work")}
    finally:
        server.stop()
    assert created_before - deleted_before, "the load created nothing to check"
    _, deleted_after = load.snapshot()
    # Created before the backup began and not deleted by the end: in the copy.
    assert (created_before - deleted_after) <= present
    # Deleted before the backup began: not in the copy.
    assert not (deleted_before & present)
    # Nothing the server never created appears.
    assert present <= set(load.created)


def test_backup_refuses_bad_destinations_and_changes_nothing(tmp_path, server):
    stub = admin_service_pb2_grpc.AdminServiceStub(grpc.insecure_channel(server.address))
    (tmp_path / "taken").mkdir()
    cases = [
        ("", grpc.StatusCode.INVALID_ARGUMENT, "REQUIRED_FIELD"),
        ("relative/dir", grpc.StatusCode.INVALID_ARGUMENT, "INVALID_PATH"),
        (str(tmp_path / "no" / "such" / "parent"), grpc.StatusCode.INVALID_ARGUMENT, "INVALID_PATH"),
        ("/" + "x" * 5000, grpc.StatusCode.INVALID_ARGUMENT, "INVALID_PATH"),
        (str(tmp_path / "taken"), grpc.StatusCode.ALREADY_EXISTS, "BACKUP_DESTINATION_EXISTS"),
    ]
    for destination, code, reason in cases:
        with pytest.raises(grpc.RpcError) as refused:
            stub.Backup(admin_service_pb2.BackupRequest(destination=destination), timeout=10)
        assert refused.value.code() == code, destination
        assert error_reason(refused.value) == reason, destination
    undecodable = server.channel.unary_unary("/taskq.v1.AdminService/Backup", request_serializer=None,
                                             response_deserializer=None)
    with pytest.raises(grpc.RpcError) as refused:
        undecodable(b"\xff\xff\xff\xff", timeout=10)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_reason(refused.value) == "MALFORMED_REQUEST"
    assert os.listdir(tmp_path / "taken") == []
    assert not (tmp_path / "no").exists()


@pytest.mark.engines("postgres")
def test_backup_on_postgresql_says_to_use_pg_dump(server):
    with Client(server.address) as client, pytest.raises(TaskqError) as refused:
        client.backup("/tmp/taskq-backup-never-written")
    assert refused.value.reason == "BACKUP_NOT_SUPPORTED"
    assert "pg_dump" in refused.value.message
    assert not os.path.exists("/tmp/taskq-backup-never-written")


@pytest.mark.engines("rocksdb")
def test_restore_never_overwrites_a_data_directory_and_refuses_a_running_one(tmp_path, server):
    with Client(server.address) as client:
        client.create_queue("kept", type="pull")
        client.create_task("kept", b"1", name="one")
        client.backup(str(tmp_path / "copy"))

    # Not a backup.
    (tmp_path / "junk").mkdir()
    refused = cli("restore", str(tmp_path / "junk"), "--data-dir", str(tmp_path / "new"))
    assert refused.returncode == 1 and "not a taskq backup" in refused.stderr
    # A running server's directory, even with --replace.
    running = cli("restore", str(tmp_path / "copy"), "--data-dir", server.data_dir, "--replace")
    assert running.returncode == 1 and "running" in running.stderr

    other = tmp_path / "other"
    stopped = ServerProcess(other)
    with Client(stopped.address) as client:
        client.create_queue("other", type="pull")
    stopped.stop()
    # A directory with data, without --replace: refused, untouched.
    before = sorted(os.listdir(other))
    refused = cli("restore", str(tmp_path / "copy"), "--data-dir", str(other))
    assert refused.returncode == 1 and "--replace" in refused.stderr
    assert sorted(os.listdir(other)) == before
    # With --replace: moved aside, and the backup is what the server sees.
    replaced = cli("restore", str(tmp_path / "copy"), "--data-dir", str(other), "--replace", "--json")
    assert replaced.returncode == 0, replaced.stderr
    moved = json.loads(replaced.stdout)["moved_aside"]
    assert moved.startswith(str(other) + ".before-restore-") and sorted(os.listdir(moved)) == before
    restarted = ServerProcess(other)
    try:
        with Client(restarted.address) as client:
            assert [q.name for q in client.list_queues()] == ["queues/kept"]
            assert client.get_task("queues/kept/tasks/one").payload == b"1"
    finally:
        restarted.stop()
