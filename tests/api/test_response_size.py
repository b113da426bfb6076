"""No answer outgrows the message-size limit after its writes were made: responses are sized
before anything is committed, and come back shorter (or are refused up front) instead."""

from __future__ import annotations

import grpc
import pytest

from harness import ServerHarness, error_reason
from taskq.v1 import task_pb2, task_service_pb2

MIB = 1024 * 1024


@pytest.fixture
def small_server(tmp_path, clock):
    """A server whose messages may carry 8 MiB, with tasks of up to 1 MiB."""
    harness = ServerHarness(str(tmp_path / "data"), clock=clock, max_message_bytes=8 * MIB)
    yield harness
    harness.close()


def big_tasks(server, queue_id: str, count: int) -> None:
    for _ in range(count):
        server.create_task(queue_id, b"x" * (MIB - 1024))


def test_lease_tasks_returns_what_fits_and_leaves_the_rest_unleased(small_server):
    small_server.create_queue("q")
    big_tasks(small_server, "q", 12)
    leased = small_server.lease("q", max_tasks=12)
    assert 0 < len(leased) < 12
    stats = small_server.stats("q")
    assert stats.leased_count == len(leased)  # no lease was spent on a task that was not sent
    assert stats.ready_count == 12 - len(leased)
    again = small_server.lease("q", max_tasks=12)
    assert len(leased) + len(again) == 12 or len(again) > 0


def test_list_tasks_with_payloads_pages_where_the_message_would_overflow(small_server):
    small_server.create_queue("q")
    big_tasks(small_server, "q", 12)
    seen = 0
    token = ""
    pages = 0
    while True:
        page = small_server.tasks.ListTasks(task_service_pb2.ListTasksRequest(
            parent="queues/q", page_size=1000, view=task_pb2.TASK_VIEW_FULL, page_token=token,
        ))
        seen += len(page.tasks)
        pages += 1
        token = page.next_page_token
        if not token:
            break
    assert seen == 12 and pages > 1


def test_a_batch_whose_full_answer_could_not_be_sent_is_refused_before_anything_is_created(small_server):
    small_server.create_queue("q")
    # The request fits in 8 MiB; the answer, with every payload plus each task's name, times
    # and state, would not.
    requests = [
        task_service_pb2.CreateTaskRequest(task=task_pb2.Task(payload=b"x" * 8300), response_view=task_pb2.TASK_VIEW_FULL)
        for _ in range(1000)
    ]
    with pytest.raises(grpc.RpcError) as raised:
        small_server.tasks.BatchCreateTasks(task_service_pb2.BatchCreateTasksRequest(parent="queues/q", requests=requests))
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_reason(raised.value) == "RESPONSE_TOO_LARGE"
    assert small_server.stats("q").tasks_count == 0
    for request in requests:
        request.response_view = task_pb2.TASK_VIEW_BASIC
    response = small_server.tasks.BatchCreateTasks(
        task_service_pb2.BatchCreateTasksRequest(parent="queues/q", requests=requests)
    )
    assert all(result.HasField("task") for result in response.results)
    assert small_server.stats("q").tasks_count == 1000
