"""HTTP push refuses targets on loopback, private, link-local and other non-public addresses
unless the server allows their network (server-side request forgery), checked on the
addresses a name resolves to."""

from __future__ import annotations

import grpc
import pytest

from harness import ServerHarness, eventually
from taskq.v1 import http_pb2, queue_pb2, task_pb2, task_service_pb2

pytestmark = pytest.mark.engines("rocksdb")


def attempt_of(server, task):
    def failed_once() -> bool:
        current = server.tasks.GetTask(task_service_pb2.GetTaskRequest(name=task.name)).task
        return current.attempt_count >= 1 and current.state == task_pb2.TASK_STATE_SCHEDULED

    eventually(failed_once)
    return server.tasks.GetTask(task_service_pb2.GetTaskRequest(name=task.name)).task.last_attempt


@pytest.mark.parametrize("url, kind", [
    ("http://127.0.0.1:{port}/", "loopback"),
    ("http://localhost:{port}/", "loopback"),  # a name: refused after it resolves
    ("http://[::1]:{port}/", "loopback"),
    ("http://169.254.169.254/latest/meta-data/", "link-local"),  # the cloud metadata service
    ("http://10.1.2.3/", "private"),
    ("http://0.0.0.0:{port}/", "unspecified"),
])
def test_targets_on_non_public_addresses_are_refused_by_default(server, worker, url, kind):
    server.create_queue("web", queue_pb2.QUEUE_TYPE_PUSH, http_target=http_pb2.HttpTarget(uri=url.format(port=worker.port)))
    task = server.create_task("web")
    attempt = attempt_of(server, task)
    assert attempt.error.code == grpc.StatusCode.PERMISSION_DENIED.value[0]
    assert f"a {kind} address; allow it with --http-allow-networks" in attempt.error.message
    assert worker.received() == []


def test_an_allowed_network_is_reached_and_other_addresses_of_the_name_are_not(tmp_path, worker):
    server = ServerHarness(str(tmp_path / "data"), http_allow_networks="127.0.0.1/32")
    try:
        server.create_queue("web", queue_pb2.QUEUE_TYPE_PUSH,
                            http_target=http_pb2.HttpTarget(uri=f"http://localhost:{worker.port}/ok"))
        server.create_task("web")
        eventually(lambda: len(worker.received("/ok")) == 1)
        server.create_queue("v6", queue_pb2.QUEUE_TYPE_PUSH,
                            http_target=http_pb2.HttpTarget(uri=f"http://[::1]:{worker.port}/v6"))
        attempt = attempt_of(server, server.create_task("v6"))
        assert attempt.error.code == grpc.StatusCode.PERMISSION_DENIED.value[0]
    finally:
        server.close()
