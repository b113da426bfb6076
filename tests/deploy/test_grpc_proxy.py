"""taskq behind a real HTTP/2 proxy (nginx `grpc_pass`), as behind an ingress or a service
mesh: unary calls with their error details, long polls, health checks and StreamTasks pass
through it, and push workers reconnect through it without losing work while the server's
max connection age cycles the proxy's connections to it."""

from __future__ import annotations

import threading
import time

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from support.grpc_proxy import GrpcProxy

from harness import ServerHarness, eventually
from taskq.client import Client, QueueNotFound, Worker


@pytest.fixture
def proxied(request, tmp_path):
    """(server, proxy): a server on RocksDB, with the settings a test passes as its param,
    and nginx in front of it."""
    settings = getattr(request, "param", {})
    server = ServerHarness(str(tmp_path / "data"), **settings)
    proxy = GrpcProxy(server.address, tmp_path / "nginx")
    yield server, proxy
    proxy.close()
    server.close()


def test_unary_calls_long_polls_errors_and_health_pass_through_the_proxy(proxied):
    server, proxy = proxied
    with Client(proxy.address) as client:
        client.create_queue("pull", type="pull")
        created = client.create_task("pull", b"through nginx", name="first")
        assert client.get_task(created.name).payload == b"through nginx"
        # Error details travel in trailers: the proxy must keep them.
        with pytest.raises(QueueNotFound) as missing:
            client.get_queue("missing")
        assert missing.value.reason == "QUEUE_NOT_FOUND"

        leased = client.lease_tasks("pull", lease_duration=30, max_tasks=5)
        assert [task.name for task in leased] == [created.name]
        # A long poll held open through the proxy is answered when a task arrives.
        answer: list = []
        poll = threading.Thread(target=lambda: answer.extend(
            client.lease_tasks("pull", lease_duration=30, wait=20)))
        poll.start()
        time.sleep(0.5)  # let the poll reach the server and wait there
        late = client.create_task("pull", b"late")
        poll.join(timeout=20)
        assert [task.name for task in answer] == [late.name]

    with grpc.insecure_channel(proxy.address) as channel:
        for service in ("", "taskq.v1.TaskService", "liveness"):
            status = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
            assert status.status == health_pb2.HealthCheckResponse.SERVING
    assert proxy.calls("/taskq.v1.TaskService/LeaseTasks"), "the calls did not go through nginx"


@pytest.mark.parametrize("proxied", [{"max_connection_age_seconds": 1.0, "max_connection_age_grace_seconds": 0.5}],
                         indirect=True)
def test_push_workers_reconnect_through_the_proxy_without_losing_work_while_connections_cycle(proxied):
    server, proxy = proxied
    handled: list[str] = []
    lock = threading.Lock()

    def handler(task) -> None:
        with lock:
            handled.append(task.name)

    with Client(proxy.address) as client:
        client.create_queue("push", type="push")
        worker = Worker(proxy.address, "push", handler, concurrency=4)
        thread = threading.Thread(target=worker.run, kwargs={"handle_signals": False}, daemon=True)
        thread.start()
        created: set[str] = set()
        try:
            # Tasks keep coming for about five connection lifetimes.
            started = time.monotonic()
            while time.monotonic() - started < 5:
                for item in client.create_tasks("push", [{"payload": b"x"}] * 20):
                    created.add(item.name)
                time.sleep(0.05)

            def all_done() -> bool:
                with lock:
                    seen = set(handled)
                return seen >= created and client.get_queue_stats("push").tasks_count == 0

            eventually(all_done, seconds=60)
        finally:
            worker.stop(grace_period=5)
            thread.join(timeout=30)
    with lock:
        repeats = len(handled) - len(set(handled))
    streams = proxy.calls("/taskq.v1.TaskService/StreamTasks")
    # The server cycled the worker's stream several times, and each time the worker came back.
    assert len(streams) >= 3, (streams, proxy.error_log()[-2000:])
    # A task runs again only if it was in flight when its stream was cut: at most the worker's
    # outstanding tasks per cut stream.
    assert repeats <= len(streams) * 2 * 4, repeats
