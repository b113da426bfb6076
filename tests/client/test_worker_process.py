"""A push Worker as its own process: killed with SIGKILL, its tasks go to another worker at
once; stopped with SIGTERM, it finishes its running handler, acknowledges it and exits 0."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import threading
import time

import grpc
import pytest
from google.protobuf import duration_pb2

from client_support import eventually
from taskq.client import Worker
from taskq.v1 import queue_pb2, task_pb2, task_service_pb2

# The worker process: its handler writes "started <name> <attempt>" to the log file, then
# blocks (`block`) or works for a second and writes "finished <name>" (`work`).
WORKER_SCRIPT = textwrap.dedent('''
    import sys, threading, time
    from taskq.client import Worker

    address, queue, log_path, mode, concurrency, max_outstanding = sys.argv[1:]

    def log(line):
        with open(log_path, "a") as log_file:
            log_file.write(line + "\\n")

    def handler(task):
        log(f"started {task.name} {task.attempt_count}")
        if mode == "block":
            threading.Event().wait()
        time.sleep(1.0)
        log(f"finished {task.name}")

    Worker(address, queue, handler, concurrency=int(concurrency), max_outstanding=int(max_outstanding)).run()
    log("exited")
''')


@pytest.fixture
def worker_process(tmp_path):
    """Starts the worker script; returns (process, log lines reader). Killed at the end."""
    script = tmp_path / "worker.py"
    script.write_text(WORKER_SCRIPT)
    log_path = tmp_path / "worker.log"
    processes: list[subprocess.Popen] = []

    def start(address: str, queue: str, mode: str, concurrency: int, max_outstanding: int):
        process = subprocess.Popen(
            [sys.executable, str(script), address, queue, str(log_path), mode, str(concurrency), str(max_outstanding)])
        processes.append(process)
        return process, lambda: log_path.read_text().splitlines() if log_path.exists() else []

    yield start
    for process in processes:
        if process.poll() is None:
            process.kill()
            process.wait(10)


def push_queue_with_tasks(server, count: int) -> list[str]:
    # A long dispatch deadline: a task coming back quickly is released, not timed out.
    server.create_queue("push", queue_pb2.QUEUE_TYPE_PUSH, dispatch_deadline=duration_pb2.Duration(seconds=120))
    requests = [task_service_pb2.CreateTaskRequest(task=task_pb2.Task(payload=b"x")) for _ in range(count)]
    response = server.tasks.BatchCreateTasks(task_service_pb2.BatchCreateTasksRequest(parent="queues/push",
                                                                                      requests=requests))
    return [result.task.name for result in response.results]


def test_tasks_of_a_killed_worker_go_to_another_worker_at_once(server, worker_process, run_in_thread):
    names = push_queue_with_tasks(server, 3)
    process, log_lines = worker_process(server.address, "queues/push", "block", 3, 3)
    eventually(lambda: len(log_lines()) == 3, timeout=20, message="the worker process did not start its tasks")
    assert sorted(line.split()[1] for line in log_lines()) == sorted(names)

    received: dict[str, int] = {}
    all_received = threading.Event()

    def handler(task):
        received[task.name] = task.attempt_count
        if len(received) == 3:
            all_received.set()

    run_in_thread(Worker(server.address, "push", handler))
    time.sleep(0.3)
    assert received == {}  # the tasks are still leased to the process
    process.send_signal(signal.SIGKILL)
    killed = time.monotonic()
    assert all_received.wait(10)
    assert time.monotonic() - killed < 5  # far under the 120 s dispatch deadline
    assert received == {name: 2 for name in names}


def test_sigterm_finishes_the_running_handler_acks_it_and_exits_zero(server, worker_process):
    names = push_queue_with_tasks(server, 3)
    process, log_lines = worker_process(server.address, "push", "work", 1, 3)
    eventually(lambda: log_lines(), timeout=20, message="the worker process did not start a task")
    eventually(lambda: server.stats("push").leased_count == 3)  # one running, two waiting
    process.send_signal(signal.SIGTERM)
    assert process.wait(15) == 0
    lines = log_lines()
    started = lines[0].split()[1]
    assert lines == [f"started {started} 1", f"finished {started}", "exited"]
    with pytest.raises(grpc.RpcError) as caught:
        server.get_task(started)
    assert caught.value.code() is grpc.StatusCode.NOT_FOUND  # acknowledged
    stats = server.stats("push")
    assert (stats.tasks_count, stats.ready_count, stats.leased_count) == (2, 2, 0)  # released at once
    assert started in names
