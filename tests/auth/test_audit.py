"""Audit lines in the event log, with the caller's identity: calls refused for who made them
(unauthenticated, or without the role) and calls that needed the admin role; refusals from one
caller sampled like the event log's task lines."""

from __future__ import annotations

import json
import logging

import grpc
import pytest
from support.auth_files import bearer

from taskq.eventlog import BURST, LOGGER, WINDOW_US
from taskq.v1 import queue_pb2, queue_service_pb2


@pytest.fixture
def audit(caplog):
    caplog.set_level(logging.INFO, logger=LOGGER)

    def read(event: str) -> list[dict]:
        lines = [json.loads(record.getMessage()) for record in caplog.records if record.name == LOGGER]
        return [line for line in lines if line["event"] == event]

    return read


def test_refusals_and_admin_calls_are_audited_with_the_callers_identity(auth_server, tokens_file, audit):
    admin = tokens_file.token("ops", "admin")
    viewer = tokens_file.token("dashboard", "viewer")
    auth_server.clock.advance(10)  # the file is looked at again once the interval has passed
    auth_server.queues.CreateQueue(queue_service_pb2.CreateQueueRequest(queue=queue_pb2.Queue(name="queues/emails")),
                                   metadata=bearer(admin))
    auth_server.queues.GetQueue(queue_service_pb2.GetQueueRequest(name="queues/emails"), metadata=bearer(viewer))
    with pytest.raises(grpc.RpcError):
        auth_server.queues.PurgeQueue(queue_service_pb2.PurgeQueueRequest(name="queues/emails"), metadata=bearer(viewer))
    with pytest.raises(grpc.RpcError):
        auth_server.queues.ListQueues(queue_service_pb2.ListQueuesRequest())

    [call] = audit("admin_call")
    assert (call["method"], call["identity"], call["via"], call["queues"]) == (
        "/taskq.v1.QueueService/CreateQueue", "ops", "token", ["queues/emails"])
    denied, anonymous = audit("auth_refused")
    assert (denied["method"], denied["identity"], denied["code"], denied["reason"]) == (
        "/taskq.v1.QueueService/PurgeQueue", "dashboard", "PERMISSION_DENIED", "PERMISSION_DENIED")
    assert (anonymous["identity"], anonymous["code"]) == (None, "UNAUTHENTICATED") and anonymous["peer"]
    # A viewer's read is the normal path: not audited.
    assert not [line for line in audit("admin_call") if line["identity"] == "dashboard"]


def test_a_flood_of_refusals_from_one_caller_is_sampled(auth_server, tokens_file, audit):
    viewer = tokens_file.token("scraper", "viewer")
    auth_server.clock.advance(10)
    for _ in range(BURST + 15):
        with pytest.raises(grpc.RpcError):
            auth_server.queues.DeleteQueue(queue_service_pb2.DeleteQueueRequest(name="queues/x"), metadata=bearer(viewer))
    assert len(audit("auth_refused")) == BURST
    auth_server.clock.advance(WINDOW_US / 1e6)
    assert auth_server.server is not None and auth_server.server.event_log is not None
    auth_server.run(auth_server.server.event_log.run_once())
    [summary] = [line for line in audit("auth_refused") if line.get("summary")]
    assert (summary["identity"], summary["suppressed"]) == ("scraper", 15)
