"""Dead-letter queues through the real API: nothing dead-lettered is lost, and the queue graph
stays one a task can leave (no cycles, no queue deleted from under its referrers)."""

from __future__ import annotations

import grpc
import pytest

from harness import error_reason
from taskq.v1 import queue_pb2, queue_service_pb2


def create(server, queue_id: str, dead_letter: str = "", **fields) -> queue_pb2.Queue:
    return server.create_queue(queue_id, dead_letter_queue=f"queues/{dead_letter}" if dead_letter else "", **fields)


def set_dead_letter(server, queue_id: str, dead_letter: str) -> queue_pb2.Queue:
    return server.queues.UpdateQueue(queue_service_pb2.UpdateQueueRequest(
        queue=queue_pb2.Queue(name=f"queues/{queue_id}", dead_letter_queue=f"queues/{dead_letter}"),
        update_mask={"paths": ["dead_letter_queue"]},
    )).queue


def refusal(call) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as raised:
        call()
    return raised.value.code(), error_reason(raised.value)


def test_same_named_tasks_of_two_queues_dead_lettered_in_one_reaper_pass_both_arrive(tmp_path, clock):
    # Pull queues A and B, max_attempts 1, one dead-letter queue; a task named "same" in each;
    # both leases run out while the server is down; the first reaper pass after the start
    # handles both in one transaction.
    from harness import ServerHarness

    server = ServerHarness(str(tmp_path / "data"), clock=clock)
    try:
        create(server, "dead")
        for queue_id in ("a", "b"):
            create(server, queue_id, "dead", retry_config=queue_pb2.RetryConfig(max_attempts=1))
            server.create_task(queue_id, queue_id.encode(), name=f"queues/{queue_id}/tasks/same")
            server.lease(queue_id, seconds=1)
        server.stop()
        clock.advance(2)
        server.start()
        assert server.reap() == 2
        stats = server.stats("dead")
        assert stats.tasks_count == 2
        arrived = server.lease("dead", max_tasks=10)
        assert sorted(task.payload for task in arrived) == [b"a", b"b"]
        assert {task.attributes["taskq-original-task"] for task in arrived} == {
            "queues/a/tasks/same", "queues/b/tasks/same",
        }
    finally:
        server.close()


def test_a_queue_cannot_become_its_own_dead_letter_queue_through_a_cycle(fake_server):
    create(fake_server, "c")
    create(fake_server, "b", "c")
    create(fake_server, "a", "b")
    assert refusal(lambda: set_dead_letter(fake_server, "c", "a")) == (
        grpc.StatusCode.INVALID_ARGUMENT, "DEAD_LETTER_QUEUE_CYCLE"
    )
    assert refusal(lambda: set_dead_letter(fake_server, "b", "a")) == (
        grpc.StatusCode.INVALID_ARGUMENT, "DEAD_LETTER_QUEUE_CYCLE"
    )
    # Nothing was changed by the refusals; a chain without a cycle is fine.
    assert fake_server.queues.GetQueue(queue_service_pb2.GetQueueRequest(name="queues/c")).queue.dead_letter_queue == ""
    create(fake_server, "d")
    assert set_dead_letter(fake_server, "c", "d").dead_letter_queue == "queues/d"


def test_a_queue_named_as_a_dead_letter_queue_cannot_be_deleted(fake_server):
    create(fake_server, "dead")
    create(fake_server, "a", "dead")
    create(fake_server, "b", "dead")
    code, reason = refusal(lambda: fake_server.queues.DeleteQueue(queue_service_pb2.DeleteQueueRequest(name="queues/dead")))
    assert (code, reason) == (grpc.StatusCode.FAILED_PRECONDITION, "QUEUE_IN_USE")
    assert fake_server.queues.GetQueue(queue_service_pb2.GetQueueRequest(name="queues/dead")).queue.name == "queues/dead"
    # Once nobody names it, it can go; the referrers stay updatable all along.
    for queue_id in ("a", "b"):
        fake_server.queues.UpdateQueue(queue_service_pb2.UpdateQueueRequest(
            queue=queue_pb2.Queue(name=f"queues/{queue_id}"), update_mask={"paths": ["dead_letter_queue"]},
        ))
    fake_server.queues.DeleteQueue(queue_service_pb2.DeleteQueueRequest(name="queues/dead"))


def test_a_queue_file_with_a_dead_letter_cycle_is_refused_and_changes_nothing(tmp_path, clock):
    from harness import ServerHarness
    from taskq.app import StartupError

    queues = tmp_path / "queues.yaml"
    queues.write_text(
        "queue:\n"
        "- name: a\n  mode: pull\n  dead_letter_queue: b\n"
        "- name: b\n  mode: pull\n  dead_letter_queue: a\n"
    )
    with pytest.raises(StartupError, match="cycle"):
        ServerHarness(str(tmp_path / "data"), clock=clock, queues_file=str(queues))
