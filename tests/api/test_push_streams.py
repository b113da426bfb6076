"""Push streams under misbehaving or unlucky clients: credit comes back whoever ends a lease,
reconnecting gets no extra burst, a frozen consumer is not handed its own expired tasks again,
a retried acknowledgement is not refused, and waiting calls leave nothing behind. (A client
that does not read its stream is tested in tests/core/test_subscriber.py: whether the server's
writes block depends on how much the client's gRPC library buffers, which a test cannot fix.)"""

from __future__ import annotations

import grpc
import pytest

from harness import (
    ServerHarness,
    eventually,
    fill,
    open_stream,
    push_queue,
    seconds_to_duration,
    stream_error_reason,
)
from taskq.v1 import queue_pb2, task_service_pb2


def test_a_task_acknowledged_by_delete_task_gives_its_stream_the_credit_back(fake_server, streams):
    push_queue(fake_server)
    fill(fake_server, "push", 2)
    stream = open_stream(fake_server, streams, max_outstanding=1)
    [first] = stream.tasks(1)
    # Acknowledged through the unary API, not the stream. The clock never moves here, so only
    # the news of the ended lease can give the stream room for the second task.
    fake_server.tasks.DeleteTask(task_service_pb2.DeleteTaskRequest(name=first.name, lease_token=first.lease_token))
    [second] = stream.tasks(1)
    assert second.name != first.name


def test_reconnecting_gets_no_burst_beyond_the_bucket(fake_server, clock, streams):
    push_queue(fake_server, rate_limits=queue_pb2.RateLimits(max_dispatches_per_second=1, max_burst_size=5))
    fill(fake_server, "push", 30)
    first = open_stream(fake_server, streams, max_outstanding=100)
    burst = first.tasks(5)
    first.ack(*burst)
    assert first.quiet() == []
    first.close()
    second = open_stream(fake_server, streams, max_outstanding=100)
    assert second.quiet() == []  # a new dispatcher continues from the stored, empty bucket
    clock.advance(1)
    assert len(second.tasks(1)) == 1
    second.cancel()
    fake_server.restart()
    third = open_stream(fake_server, streams, max_outstanding=100)
    assert third.quiet() == []  # nor does a restart fill it
    clock.advance(2)
    assert len(third.tasks(2)) == 2


def test_a_frozen_consumer_is_not_handed_its_own_expired_tasks_again(fake_server, clock, streams):
    push_queue(fake_server, dispatch_deadline=seconds_to_duration(15))
    fill(fake_server, "push", 8)
    frozen = open_stream(fake_server, streams, max_outstanding=8)
    assert len(frozen.tasks(8)) == 8  # and never answers
    healthy = open_stream(fake_server, streams, max_outstanding=8)
    # One more task for the healthy stream, so that the dealing order starts at the frozen one
    # next time: only the memory of what it let expire keeps the tasks from it.
    fill(fake_server, "push", 1)
    healthy.ack(*healthy.tasks(1))
    eventually(lambda: fake_server.stats("push").tasks_count == 8)  # the ack is applied
    clock.advance(16)
    fake_server.reap()
    clock.advance(1)  # past the first retry's backoff
    redelivered = healthy.tasks(8)
    assert sorted(int(task.payload) for task in redelivered) == list(range(8))
    assert frozen.quiet() == []


def test_a_retried_stream_acknowledgement_gets_the_first_answer(fake_server, streams):
    push_queue(fake_server)
    fill(fake_server, "push", 1)
    first = open_stream(fake_server, streams)
    [task] = first.tasks(1)
    first.ack(task)
    assert first.quiet() == []
    first.cancel()
    # The worker did not see the answer and reconnected: its ack comes again, with a bad one.
    second = open_stream(fake_server, streams)
    second.send(acks=[
        task_service_pb2.TaskAck(name=task.name, lease_token=task.lease_token),
        task_service_pb2.TaskAck(name="queues/push/tasks/unknown", lease_token=task.lease_token),
    ])
    refused = second.next()
    assert [(error.name, stream_error_reason(error)) for error in refused.errors] == [
        ("queues/push/tasks/unknown", "LEASE_LOST")
    ]


def test_long_polls_leave_no_wakeup_behind(server):
    server.create_queue("pull")
    for _ in range(200):
        with pytest.raises(grpc.RpcError) as raised:
            server.lease("missing", wait=seconds_to_duration(30))
        assert raised.value.code() == grpc.StatusCode.NOT_FOUND
    assert server.lease("pull", wait=seconds_to_duration(0.05)) == []
    assert server.engine.wakeups.watched() == 0


@pytest.mark.engines("postgres")
def test_a_task_acknowledged_on_another_server_gives_the_stream_its_credit_back(server, tmp_path, streams):
    # Two servers on one database; the stream is on the first, the acknowledgement goes to the
    # second, which cannot tell the first. The dispatch deadline (10 min) cannot run out within
    # the test: only looking the lease up in the database, at the poll interval, can give the
    # stream room for the second task.
    other = ServerHarness(str(tmp_path / "other"), **server.settings)
    try:
        push_queue(server)
        fill(server, "push", 2)
        stream = open_stream(server, streams, max_outstanding=1)
        [first] = stream.tasks(1)
        other.tasks.DeleteTask(task_service_pb2.DeleteTaskRequest(name=first.name, lease_token=first.lease_token))
        [second] = stream.tasks(1)
        assert second.name != first.name
    finally:
        other.close()
