"""Page tokens: signed by the server, checked before use, valid across restarts."""

from __future__ import annotations

import base64
import json

import grpc
import pytest

from harness import error_reason
from taskq.v1 import queue_service_pb2, task_service_pb2


def token_of(after: str, mac: str = "00" * 16) -> str:
    body = json.dumps([2, after, mac])
    return base64.urlsafe_b64encode(body.encode()).decode().rstrip("=")


def list_tasks(server, token: str, page_size: int = 2):
    return server.tasks.ListTasks(
        task_service_pb2.ListTasksRequest(parent="queues/q", page_size=page_size, page_token=token)
    )


@pytest.mark.parametrize(
    "token",
    [
        token_of("\ud800"),  # a lone surrogate: once an INTERNAL error
        token_of("t1"),  # well formed, not signed by this server
        token_of("../../etc"),
        base64.urlsafe_b64encode(b'[2,"t1",["not a mac"]]').decode(),
        "!!!",
    ],
)
def test_a_forged_page_token_is_refused_as_invalid(fake_server, token):
    fake_server.create_queue("q")
    with pytest.raises(grpc.RpcError) as raised:
        list_tasks(fake_server, token)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_reason(raised.value) == "INVALID_PAGE_TOKEN"
    with pytest.raises(grpc.RpcError) as raised:
        fake_server.queues.ListQueues(queue_service_pb2.ListQueuesRequest(page_token=token))
    assert error_reason(raised.value) == "INVALID_PAGE_TOKEN"


def test_a_page_token_stays_valid_across_a_restart(fake_server):
    fake_server.create_queue("q")
    for index in range(5):
        fake_server.create_task("q", name=f"queues/q/tasks/t{index}")
    first = list_tasks(fake_server, "")
    fake_server.restart()
    second = list_tasks(fake_server, first.next_page_token)
    assert [t.name for t in second.tasks] == ["queues/q/tasks/t2", "queues/q/tasks/t3"]
