"""The event log (taskq/eventlog.py) through a real server on a FakeClock: queues' life cycles
and the task events off the normal path, one JSON line each with an RFC 3339 time; a mass
expiry sampled into a few lines and one summary; the normal path not logged at all."""

from __future__ import annotations

import json
import logging
import re

import pytest
from google.protobuf import duration_pb2, field_mask_pb2

from harness import FakeClock, ServerHarness, Stream
from processes import ServerProcess
from taskq.client import Client
from taskq.eventlog import BURST, LOGGER, WINDOW_US
from taskq.v1 import queue_pb2, queue_service_pb2

RFC3339_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00$")


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def server(request, tmp_path, clock, engine):
    from support.engines import engine_settings

    harness = ServerHarness(str(tmp_path / "data"), clock=clock, **engine_settings(request, engine))
    yield harness
    harness.close()


@pytest.fixture
def lines(caplog):
    """The event log's lines so far, decoded."""
    caplog.set_level(logging.INFO, logger=LOGGER)

    def read() -> list[dict]:
        return [json.loads(record.getMessage()) for record in caplog.records if record.name == LOGGER]

    return read


def summaries(server: ServerHarness) -> int:
    assert server.server is not None and server.server.event_log is not None
    return server.run(server.server.event_log.run_once())


def test_a_queues_life_cycle_is_logged_in_order_with_times_in_rfc_3339(server, lines):
    server.create_queue("orders")
    queue = queue_pb2.Queue(name="queues/orders", retry_config=queue_pb2.RetryConfig(max_attempts=3))
    server.queues.UpdateQueue(queue_service_pb2.UpdateQueueRequest(
        queue=queue, update_mask=field_mask_pb2.FieldMask(paths=["retry_config.max_attempts"])))
    server.queues.PauseQueue(queue_service_pb2.PauseQueueRequest(name="queues/orders"))
    server.queues.ResumeQueue(queue_service_pb2.ResumeQueueRequest(name="queues/orders"))
    server.create_task("orders", b"x")
    server.queues.PurgeQueue(queue_service_pb2.PurgeQueueRequest(name="queues/orders"))
    server.queues.DeleteQueue(queue_service_pb2.DeleteQueueRequest(name="queues/orders"))

    logged = [line for line in lines() if line["queue"] == "orders"]
    events = [line["event"] for line in logged]
    assert events[:4] == ["queue_create", "queue_update", "queue_pause", "queue_resume"]
    assert "queue_purge" in events and events[-1] == "queue_delete"
    assert "retry_config" in logged[1]["changed"]
    assert all(RFC3339_MS.match(line["time"]) for line in logged)
    # The created task's path (create, and its removal by the purge) is not an event-log line.
    assert not [line for line in logged if line.get("task")]


def test_expiries_and_dead_letters_are_logged_but_creates_leases_and_acks_are_not(server, clock, lines):
    server.create_queue("dead")
    server.create_queue("work", dead_letter_queue="queues/dead", retry_config=queue_pb2.RetryConfig(max_attempts=1))
    first = server.create_task("work", b"1", name="queues/work/tasks/first")
    server.create_task("work", b"2", name="queues/work/tasks/second")
    leased = server.lease("work", seconds=10, max_tasks=2)
    server.ack(next(task for task in leased if task.name == first.name))
    clock.advance(11)
    assert server.reap() == 1

    logged = [line for line in lines() if not line["event"].startswith("queue_")]
    assert [(line["event"], line["queue"], line["task"]) for line in logged] == [
        ("lease_expire", "work", "second"), ("dead_letter", "dead", logged[1]["task"])]
    assert logged[0]["state"] is None and logged[0]["attempt"] == 1
    assert logged[0]["dead_letter"] == f"queues/dead/tasks/{logged[1]['task']}"
    assert logged[1]["state"] == "READY" and logged[1]["from"] == "queues/work/tasks/second"


def test_a_mass_expiry_is_sampled_into_a_burst_and_one_summary(server, clock, lines):
    server.create_queue("bulk")
    for number in range(BURST + 25):
        server.create_task("bulk", b"x", name=f"queues/bulk/tasks/t{number}")
    assert len(server.lease("bulk", seconds=5, max_tasks=100)) == BURST + 25
    clock.advance(6)
    server.reap()
    expiries = [line for line in lines() if line["event"] == "lease_expire"]
    assert len(expiries) == BURST and not any(line.get("summary") for line in expiries)
    # The window is still open: nothing to summarise yet.
    assert summaries(server) == 0
    clock.advance(WINDOW_US / 1e6)
    assert summaries(server) == 1
    [summary] = [line for line in lines() if line.get("summary")]
    assert summary["event"] == "lease_expire" and summary["queue"] == "bulk"
    assert (summary["written"], summary["suppressed"]) == (BURST, 25)
    assert RFC3339_MS.match(summary["window_start"])


def test_a_nack_with_retries_left_is_routine_and_one_that_fails_the_task_is_logged(server, clock, lines):
    server.create_queue("push", queue_pb2.QUEUE_TYPE_PUSH, retry_config=queue_pb2.RetryConfig(
        max_attempts=2, min_backoff=duration_pb2.Duration(seconds=10)))
    server.create_task("push", b"x", name="queues/push/tasks/flaky")
    stream = Stream(server.channel, "push")
    try:
        [task] = stream.tasks(1)
        stream.nack(task, "boom")
        assert stream.quiet() == []
        assert not [line for line in lines() if line["event"] == "nack"]
        clock.advance(10)
        [again] = stream.tasks(1)
        stream.nack(again, "boom")
        assert stream.quiet() == []
    finally:
        stream.close()
    [line] = [line for line in lines() if line["event"] == "nack"]
    assert (line["queue"], line["task"], line["state"], line["attempt"]) == ("push", "flaky", "FAILED", 2)


def test_event_log_off_subscribes_nothing(tmp_path, clock, lines):
    harness = ServerHarness(str(tmp_path / "data"), clock=clock, event_log="off")
    try:
        assert harness.server is not None and harness.server.event_log is None
        harness.create_queue("quiet")
    finally:
        harness.close()
    assert not lines()


@pytest.mark.engines("rocksdb")
def test_taskq_serve_writes_the_event_log_to_its_file_and_json_logs_with_rfc_3339_times(tmp_path):

    server = ServerProcess(tmp_path / "data", "--log-format", "json", "--log-level", "debug",
                           "--event-log", str(tmp_path / "events.jsonl"))
    with Client(server.address) as client:
        client.create_queue("audited", type="pull")
        client.pause_queue("audited")
    assert server.stop() == 0
    events = [json.loads(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()]
    assert [(line["event"], line["queue"]) for line in events] == [("queue_create", "audited"),
                                                                 ("queue_pause", "audited")]
    records = [json.loads(line) for line in server.process.stderr.read().splitlines() if line.startswith("{")]
    assert records and all(RFC3339_MS.match(record["time"]) for record in records)
    # --log-level debug is taskq's debug, not gRPC's own.
    assert not [record for record in records if record["logger"].startswith("grpc")]
