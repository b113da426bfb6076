"""Tracing (docs/tracing.md): the server's spans reach a real OTLP/gRPC receiver, a task keeps
the trace context of the call that created it, and every delivery hands it on: LeaseTasks,
StreamTasks (the Python Worker), PullWorker and HTTP push, whose handlers continue the trace."""

from __future__ import annotations

import asyncio

import pytest
from opentelemetry import trace
from opentelemetry.proto.trace.v1 import trace_pb2 as otlp_trace_pb2
from support.http_worker import HttpWorker

from harness import eventually
from taskq.client import PullWorker, Worker
from taskq.config import ConfigError, load
from taskq.v1 import http_pb2, queue_pb2, task_pb2, task_service_pb2

CALLER_TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN_ID = "00f067aa0ba902b7"
#: What an instrumented caller sends as gRPC metadata.
CALLER = [("traceparent", f"00-{CALLER_TRACE_ID}-{CALLER_SPAN_ID}-01"), ("tracestate", "vendor=value")]


def create_traced_task(server, queue_id: str, metadata=CALLER) -> task_pb2.Task:
    request = task_service_pb2.CreateTaskRequest(parent=f"queues/{queue_id}", task=task_pb2.Task(payload=b"work"))
    return server.tasks.CreateTask(request, metadata=metadata).task


def exported(server, receiver, name: str) -> list[otlp_trace_pb2.Span]:
    server.run(server.server.tracing.flush())
    return receiver.spans(name)


def test_a_task_created_under_a_trace_keeps_the_server_span_of_its_create_call(traced_server, receiver):
    traced_server.create_queue("work")
    task = create_traced_task(traced_server, "work")

    version, trace_id, parent_id, flags = task.trace_parent.split("-")
    assert (version, trace_id, flags) == ("00", CALLER_TRACE_ID, "01")
    assert task.trace_state == "vendor=value"
    [create] = exported(traced_server, receiver, "taskq.v1.TaskService/CreateTask")
    assert create.trace_id.hex() == CALLER_TRACE_ID
    assert create.parent_span_id.hex() == CALLER_SPAN_ID
    assert create.span_id.hex() == parent_id  # the task's parent is the server's span
    assert create.kind == otlp_trace_pb2.Span.SPAN_KIND_SERVER
    assert {a.key: a.value.string_value for a in create.attributes}["rpc.method"] == "CreateTask"
    assert receiver.resources()[0]["service.name"] == "taskq"

    # Every later view and delivery of the task carries it.
    [leased] = traced_server.lease("work")
    assert (leased.trace_parent, leased.trace_state) == (task.trace_parent, task.trace_state)
    assert traced_server.get_task(task.name).trace_parent == task.trace_parent
    [lease_span] = exported(traced_server, receiver, "taskq.v1.TaskService/LeaseTasks")
    assert lease_span.parent_span_id == b""  # the lease call carried no trace: a trace of its own


def test_a_call_without_a_trace_starts_one_on_a_traced_server(traced_server, receiver):
    traced_server.create_queue("work")
    task = create_traced_task(traced_server, "work", metadata=None)
    [create] = exported(traced_server, receiver, "taskq.v1.TaskService/CreateTask")
    # The flags may say "sampled" and, from newer SDKs, "random trace id" (W3C level 2).
    assert task.trace_parent.startswith(f"00-{create.trace_id.hex()}-{create.span_id.hex()}-0")
    assert create.parent_span_id == b"" and task.trace_state == ""


def test_without_tracing_a_task_keeps_the_callers_trace_context_as_sent(untraced_server):
    untraced_server.create_queue("work")
    task = create_traced_task(untraced_server, "work")
    assert (task.trace_parent, task.trace_state) == (CALLER[0][1], "vendor=value")
    [leased] = untraced_server.lease("work")
    assert leased.trace_parent == CALLER[0][1]


@pytest.mark.parametrize("traceparent", [
    "not a traceparent",
    f"00-{'0' * 32}-{CALLER_SPAN_ID}-01",  # an all-zero trace id is invalid
    f"00-{CALLER_TRACE_ID.upper()}-{CALLER_SPAN_ID}-01",
])
def test_an_invalid_traceparent_is_not_stored(untraced_server, traceparent):
    untraced_server.create_queue("work")
    task = create_traced_task(untraced_server, "work", metadata=[("traceparent", traceparent)])
    assert task.trace_parent == "" and task.trace_state == ""


def test_a_batch_of_tasks_shares_the_trace_of_its_call(untraced_server):
    untraced_server.create_queue("work")
    request = task_service_pb2.BatchCreateTasksRequest(parent="queues/work", requests=[
        task_service_pb2.CreateTaskRequest(task=task_pb2.Task(payload=b"1")),
        task_service_pb2.CreateTaskRequest(task=task_pb2.Task(payload=b"2")),
    ])
    results = untraced_server.tasks.BatchCreateTasks(request, metadata=CALLER).results
    assert [result.task.trace_parent for result in results] == [CALLER[0][1]] * 2


def test_the_push_workers_handler_span_continues_the_trace_of_the_tasks_creation(
    traced_server, receiver, application_spans, run_in_thread
):
    traced_server.create_queue("push", queue_pb2.QUEUE_TYPE_PUSH)
    task = create_traced_task(traced_server, "push")
    in_handler = []
    run_in_thread(Worker(traced_server.address, "push", lambda task: in_handler.append(trace.get_current_span())))

    eventually(lambda: application_spans.get_finished_spans())
    [span] = application_spans.get_finished_spans()
    [create] = exported(traced_server, receiver, "taskq.v1.TaskService/CreateTask")
    assert f"{span.context.trace_id:032x}" == CALLER_TRACE_ID
    assert f"{span.parent.span_id:016x}" == create.span_id.hex() and span.parent.is_remote
    assert span.kind is trace.SpanKind.CONSUMER
    assert span.name == "process push"
    assert span.attributes["messaging.message.id"] == task.name
    assert span.context.trace_state.get("vendor") == "value"
    assert in_handler[0].get_span_context() == span.context  # current while the handler ran


def test_the_pull_workers_async_handler_span_continues_the_callers_trace(
    untraced_server, application_spans, run_in_thread
):
    untraced_server.create_queue("pull")
    create_traced_task(untraced_server, "pull")

    async def handler(task):
        await asyncio.sleep(0)
        raise ValueError("boom")  # the span records the failure

    run_in_thread(PullWorker(untraced_server.address, "pull", handler, wait=0.5))
    eventually(lambda: application_spans.get_finished_spans())
    span = application_spans.get_finished_spans()[0]
    assert f"{span.context.trace_id:032x}" == CALLER_TRACE_ID
    assert f"{span.parent.span_id:016x}" == CALLER_SPAN_ID
    assert span.status.status_code is trace.StatusCode.ERROR
    assert span.events[0].name == "exception"


def test_a_task_without_a_trace_gets_a_handler_span_of_a_new_trace(untraced_server, application_spans, run_in_thread):
    untraced_server.create_queue("pull")
    create_traced_task(untraced_server, "pull", metadata=None)
    run_in_thread(PullWorker(untraced_server.address, "pull", lambda task: None, wait=0.5))
    eventually(lambda: application_spans.get_finished_spans())
    assert application_spans.get_finished_spans()[0].parent is None


def test_http_push_sends_the_tasks_trace_context_as_headers(traced_server):
    worker = HttpWorker()
    try:
        traced_server.create_queue("web", queue_pb2.QUEUE_TYPE_PUSH,
                                   http_target=http_pb2.HttpTarget(uri=worker.url + "/work"))
        task = create_traced_task(traced_server, "web")
        eventually(lambda: worker.received("/work"))
        [delivery] = worker.received("/work")
        assert delivery.header("traceparent") == task.trace_parent
        assert delivery.header("tracestate") == "vendor=value"
        assert task.trace_parent.split("-")[1] == CALLER_TRACE_ID
    finally:
        worker.close()


def test_otlp_endpoint_comes_from_flags_or_the_environment_and_must_be_a_url():
    assert load({}, environ={}).otlp_endpoint is None
    assert load({}, environ={"TASKQ_OTLP_ENDPOINT": "http://collector:4317"}).otlp_endpoint == "http://collector:4317"
    assert load({"otlp_endpoint": "https://collector:4317"}, environ={}).otlp_endpoint == "https://collector:4317"
    for wrong in ("collector:4317", "grpc://collector:4317", "http://:4317", "http://collector:port"):
        with pytest.raises(ConfigError, match="otlp_endpoint"):
            load({"otlp_endpoint": wrong}, environ={})
