"""`taskq serve` as a process: start-up, health, graceful stop, single ownership of the data
directory and port, and no acknowledged task lost when the process is killed with SIGKILL."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time

import grpc
import pytest
from google.protobuf import duration_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc

from processes import SERVE, ServerProcess  # noqa: E402
from taskq.v1 import (
    queue_pb2,
    queue_service_pb2,
    queue_service_pb2_grpc,
    task_pb2,
    task_service_pb2,
    task_service_pb2_grpc,
)


def run_to_exit(*arguments: str, timeout: float = 20) -> subprocess.CompletedProcess:
    return subprocess.run([*SERVE, *arguments], capture_output=True, text=True, timeout=timeout)


def test_serve_on_port_zero_prints_the_port_reports_healthy_and_stops_cleanly_on_sigterm(tmp_path):
    server = ServerProcess(tmp_path / "data")
    health = health_pb2_grpc.HealthStub(server.channel)
    for service in ("", "liveness", "taskq.v1.TaskService", "taskq.v1.QueueService",
                    "google.cloud.tasks.v2.CloudTasks", "google.cloud.tasks.v2beta2.CloudTasks"):
        response = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
        assert response.status == health_pb2.HealthCheckResponse.SERVING, service
    started = time.monotonic()
    assert server.stop(signal.SIGTERM) == 0
    assert time.monotonic() - started < 15


def test_sigint_also_stops_the_server_with_status_zero(tmp_path):
    server = ServerProcess(tmp_path / "data")
    assert server.stop(signal.SIGINT) == 0


def test_a_second_server_on_the_same_data_directory_exits_at_once(tmp_path):
    first = ServerProcess(tmp_path / "data")
    try:
        started = time.monotonic()
        second = run_to_exit("--listen", "127.0.0.1:0", "--data-dir", str(tmp_path / "data"))
        assert second.returncode != 0
        assert "in use by another taskq server" in second.stderr
        assert time.monotonic() - started < 15
    finally:
        first.stop()


def test_a_second_server_on_the_same_port_exits_at_once(tmp_path):
    first = ServerProcess(tmp_path / "one")
    try:
        second = run_to_exit("--listen", first.address, "--data-dir", str(tmp_path / "two"))
        assert second.returncode != 0
        assert "cannot listen on" in second.stderr
    finally:
        first.stop()


def test_settings_come_from_environment_variables(tmp_path):
    data_dir = tmp_path / "from-env"
    process = subprocess.Popen(
        SERVE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "TASKQ_LISTEN": "127.0.0.1:0", "TASKQ_DATA_DIR": str(data_dir)},
    )
    try:
        assert "listening on 127.0.0.1:" in process.stdout.readline()
        assert (data_dir / "CURRENT").exists()
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0


def test_an_invalid_setting_is_refused_with_one_line(tmp_path):
    result = run_to_exit("--listen", "nonsense", "--data-dir", str(tmp_path / "data"))
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0
    assert "listen must be host:port" in result.stderr


@pytest.mark.parametrize("durability", ["fsync", "nosync"])
def test_no_acknowledged_create_is_lost_when_the_server_is_killed(tmp_path, durability):
    """A client creates tasks (singly and in batches) while the server is killed with SIGKILL
    at a random moment; after a restart on the same directory, every task whose create was
    answered OK is there. Three kill/restart rounds."""
    data_dir = tmp_path / "data"
    server = ServerProcess(data_dir, "--durability", durability)
    queue_service_pb2_grpc.QueueServiceStub(server.channel).CreateQueue(
        queue_service_pb2.CreateQueueRequest(queue=queue_pb2.Queue(name="queues/crash", type=queue_pb2.QUEUE_TYPE_PULL))
    )
    acknowledged: set[str] = set()
    for round_number in range(3):
        stop = threading.Event()
        errors: list[str] = []

        def produce(
            address: str, worker: int, stop: threading.Event = stop, round_number: int = round_number,
            errors: list[str] = errors,
        ) -> None:
            channel = grpc.insecure_channel(address)
            stub = task_service_pb2_grpc.TaskServiceStub(channel)
            counter = 0
            while not stop.is_set():
                counter += 1
                prefix = f"r{round_number}-w{worker}-{counter}"
                try:
                    if counter % 2:
                        name = f"queues/crash/tasks/{prefix}"
                        stub.CreateTask(
                            task_service_pb2.CreateTaskRequest(parent="queues/crash", task=task_pb2.Task(name=name)),
                            timeout=5,
                        )
                        acknowledged.add(name)
                    else:
                        names = [f"queues/crash/tasks/{prefix}-{i}" for i in range(20)]
                        response = stub.BatchCreateTasks(
                            task_service_pb2.BatchCreateTasksRequest(
                                parent="queues/crash",
                                requests=[task_service_pb2.CreateTaskRequest(task=task_pb2.Task(name=n)) for n in names],
                            ),
                            timeout=5,
                        )
                        for name, result in zip(names, response.results):
                            if result.WhichOneof("result") == "task":
                                acknowledged.add(name)
                except grpc.RpcError as error:
                    if error.code() not in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED,
                                            grpc.StatusCode.CANCELLED, grpc.StatusCode.UNKNOWN):
                        errors.append(f"{error.code()}: {error.details()}")
                    return
            channel.close()

        producers = [threading.Thread(target=produce, args=(server.address, w)) for w in range(3)]
        for thread in producers:
            thread.start()
        time.sleep(0.4 + 0.3 * round_number)
        before_kill = len(acknowledged)
        server.process.send_signal(signal.SIGKILL)
        server.process.wait(timeout=10)
        stop.set()
        for thread in producers:
            thread.join(timeout=10)
        assert not errors, errors
        assert before_kill > 0
        server = ServerProcess(data_dir, "--durability", durability)
        stub = task_service_pb2_grpc.TaskServiceStub(server.channel)
        stored: set[str] = set()
        token = ""
        while True:
            page = stub.ListTasks(
                task_service_pb2.ListTasksRequest(parent="queues/crash", page_size=1000, page_token=token), timeout=30
            )
            stored.update(task.name for task in page.tasks)
            token = page.next_page_token
            if not token:
                break
        lost = acknowledged - stored
        assert not lost, f"round {round_number}: {len(lost)} acknowledged tasks lost, e.g. {sorted(lost)[:5]}"
    assert server.stop() == 0


def test_an_idle_server_with_an_open_stream_and_waiting_lease_uses_next_to_no_cpu(tmp_path):
    """Waking is event-driven: with a push stream subscribed, a long poll waiting and tasks
    scheduled an hour ahead, nothing polls. Measured from /proc: CPU seconds over 3 s idle."""
    server = ServerProcess(tmp_path / "data")
    try:
        queues = queue_service_pb2_grpc.QueueServiceStub(server.channel)
        tasks = task_service_pb2_grpc.TaskServiceStub(server.channel)
        queues.CreateQueue(queue_service_pb2.CreateQueueRequest(
            queue=queue_pb2.Queue(name="queues/push", type=queue_pb2.QUEUE_TYPE_PUSH)))
        queues.CreateQueue(queue_service_pb2.CreateQueueRequest(
            queue=queue_pb2.Queue(name="queues/pull", type=queue_pb2.QUEUE_TYPE_PULL)))
        later = task_pb2.Task()
        later.schedule_time.FromMicroseconds(int(time.time() * 1e6) + 3600 * 1_000_000)
        for queue in ("push", "pull"):
            tasks.CreateTask(task_service_pb2.CreateTaskRequest(parent=f"queues/{queue}", task=later))
        hold = threading.Event()

        def requests():
            yield task_service_pb2.StreamTasksRequest(
                subscription=task_service_pb2.StreamSubscription(queue="queues/push"))
            hold.wait()  # keep the stream open (a returning iterator would half-close it)

        stream = tasks.StreamTasks(requests())
        waiting = tasks.LeaseTasks.future(task_service_pb2.LeaseTasksRequest(
            parent="queues/pull", lease_duration=duration_pb2.Duration(seconds=60), max_tasks=1,
            wait=duration_pb2.Duration(seconds=30)))
        time.sleep(1)  # let start-up work settle
        before = _cpu_seconds(server.process.pid)
        time.sleep(3)
        used = _cpu_seconds(server.process.pid) - before
        assert used < 0.3, f"{used:.2f} CPU seconds in 3 idle seconds"
        waiting.cancel()
        stream.cancel()
        hold.set()
    finally:
        server.stop()


def _cpu_seconds(pid: int) -> float:
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
