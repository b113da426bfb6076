"""The bad-input catalogue (SPEC §3 "Errors", §9 "Bad input").

Every malformed request below goes through real gRPC to a real server, which must answer with
the exact canonical code, an ErrorInfo with the documented reason in domain `taskq.dev`, a
google.rpc.BadRequest naming the offending field for INVALID_ARGUMENT (a PreconditionFailure for
FAILED_PRECONDITION), never UNKNOWN or INTERNAL, and must leave everything stored as it was.

The catalogue is data: each entry of CASES is
    Case(id, rpc, request, code, reason, field)
where `request` is a message, or a function of the populated World for requests that need a
lease token or a page token; `reason=None` means "the transport answers, no ErrorInfo expected";
`field` is the BadRequest field path (None for other codes). Adding a case is one line.

Every test starts from the same World (see `populate`): a pull queue with tasks in every state,
a push queue, a paused queue and a dead-letter queue. It is populated through the API once per
module; each test's server opens a copy of that database.
"""

from __future__ import annotations

import base64
import dataclasses
import shutil
import time
from collections.abc import Callable
from typing import Any, NamedTuple

import grpc
import pytest
from google.protobuf import duration_pb2, field_mask_pb2, text_format, timestamp_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from harness import ServerHarness, error_reason
from taskq.v1 import http_pb2, queue_pb2, queue_service_pb2, task_pb2, task_service_pb2

IA = grpc.StatusCode.INVALID_ARGUMENT
NF = grpc.StatusCode.NOT_FOUND
AE = grpc.StatusCode.ALREADY_EXISTS
FP = grpc.StatusCode.FAILED_PRECONDITION
RE = grpc.StatusCode.RESOURCE_EXHAUSTED

DOMAIN = "taskq.dev"
MIB = 1024 * 1024
MAX_TASK_BYTES = MIB  # the server's default --max-task-bytes
DAY = 86_400
NOW = int(time.time())

PULL, PUSH, PAUSED, DLQ = "queues/pull", "queues/push", "queues/paused", "queues/dlq"
#: Push queues delivered over HTTP: to a base URL, and (no uri) to each task's absolute URL.
WEB, WEB_ABSOLUTE = "queues/web", "queues/web-absolute"


def T(task_id: str, queue: str = "pull") -> str:
    """A task name."""
    return f"queues/{queue}/tasks/{task_id}"


# Message builders: keyword arguments override the defaults; a value of None leaves a field unset.


def _build(cls, defaults: dict[str, Any], fields: dict[str, Any]):
    merged = {**defaults, **fields}
    return cls(**{key: value for key, value in merged.items() if value is not None})


def D(seconds: int, nanos: int = 0) -> duration_pb2.Duration:
    return duration_pb2.Duration(seconds=seconds, nanos=nanos)


def TS(seconds: int, nanos: int = 0) -> timestamp_pb2.Timestamp:
    return timestamp_pb2.Timestamp(seconds=seconds, nanos=nanos)


RC = queue_pb2.RetryConfig
RL = queue_pb2.RateLimits
HT = http_pb2.HttpTarget
HR = http_pb2.HttpRequest


def task(**fields) -> task_pb2.Task:
    return _build(task_pb2.Task, {}, fields)


def create(task_message: task_pb2.Task | None = None, **fields) -> task_service_pb2.CreateTaskRequest:
    return _build(task_service_pb2.CreateTaskRequest, {"parent": PULL, "task": task_message or task()}, fields)


def batch_create(n: int = 1, **fields) -> task_service_pb2.BatchCreateTasksRequest:
    items = [task_service_pb2.CreateTaskRequest(task=task()) for _ in range(n)]
    return _build(task_service_pb2.BatchCreateTasksRequest, {"parent": PULL, "requests": items}, fields)


def get(name: str, **fields) -> task_service_pb2.GetTaskRequest:
    return _build(task_service_pb2.GetTaskRequest, {"name": name}, fields)


def list_tasks(**fields) -> task_service_pb2.ListTasksRequest:
    return _build(task_service_pb2.ListTasksRequest, {"parent": PULL}, fields)


def delete(name: str, **fields) -> task_service_pb2.DeleteTaskRequest:
    return _build(task_service_pb2.DeleteTaskRequest, {"name": name}, fields)


def batch_delete(*names: str, **fields) -> task_service_pb2.BatchDeleteTasksRequest:
    items = [task_service_pb2.DeleteTaskRequest(name=name) for name in names or (T("a"),)]
    return _build(task_service_pb2.BatchDeleteTasksRequest, {"parent": PULL, "requests": items}, fields)


def lease(**fields) -> task_service_pb2.LeaseTasksRequest:
    return _build(task_service_pb2.LeaseTasksRequest, {"parent": PULL, "lease_duration": D(60), "max_tasks": 1}, fields)


def modify(name: str = T("b"), token: str = "x", **fields) -> task_service_pb2.ModifyLeaseRequest:
    return _build(
        task_service_pb2.ModifyLeaseRequest, {"name": name, "lease_token": token, "lease_duration": D(60)}, fields
    )


def run(name: str) -> task_service_pb2.RunTaskRequest:
    return task_service_pb2.RunTaskRequest(name=name)


def queue(name: str = "queues/new", **fields) -> queue_pb2.Queue:
    return _build(queue_pb2.Queue, {"name": name}, fields)


def create_queue(**fields) -> queue_service_pb2.CreateQueueRequest:
    return queue_service_pb2.CreateQueueRequest(queue=queue(**fields))


def update_queue(mask: list[str] | None = None, **fields) -> queue_service_pb2.UpdateQueueRequest:
    fields.setdefault("name", PULL)
    return queue_service_pb2.UpdateQueueRequest(
        queue=queue(**fields), update_mask=field_mask_pb2.FieldMask(paths=mask or [])
    )


# The world every test starts from ----------------------------------------------------------


@dataclasses.dataclass
class World:
    #: The current lease token of T("b") (leased for an hour).
    lease_token: str
    #: A token of T("d") that is stale: that lease was released.
    stale_token: str
    #: ListTasks(parent=PULL, page_size=1)'s next_page_token.
    tasks_page_token: str
    #: ListQueues(page_size=1)'s next_page_token.
    queues_page_token: str


def populate(server: ServerHarness) -> World:
    """queues/dlq, queues/pull (dead-lettering to dlq) holding a (ready, tag ta), b (leased),
    c (scheduled a day ahead), d (ready again after a released lease) and the tombstone of
    `gone`; queues/push with one task; queues/paused (a paused pull queue) with one task."""
    tasks, queues = server.tasks, server.queues
    server.create_queue("dlq")
    server.create_queue("pull", dead_letter_queue=DLQ, retry_config=RC(max_attempts=5))
    server.create_queue("push", queue_pb2.QUEUE_TYPE_PUSH, rate_limits=RL(max_dispatches_per_second=5))
    server.create_queue("paused")
    queues.PauseQueue(queue_service_pb2.PauseQueueRequest(name=PAUSED))
    server.create_queue("web", queue_pb2.QUEUE_TYPE_PUSH, http_target=HT(uri="https://worker.example.com/base"))
    server.create_queue("web-absolute", queue_pb2.QUEUE_TYPE_PUSH, http_target=HT(headers={"X-Env": "test"}))
    server.create_task("push", b"P", name=T("p", "push"))
    server.create_task("paused", b"P", name=T("p", "paused"))
    server.create_task("pull", b"B", name=T("b"), tag="tb")
    [leased] = server.lease("pull", 3600, 1, tag="tb")
    server.create_task("pull", b"D", name=T("d"), tag="td")
    [released] = server.lease("pull", 3600, 1, tag="td")
    tasks.ModifyLease(modify(T("d"), released.lease_token, lease_duration=D(0)))
    server.create_task("pull", b"A", name=T("a"), tag="ta", attributes={"k": "v"})
    server.create_task("pull", b"C", name=T("c"), schedule_time=TS(int(time.time()) + DAY))
    server.create_task("pull", b"G", name=T("gone"))
    tasks.DeleteTask(delete(T("gone")))
    return World(
        lease_token=leased.lease_token,
        stale_token=released.lease_token,
        tasks_page_token=tasks.ListTasks(list_tasks(page_size=1)).next_page_token,
        queues_page_token=queues.ListQueues(queue_service_pb2.ListQueuesRequest(page_size=1)).next_page_token,
    )


@pytest.fixture(scope="module")
def templates(tmp_path_factory) -> dict[str, Any]:
    """The World of each engine, populated once through the API by a server that is then
    stopped: a RocksDB directory, or a PostgreSQL database to clone; built when first asked."""
    return {}


def populated(templates: dict[str, Any], engine: str, request, tmp_path_factory) -> tuple[Any, World]:
    if engine not in templates:
        if engine == "postgres":
            cluster = request.getfixturevalue("postgres_cluster")
            source = cluster.new_database()
            harness = ServerHarness(str(tmp_path_factory.mktemp("world") / "data"), database=source)
        else:
            source = tmp_path_factory.mktemp("world") / "data"
            harness = ServerHarness(str(source))
        try:
            world = populate(harness)
        finally:
            harness.close()
        templates[engine] = (source, world)
    return templates[engine]


@pytest.fixture
def world(templates, engine, request, tmp_path_factory) -> World:
    return populated(templates, engine, request, tmp_path_factory)[1]


@pytest.fixture
def server(templates, engine, request, tmp_path, tmp_path_factory):
    """A server on a copy of the World: of its RocksDB directory, or of its PostgreSQL database
    (CREATE DATABASE ... TEMPLATE)."""
    source, _ = populated(templates, engine, request, tmp_path_factory)
    if engine == "postgres":
        harness = ServerHarness(str(tmp_path / "data"),
                                database=request.getfixturevalue("postgres_cluster").new_database(template=source))
    else:
        shutil.copytree(source, tmp_path / "data")
        harness = ServerHarness(str(tmp_path / "data"))
    yield harness
    harness.close()


def snapshot(server: ServerHarness) -> dict[str, dict[str, Any]]:
    """Everything stored, as readable text: each queue's full configuration, its tasks in
    TASK_VIEW_FULL and its statistics."""
    result: dict[str, dict[str, Any]] = {}
    token = ""
    while True:
        page = server.queues.ListQueues(queue_service_pb2.ListQueuesRequest(page_size=1000, page_token=token))
        for found in page.queues:
            tasks = []
            task_token = ""
            while True:
                task_page = server.tasks.ListTasks(
                    list_tasks(parent=found.name, view=task_pb2.TASK_VIEW_FULL, page_size=1000, page_token=task_token)
                )
                tasks += [text_format.MessageToString(found_task, as_one_line=True) for found_task in task_page.tasks]
                task_token = task_page.next_page_token
                if not task_token:
                    break
            stats = server.queues.GetQueueStats(queue_service_pb2.GetQueueStatsRequest(name=found.name)).stats
            result[found.name] = {
                "queue": text_format.MessageToString(found, as_one_line=True),
                "tasks": tasks,
                "stats": text_format.MessageToString(stats, as_one_line=True),
            }
        token = page.next_page_token
        if not token:
            return result


# Checking an error --------------------------------------------------------------------------


def _detail(status: status_pb2.Status, kind):
    found = [detail for detail in status.details if detail.Is(kind.DESCRIPTOR)]
    assert len(found) <= 1, f"more than one {kind.DESCRIPTOR.name} detail"
    if not found:
        return None
    message = kind()
    found[0].Unpack(message)
    return message


def check_status(status: status_pb2.Status, code: grpc.StatusCode, reason: str, field: str | None) -> None:
    """A google.rpc.Status (of a call or of one batch item) is the expected one."""
    assert status.code not in (grpc.StatusCode.UNKNOWN.value[0], grpc.StatusCode.INTERNAL.value[0]), status
    assert status.code == code.value[0], f"expected {code.name}, got {status}"
    info = _detail(status, error_details_pb2.ErrorInfo)
    assert info is not None, f"no ErrorInfo in {status}"
    assert (info.domain, info.reason) == (DOMAIN, reason), status
    bad_request = _detail(status, error_details_pb2.BadRequest)
    if code == IA:
        assert bad_request is not None, f"no BadRequest in {status}"
        fields = [violation.field for violation in bad_request.field_violations]
        assert field in fields, f"expected a violation of {field}, got {fields}"
        assert all(violation.description for violation in bad_request.field_violations)
    else:
        assert field is None, "field violations are for INVALID_ARGUMENT"
        assert bad_request is None, status
    if code == FP:
        failure = _detail(status, error_details_pb2.PreconditionFailure)
        assert failure is not None and failure.violations, f"no PreconditionFailure in {status}"
        if reason == "LEASE_LOST":
            assert failure.violations[0].type == "LEASE", failure
    if code in (NF, AE):
        resource = _detail(status, error_details_pb2.ResourceInfo)
        assert resource is not None and resource.resource_name, f"no ResourceInfo in {status}"


def check_error(error: grpc.RpcError, code: grpc.StatusCode, reason: str | None, field: str | None) -> None:
    assert error.code() not in (grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL), error
    assert error.code() == code, f"expected {code.name}, got {error.code().name}: {error.details()}"
    if reason is None:  # refused by the transport, before taskq sees the request
        return
    status = rpc_status.from_call(error)
    assert status is not None, f"no google.rpc.Status in the trailers: {error.details()}"
    assert error_reason(error) == reason
    check_status(status, code, reason, field)


# The catalogue ------------------------------------------------------------------------------


class Case(NamedTuple):
    id: str
    rpc: str
    request: Any  # a message, or a function World -> message
    code: grpc.StatusCode
    reason: str | None
    field: str | None = None


#: (id, queue name, reason): names that are not `queues/{queue_id}`.
BAD_QUEUE_NAMES = [
    ("empty", "", "REQUIRED_FIELD"),
    ("no-prefix", "pull", "INVALID_NAME"),
    ("prefix-only", "queues/", "INVALID_NAME"),
    ("trailing-slash", "queues/pull/", "INVALID_NAME"),
    ("double-slash", "queues//pull", "INVALID_NAME"),
    ("underscore", "queues/pu_ll", "INVALID_NAME"),
    ("dot", "queues/pu.ll", "INVALID_NAME"),
    ("dotdot", "queues/../pull", "INVALID_NAME"),
    ("101-chars", "queues/" + "a" * 101, "INVALID_NAME"),
    ("unicode", "queues/pülle", "INVALID_NAME"),
    ("fullwidth", "queues/ｐｕｌｌ", "INVALID_NAME"),
    ("arabic-digit", "queues/q\u0661", "INVALID_NAME"),
    ("space", "queues/pu ll", "INVALID_NAME"),
    ("leading-space", " queues/pull", "INVALID_NAME"),
    ("newline", "queues/pull\n", "INVALID_NAME"),
    ("nul", "queues/pull\x00", "INVALID_NAME"),
    ("upper-collection", "QUEUES/pull", "INVALID_NAME"),
    ("task-name", "queues/pull/tasks/a", "INVALID_NAME"),
    ("url", "https://example.com/queues/pull", "INVALID_NAME"),
]
#: Well-formed names of queues that do not exist.
UNKNOWN_QUEUES = [("unknown", "queues/nope"), ("100-chars", "queues/" + "a" * 100), ("case", "queues/PULL")]

#: (id, task name, reason): names that are not `queues/{queue_id}/tasks/{task_id}`.
BAD_TASK_NAMES = [
    ("empty", "", "REQUIRED_FIELD"),
    ("queue-name", "queues/pull", "INVALID_NAME"),
    ("no-id", "queues/pull/tasks/", "INVALID_NAME"),
    ("no-prefix", "pull/tasks/a", "INVALID_NAME"),
    ("wrong-collection", "queues/pull/task/a", "INVALID_NAME"),
    ("trailing-slash", "queues/pull/tasks/a/", "INVALID_NAME"),
    ("nested", "queues/pull/tasks/a/b", "INVALID_NAME"),
    ("dot", "queues/pull/tasks/a.b", "INVALID_NAME"),
    ("dotdot", "queues/pull/tasks/../a", "INVALID_NAME"),
    ("501-chars", T("a" * 501), "INVALID_NAME"),
    ("unicode", T("é"), "INVALID_NAME"),
    ("space", T("a b"), "INVALID_NAME"),
    ("newline", T("a") + "\n", "INVALID_NAME"),
    ("bad-queue-id", "queues/pu_ll/tasks/a", "INVALID_NAME"),
    ("101-char-queue-id", T("a", "q" * 101), "INVALID_NAME"),
]
#: (id, well-formed task name, code, reason) of tasks that do not exist.
UNKNOWN_TASKS = [
    ("unknown-task", T("nope"), NF, "TASK_NOT_FOUND"),
    ("500-char-id", T("a" * 500), NF, "TASK_NOT_FOUND"),
    ("finished-task", T("gone"), NF, "TASK_NOT_FOUND"),
    ("unknown-queue", T("a", "nope"), NF, "QUEUE_NOT_FOUND"),
]


#: The names every RPC is tried with; the full lists above go to one RPC per validator
#: (GetQueue, CreateQueue, GetTask, CreateTask's task.name), which every other RPC shares.
SOME_BAD_QUEUE_NAMES = [item for item in BAD_QUEUE_NAMES
                        if item[0] in ("empty", "dotdot", "101-chars", "unicode", "task-name")]
SOME_BAD_TASK_NAMES = [item for item in BAD_TASK_NAMES
                       if item[0] in ("empty", "queue-name", "dotdot", "501-chars", "unicode", "bad-queue-id")]


def _parent_cases(rpc: str, make: Callable[[str], Any], field: str = "parent", *, every: bool = False) -> list[Case]:
    """Bad and unknown queue names in the request's queue field."""
    bad, unknown = (BAD_QUEUE_NAMES, UNKNOWN_QUEUES) if every else (SOME_BAD_QUEUE_NAMES, UNKNOWN_QUEUES[:1])
    return [Case(f"{rpc}-{field}-{name_id}", rpc, make(name), IA, reason, field) for name_id, name, reason in bad] + [
        Case(f"{rpc}-{field}-{name_id}", rpc, make(name), NF, "QUEUE_NOT_FOUND") for name_id, name in unknown
    ]


def _task_name_cases(rpc: str, make: Callable[[str], Any], *, unknown: bool = True, every: bool = False) -> list[Case]:
    """Bad (and, unless unknown=False, unknown) task names in the request's `name`."""
    bad = BAD_TASK_NAMES if every else SOME_BAD_TASK_NAMES
    cases = [Case(f"{rpc}-name-{name_id}", rpc, make(name), IA, reason, "name") for name_id, name, reason in bad]
    if unknown:
        cases += [Case(f"{rpc}-{name_id}", rpc, make(name), code, reason)
                  for name_id, name, code, reason in UNKNOWN_TASKS]
    return cases


#: (id, RetryConfig, reason, field under retry_config): shared by tasks and queues.
BAD_RETRY = [
    ("max_attempts-minus2", RC(max_attempts=-2), "VALUE_OUT_OF_RANGE", "max_attempts"),
    ("max_attempts-1000001", RC(max_attempts=1_000_001), "VALUE_OUT_OF_RANGE", "max_attempts"),
    ("max_retry_duration-negative", RC(max_retry_duration=D(-1)), "INVALID_DURATION", "max_retry_duration"),
    ("max_retry_duration-3651d", RC(max_retry_duration=D(3651 * DAY)), "DURATION_OUT_OF_RANGE", "max_retry_duration"),
    ("min_backoff-negative", RC(min_backoff=D(-1)), "INVALID_DURATION", "min_backoff"),
    ("min_backoff-negative-nanos", RC(min_backoff=D(0, -1)), "INVALID_DURATION", "min_backoff"),
    ("min_backoff-nanos-1e9", RC(min_backoff=D(0, 1_000_000_000)), "INVALID_DURATION", "min_backoff"),
    ("min_backoff-mixed-signs", RC(min_backoff=D(1, -1)), "INVALID_DURATION", "min_backoff"),
    ("min_backoff-over-10000-years", RC(min_backoff=D(315_576_000_001)), "INVALID_DURATION", "min_backoff"),
    ("min_backoff-30d-1ns-over", RC(min_backoff=D(30 * DAY, 1)), "DURATION_OUT_OF_RANGE", "min_backoff"),
    ("max_backoff-30d-1s-over", RC(max_backoff=D(30 * DAY + 1)), "DURATION_OUT_OF_RANGE", "max_backoff"),
    ("max_backoff-negative", RC(max_backoff=D(-5)), "INVALID_DURATION", "max_backoff"),
    ("min_backoff-above-max", RC(min_backoff=D(10), max_backoff=D(5)), "MIN_BACKOFF_ABOVE_MAX", "min_backoff"),
    ("max_doublings-minus1", RC(max_doublings=-1), "VALUE_OUT_OF_RANGE", "max_doublings"),
    ("max_doublings-65", RC(max_doublings=65), "VALUE_OUT_OF_RANGE", "max_doublings"),
]
#: (id, dispatch_deadline, reason): allowed 15 s to 24 h, on tasks and queues.
BAD_DEADLINES = [
    ("14s", D(14), "DURATION_OUT_OF_RANGE"),
    ("15s-1ns-under", D(14, 999_999_999), "DURATION_OUT_OF_RANGE"),
    ("24h-1s-over", D(DAY + 1), "DURATION_OUT_OF_RANGE"),
    ("24h-1ns-over", D(DAY, 1), "DURATION_OUT_OF_RANGE"),
    ("negative", D(-30), "INVALID_DURATION"),
    ("nanos-out-of-range", D(20, 1_000_000_000), "INVALID_DURATION"),
]
#: (id, URL, reason): URLs no HTTP target or request may have.
BAD_URLS = [
    ("ftp", "ftp://worker.example.com/x", "INVALID_URL"),
    ("no-scheme", "worker.example.com/x", "INVALID_URL"),
    ("no-host", "http:///x", "INVALID_URL"),
    ("credentials", "https://user:secret@worker.example.com/", "INVALID_URL"),
    ("fragment", "https://worker.example.com/#top", "INVALID_URL"),
    ("space", "https://worker.example.com/a b", "INVALID_URL"),
    ("unicode", "https://worker.example.com/é", "INVALID_URL"),
    ("newline", "https://worker.example.com/\r\nX-Injected: 1", "INVALID_URL"),
    ("port-99999", "https://worker.example.com:99999/", "INVALID_URL"),
    ("port-0", "https://worker.example.com:0/", "INVALID_URL"),
    ("scheme-relative", "//worker.example.com/x", "INVALID_URL"),
    ("2049-bytes", "https://worker.example.com/" + "a" * 2022, "URL_TOO_LONG"),
]
#: (id, headers, reason): headers no HTTP target or request may have.
BAD_HEADERS = [
    ("name-with-space", {"Bad Name": "v"}, "INVALID_HEADER"),
    ("name-empty", {"": "v"}, "INVALID_HEADER"),
    ("name-colon", {"X:Y": "v"}, "INVALID_HEADER"),
    ("value-crlf", {"X-Ok": "a\r\nX-Injected: 1"}, "INVALID_HEADER"),
    ("value-unicode", {"X-Ok": "é"}, "INVALID_HEADER"),
    ("twice-any-case", {"X-Same": "1", "x-same": "2"}, "INVALID_HEADER"),
    ("host", {"Host": "evil.example.com"}, "RESERVED_HEADER"),
    ("content-length", {"content-length": "5"}, "RESERVED_HEADER"),
    ("app-engine-task-name", {"X-AppEngine-TaskName": "forged"}, "RESERVED_HEADER"),
    ("app-engine-user-is-admin", {"X-AppEngine-User-Is-Admin": "1"}, "RESERVED_HEADER"),
    ("cloud-tasks", {"X-CloudTasks-QueueName": "forged"}, "RESERVED_HEADER"),
    ("taskq-signature", {"X-Taskq-Signature": "t=1,v1=00"}, "RESERVED_HEADER"),
    ("101-headers", {f"X-H{i}": "v" for i in range(101)}, "TOO_MANY_HEADERS"),
    ("over-64KiB", {"X-Big": "v" * 65_530, "X-Big2": "v" * 10}, "HEADERS_TOO_LARGE"),
]
#: (id, Queue fields, reason, field under queue): every configurable queue field's limits.
BAD_QUEUE_FIELDS = [
    ("type-9", {"type": 9}, "INVALID_ENUM_VALUE", "type"),
    ("type-negative", {"type": -1}, "INVALID_ENUM_VALUE", "type"),
    *[(f"rate-{rate_id}", {"rate_limits": RL(max_dispatches_per_second=rate)}, "VALUE_OUT_OF_RANGE",
       "rate_limits.max_dispatches_per_second")
      for rate_id, rate in [("nan", float("nan")), ("inf", float("inf")), ("minus-inf", float("-inf")), ("0", 0.0),
                            ("negative", -1.0), ("above-1e6", 1_000_000.5), ("minus-0", -0.0)]],
    ("burst-negative", {"rate_limits": RL(max_burst_size=-1)}, "VALUE_OUT_OF_RANGE", "rate_limits.max_burst_size"),
    ("burst-100001", {"rate_limits": RL(max_burst_size=100_001)}, "VALUE_OUT_OF_RANGE", "rate_limits.max_burst_size"),
    ("concurrent-negative", {"rate_limits": RL(max_concurrent_dispatches=-1)}, "VALUE_OUT_OF_RANGE",
     "rate_limits.max_concurrent_dispatches"),
    ("concurrent-100001", {"rate_limits": RL(max_concurrent_dispatches=100_001)}, "VALUE_OUT_OF_RANGE",
     "rate_limits.max_concurrent_dispatches"),
    *[(f"retry-{retry_id}", {"retry_config": retry}, reason, f"retry_config.{field}")
      for retry_id, retry, reason, field in BAD_RETRY],
    *[(f"dispatch_deadline-{deadline_id}", {"dispatch_deadline": deadline}, reason, "dispatch_deadline")
      for deadline_id, deadline, reason in BAD_DEADLINES],
    ("task_ttl-59s", {"task_ttl": D(59)}, "DURATION_OUT_OF_RANGE", "task_ttl"),
    ("task_ttl-3651d", {"task_ttl": D(3651 * DAY)}, "DURATION_OUT_OF_RANGE", "task_ttl"),
    ("task_ttl-negative", {"task_ttl": D(-60)}, "INVALID_DURATION", "task_ttl"),
    ("tombstone_ttl-30d-1s-over", {"tombstone_ttl": D(30 * DAY + 1)}, "DURATION_OUT_OF_RANGE", "tombstone_ttl"),
    ("tombstone_ttl-negative", {"tombstone_ttl": D(-1)}, "INVALID_DURATION", "tombstone_ttl"),
    ("dead_letter-no-prefix", {"dead_letter_queue": "dlq"}, "INVALID_NAME", "dead_letter_queue"),
    ("dead_letter-task-name", {"dead_letter_queue": T("a", "dlq")}, "INVALID_NAME", "dead_letter_queue"),
    ("dead_letter-101-chars", {"dead_letter_queue": "queues/" + "d" * 101}, "INVALID_NAME", "dead_letter_queue"),
    ("dead_letter-missing", {"dead_letter_queue": "queues/nope"}, "DEAD_LETTER_QUEUE_NOT_FOUND", "dead_letter_queue"),
    *[(f"http_target.uri-{url_id}", {"http_target": HT(uri=url)}, reason, "http_target.uri")
      for url_id, url, reason in [*BAD_URLS, ("path", "/tasks", "INVALID_URL")]],
    *[(f"http_target.headers-{headers_id}", {"http_target": HT(uri="https://w.example.com", headers=headers)}, reason,
       "http_target.headers") for headers_id, headers, reason in BAD_HEADERS],
    ("http_target.http_method-8", {"http_target": HT(http_method=8)}, "INVALID_ENUM_VALUE", "http_target.http_method"),
    ("http_target.http_method-negative", {"http_target": HT(http_method=-1)}, "INVALID_ENUM_VALUE",
     "http_target.http_method"),
    ("http_target-on-pull", {"type": queue_pb2.QUEUE_TYPE_PULL, "http_target": HT(uri="https://w.example.com")},
     "HTTP_TARGET_ON_PULL_QUEUE", "http_target"),
]

CT, BCT, GT, LT, DT, BDT, LEASE, ML, RT = (
    "CreateTask", "BatchCreateTasks", "GetTask", "ListTasks", "DeleteTask", "BatchDeleteTasks", "LeaseTasks",
    "ModifyLease", "RunTask",
)
CQ, GQ, LQ, UQ, DQ, PQ, RQ, PGQ, QS = (
    "CreateQueue", "GetQueue", "ListQueues", "UpdateQueue", "DeleteQueue", "PauseQueue", "ResumeQueue",
    "PurgeQueue", "GetQueueStats",
)

CREATE_TASK_CASES = [
    *_parent_cases(CT, lambda name: create(parent=name)),
    Case("CreateTask-task-missing", CT, task_service_pb2.CreateTaskRequest(parent=PULL), IA, "REQUIRED_FIELD", "task"),
    *[Case(f"CreateTask-task.name-{name_id}", CT, create(task(name=name)), IA, "INVALID_NAME", "task.name")
      for name_id, name, _ in BAD_TASK_NAMES[1:]],
    Case("CreateTask-task.name-other-queue", CT, create(task(name=T("x", "push"))), IA, "PARENT_MISMATCH", "task.name"),
    Case("CreateTask-task.name-unknown-queue", CT, create(task(name=T("x", "nope"))), IA, "PARENT_MISMATCH",
         "task.name"),
    Case("CreateTask-name-exists", CT, create(task(name=T("a"))), AE, "TASK_ALREADY_EXISTS"),
    Case("CreateTask-name-exists-leased", CT, create(task(name=T("b"))), AE, "TASK_ALREADY_EXISTS"),
    Case("CreateTask-name-tombstoned", CT, create(task(name=T("gone"))), AE, "TASK_TOMBSTONED"),
    Case("CreateTask-payload-limit+1", CT, lambda w: create(task(payload=b"x" * (MAX_TASK_BYTES + 1))), IA,
         "TASK_TOO_LARGE", "task.payload"),
    Case("CreateTask-payload+attributes-limit+1", CT,
         lambda w: create(task(payload=b"x" * (MAX_TASK_BYTES - 10), attributes={"key": "12345678"})), IA,
         "TASK_TOO_LARGE", "task.payload"),
    Case("CreateTask-payload+tag-limit+1", CT,
         lambda w: create(task(payload=b"x" * (MAX_TASK_BYTES - 499), tag="t" * 500)), IA, "TASK_TOO_LARGE",
         "task.payload"),
    Case("CreateTask-attribute-values-too-large", CT,
         lambda w: create(task(attributes={f"k{i}": "v" * (MAX_TASK_BYTES // 50) for i in range(60)})), IA,
         "TASK_TOO_LARGE", "task.payload"),
    Case("CreateTask-payload-over-message-limit", CT, lambda w: create(task(payload=b"x" * (33 * MIB))), RE, None),
    Case("CreateTask-101-attributes", CT, create(task(attributes={f"k{i}": "" for i in range(101)})), IA,
         "TOO_MANY_ATTRIBUTES", "task.attributes"),
    Case("CreateTask-attribute-key-empty", CT, create(task(attributes={"": "v"})), IA, "INVALID_ATTRIBUTE_KEY",
         "task.attributes"),
    Case("CreateTask-attribute-key-257-bytes", CT, create(task(attributes={"k" * 257: "v"})), IA,
         "INVALID_ATTRIBUTE_KEY", "task.attributes"),
    Case("CreateTask-attribute-key-258-utf8-bytes", CT, create(task(attributes={"é" * 129: "v"})), IA,
         "INVALID_ATTRIBUTE_KEY", "task.attributes"),
    Case("CreateTask-tag-501-bytes", CT, create(task(tag="t" * 501)), IA, "TAG_TOO_LONG", "task.tag"),
    Case("CreateTask-tag-251-chars-502-bytes", CT, create(task(tag="é" * 251)), IA, "TAG_TOO_LONG", "task.tag"),
    Case("CreateTask-schedule_time-nanos-negative", CT, create(task(schedule_time=TS(NOW, -1))), IA,
         "INVALID_TIMESTAMP", "task.schedule_time"),
    Case("CreateTask-schedule_time-nanos-1e9", CT, create(task(schedule_time=TS(NOW, 1_000_000_000))), IA,
         "INVALID_TIMESTAMP", "task.schedule_time"),
    Case("CreateTask-schedule_time-year-10000", CT, create(task(schedule_time=TS(253_402_300_800))), IA,
         "INVALID_TIMESTAMP", "task.schedule_time"),
    Case("CreateTask-schedule_time-year-0", CT, create(task(schedule_time=TS(-62_135_596_801))), IA,
         "INVALID_TIMESTAMP", "task.schedule_time"),
    Case("CreateTask-schedule_time-int64-max", CT, create(task(schedule_time=TS(2**63 - 1))), IA,
         "INVALID_TIMESTAMP", "task.schedule_time"),
    Case("CreateTask-schedule_time-366-days", CT,
         lambda w: create(task(schedule_time=TS(int(time.time()) + 366 * DAY))), IA, "SCHEDULE_TIME_TOO_FAR",
         "task.schedule_time"),
    Case("CreateTask-schedule_time-year-9999", CT, create(task(schedule_time=TS(253_402_300_799))), IA,
         "SCHEDULE_TIME_TOO_FAR", "task.schedule_time"),
    *[Case(f"CreateTask-retry-{retry_id}", CT, create(task(retry_config=retry)), IA, reason,
           f"task.retry_config.{field}") for retry_id, retry, reason, field in BAD_RETRY],
    *[Case(f"CreateTask-dispatch_deadline-{deadline_id}", CT, create(task(dispatch_deadline=deadline)), IA, reason,
           "task.dispatch_deadline") for deadline_id, deadline, reason in BAD_DEADLINES],
    Case("CreateTask-request_id-space", CT, create(request_id="a b"), IA, "INVALID_REQUEST_ID", "request_id"),
    Case("CreateTask-request_id-101-chars", CT, create(request_id="r" * 101), IA, "INVALID_REQUEST_ID", "request_id"),
    Case("CreateTask-request_id-unicode", CT, create(request_id="ré"), IA, "INVALID_REQUEST_ID", "request_id"),
    Case("CreateTask-request_id-newline", CT, create(request_id="r\n"), IA, "INVALID_REQUEST_ID", "request_id"),
    Case("CreateTask-response_view-7", CT, create(response_view=7), IA, "INVALID_ENUM_VALUE", "response_view"),
    Case("CreateTask-response_view-negative", CT, create(response_view=-1), IA, "INVALID_ENUM_VALUE", "response_view"),
]

HTTP_TASK_CASES = [
    *[Case(f"CreateTask-http_request.url-{url_id}", CT, create(task(http_request=HR(url=url)), parent=WEB), IA, reason,
           "task.http_request.url") for url_id, url, reason in BAD_URLS],
    *[Case(f"CreateTask-http_request.headers-{headers_id}", CT,
           create(task(http_request=HR(headers=headers)), parent=WEB), IA, reason, "task.http_request.headers")
      for headers_id, headers, reason in BAD_HEADERS],
    Case("CreateTask-http_request.http_method-8", CT, create(task(http_request=HR(http_method=8)), parent=WEB), IA,
         "INVALID_ENUM_VALUE", "task.http_request.http_method"),
    Case("CreateTask-http_request-on-a-streamed-queue", CT,
         create(task(http_request=HR(url="https://w.example.com/")), parent=PUSH), IA, "NOT_AN_HTTP_QUEUE",
         "task.http_request"),
    Case("CreateTask-http_request-on-a-pull-queue", CT, create(task(http_request=HR(url="/x"))), IA,
         "NOT_AN_HTTP_QUEUE", "task.http_request"),
    Case("CreateTask-payload-with-GET", CT,
         create(task(payload=b"body", http_request=HR(http_method=http_pb2.HTTP_METHOD_GET)), parent=WEB), IA,
         "PAYLOAD_NOT_ALLOWED", "task.payload"),
    Case("CreateTask-no-url-and-no-uri", CT, create(task(payload=b"x"), parent=WEB_ABSOLUTE), IA, "URL_REQUIRED",
         "task.http_request.url"),
    Case("CreateTask-path-and-no-uri", CT, create(task(http_request=HR(url="/x")), parent=WEB_ABSOLUTE), IA,
         "URL_REQUIRED", "task.http_request.url"),
    Case("CreateTask-payload+headers-limit+1", CT,
         lambda w: create(task(payload=b"x" * (MAX_TASK_BYTES - 10), http_request=HR(headers={"X-Pad": "p" * 6})),
                          parent=WEB), IA, "TASK_TOO_LARGE", "task.payload"),
]

BATCH_CREATE_CASES = [
    *_parent_cases(BCT, lambda name: batch_create(parent=name)),
    Case("BatchCreateTasks-0-requests", BCT, batch_create(0), IA, "REQUIRED_FIELD", "requests"),
    Case("BatchCreateTasks-1001-requests", BCT, lambda w: batch_create(1001), IA, "BATCH_TOO_LARGE", "requests"),
    Case("BatchCreateTasks-over-message-limit", BCT,
         lambda w: batch_create(parent=PULL, requests=[create(task(payload=b"x" * MIB), parent=None)
                                                       for _ in range(33)]), RE, None),
]

GET_TASK_CASES = [
    *_task_name_cases(GT, get, every=True),
    Case("GetTask-view-7", GT, get(T("a"), view=7), IA, "INVALID_ENUM_VALUE", "view"),
    Case("GetTask-view-negative", GT, get(T("a"), view=-3), IA, "INVALID_ENUM_VALUE", "view"),
]

#: Filters ListTasks refuses with INVALID_FILTER.
BAD_FILTERS = [
    ("unknown-state", "state = BOGUS"),
    ("unspecified-state", "state = UNSPECIFIED"),
    ("prefix-only", "state = TASK_STATE_"),
    ("no-value", "state ="),
    ("no-operator", "state READY"),
    ("colon-operator", "state:READY"),
    ("not-equal", "state != READY"),
    ("unknown-field", "name = READY"),
    ("unquoted-tag", "tag = reports"),
    ("unterminated-string", 'tag = "reports'),
    ("escaped-final-quote", 'tag = "reports\\"'),
    ("single-quotes", "tag = 'reports'"),
    ("trailing-and", "state = READY AND"),
    ("leading-and", "AND state = READY"),
    ("or-without-parens", "state = READY OR LEASED"),
    ("or-between-terms", 'state = READY OR tag = "x"'),
    ("unclosed-paren", "state = (READY OR LEASED"),
    ("empty-parens", "state = ()"),
    ("dangling-or", "state = (READY OR)"),
    ("two-states", "state = READY AND state = LEASED"),
    ("two-tags", 'tag = "a" AND tag = "b"'),
    ("missing-and", 'state = READY tag = "x"'),
    ("number", "state = 2"),
    ("unicode", "státe = READY"),
    ("nul", "state = READY\x00"),
    ("only-symbols", "=()"),
    ("1001-chars", "state = READY" + " " * 988),
]

LIST_TASKS_CASES = [
    *_parent_cases(LT, lambda name: list_tasks(parent=name)),
    *[Case(f"ListTasks-filter-{filter_id}", LT, list_tasks(filter=text), IA, "INVALID_FILTER", "filter")
      for filter_id, text in BAD_FILTERS],
    Case("ListTasks-view-7", LT, list_tasks(view=7), IA, "INVALID_ENUM_VALUE", "view"),
    Case("ListTasks-page_size-negative", LT, list_tasks(page_size=-1), IA, "VALUE_OUT_OF_RANGE", "page_size"),
    Case("ListTasks-page_size-int32-min", LT, list_tasks(page_size=-(2**31)), IA, "VALUE_OUT_OF_RANGE", "page_size"),
    *[Case(f"ListTasks-page_token-{token_id}", LT, list_tasks(page_token=token), IA, "INVALID_PAGE_TOKEN",
           "page_token")
      for token_id, token in [
          ("garbage", "garbage"),
          ("not-base64", "!!!!"),
          ("unicode", "jeton-é"),
          ("base64-not-json", "bm90IGpzb24"),
          ("base64-json-number", "NQ"),
          ("base64-json-null", "bnVsbA"),
          ("base64-json-short-list", "WzEsImEiXQ"),
          ("base64-json-object", "eyJhIjoxLCJiIjoyLCJjIjozfQ"),
          ("base64-invalid-utf8", "__79"),
          ("deeply-nested-json", base64.urlsafe_b64encode(b"[" * 100_000).decode()),
          ("very-long", "A" * 100_000),
      ]],
    Case("ListTasks-page_token-other-filter", LT,
         lambda w: list_tasks(filter="state = READY", page_token=w.tasks_page_token), IA, "INVALID_PAGE_TOKEN",
         "page_token"),
    Case("ListTasks-page_token-other-view", LT,
         lambda w: list_tasks(view=task_pb2.TASK_VIEW_FULL, page_token=w.tasks_page_token), IA, "INVALID_PAGE_TOKEN",
         "page_token"),
    Case("ListTasks-page_token-other-parent", LT,
         lambda w: list_tasks(parent=PUSH, page_token=w.tasks_page_token), IA, "INVALID_PAGE_TOKEN", "page_token"),
    Case("ListTasks-page_token-of-ListQueues", LT, lambda w: list_tasks(page_token=w.queues_page_token), IA,
         "INVALID_PAGE_TOKEN", "page_token"),
    Case("ListTasks-page_token-truncated", LT, lambda w: list_tasks(page_token=w.tasks_page_token[:-3]), IA,
         "INVALID_PAGE_TOKEN", "page_token"),
]

DELETE_TASK_CASES = [
    *_task_name_cases(DT, delete),
    Case("DeleteTask-token-unknown-task", DT, delete(T("nope"), lease_token="x"), FP, "LEASE_LOST"),
    Case("DeleteTask-token-unknown-queue", DT, delete(T("a", "nope"), lease_token="x"), NF, "QUEUE_NOT_FOUND"),
    Case("DeleteTask-stale-token", DT, lambda w: delete(T("d"), lease_token=w.stale_token), FP, "LEASE_LOST"),
    Case("DeleteTask-wrong-token", DT, delete(T("b"), lease_token="not-the-token"), FP, "LEASE_LOST"),
    Case("DeleteTask-token-of-other-task", DT, lambda w: delete(T("a"), lease_token=w.lease_token), FP, "LEASE_LOST"),
    Case("DeleteTask-token-scheduled-task", DT, lambda w: delete(T("c"), lease_token=w.lease_token), FP,
         "LEASE_LOST"),
    Case("DeleteTask-token-finished-task", DT, lambda w: delete(T("gone"), lease_token=w.lease_token), FP,
         "LEASE_LOST"),
    Case("DeleteTask-token-257-chars", DT, delete(T("b"), lease_token="t" * 257), IA, "INVALID_LEASE_TOKEN",
         "lease_token"),
    Case("DeleteTask-token-unicode", DT, delete(T("b"), lease_token="jeton-é"), IA, "INVALID_LEASE_TOKEN",
         "lease_token"),
    Case("DeleteTask-token-nul", DT, delete(T("b"), lease_token="\x00"), IA, "INVALID_LEASE_TOKEN", "lease_token"),
]

BATCH_DELETE_CASES = [
    *_parent_cases(BDT, lambda name: batch_delete(T("a", "x"), parent=name)),
    Case("BatchDeleteTasks-0-requests", BDT, batch_delete(requests=[]), IA, "REQUIRED_FIELD", "requests"),
    Case("BatchDeleteTasks-1001-requests", BDT, lambda w: batch_delete(*[T(f"t{i}") for i in range(1001)]), IA,
         "BATCH_TOO_LARGE", "requests"),
]

LEASE_CASES = [
    *_parent_cases(LEASE, lambda name: lease(parent=name)),
    Case("LeaseTasks-push-queue", LEASE, lease(parent=PUSH), FP, "WRONG_QUEUE_TYPE"),
    Case("LeaseTasks-push-queue-with-wait", LEASE, lease(parent=PUSH, wait=D(5)), FP, "WRONG_QUEUE_TYPE"),
    Case("LeaseTasks-paused-queue", LEASE, lease(parent=PAUSED), FP, "QUEUE_PAUSED"),
    Case("LeaseTasks-paused-queue-with-wait", LEASE, lease(parent=PAUSED, wait=D(5)), FP, "QUEUE_PAUSED"),
    Case("LeaseTasks-lease_duration-missing", LEASE, lease(lease_duration=None), IA, "REQUIRED_FIELD",
         "lease_duration"),
    Case("LeaseTasks-lease_duration-0", LEASE, lease(lease_duration=D(0)), IA, "INVALID_DURATION", "lease_duration"),
    Case("LeaseTasks-lease_duration-negative", LEASE, lease(lease_duration=D(-60)), IA, "INVALID_DURATION",
         "lease_duration"),
    Case("LeaseTasks-lease_duration-negative-nanos", LEASE, lease(lease_duration=D(0, -1)), IA, "INVALID_DURATION",
         "lease_duration"),
    Case("LeaseTasks-lease_duration-nanos-1e9", LEASE, lease(lease_duration=D(1, 1_000_000_000)), IA,
         "INVALID_DURATION", "lease_duration"),
    Case("LeaseTasks-lease_duration-7d-1s-over", LEASE, lease(lease_duration=D(7 * DAY + 1)), IA,
         "DURATION_OUT_OF_RANGE", "lease_duration"),
    Case("LeaseTasks-lease_duration-7d-1ns-over", LEASE, lease(lease_duration=D(7 * DAY, 1)), IA,
         "DURATION_OUT_OF_RANGE", "lease_duration"),
    Case("LeaseTasks-lease_duration-int64-max", LEASE, lease(lease_duration=D(2**63 - 1)), IA, "INVALID_DURATION",
         "lease_duration"),
    Case("LeaseTasks-max_tasks-0", LEASE, lease(max_tasks=0), IA, "REQUIRED_FIELD", "max_tasks"),
    Case("LeaseTasks-max_tasks-1001", LEASE, lease(max_tasks=1001), IA, "VALUE_OUT_OF_RANGE", "max_tasks"),
    Case("LeaseTasks-max_tasks-negative", LEASE, lease(max_tasks=-1), IA, "VALUE_OUT_OF_RANGE", "max_tasks"),
    Case("LeaseTasks-max_tasks-int32-min", LEASE, lease(max_tasks=-(2**31)), IA, "VALUE_OUT_OF_RANGE", "max_tasks"),
    Case("LeaseTasks-tag-501-bytes", LEASE, lease(tag="t" * 501), IA, "TAG_TOO_LONG", "tag"),
    Case("LeaseTasks-tag-251-chars-502-bytes", LEASE, lease(tag="é" * 251), IA, "TAG_TOO_LONG", "tag"),
    Case("LeaseTasks-tag-and-oldest_tag", LEASE, lease(tag="ta", oldest_tag=True), IA, "CONFLICTING_FIELDS",
         "oldest_tag"),
    Case("LeaseTasks-wait-61s", LEASE, lease(wait=D(61)), IA, "DURATION_OUT_OF_RANGE", "wait"),
    Case("LeaseTasks-wait-60s-1ns-over", LEASE, lease(wait=D(60, 1)), IA, "DURATION_OUT_OF_RANGE", "wait"),
    Case("LeaseTasks-wait-negative", LEASE, lease(wait=D(-1)), IA, "INVALID_DURATION", "wait"),
    Case("LeaseTasks-wait-mixed-signs", LEASE, lease(wait=D(-1, 5)), IA, "INVALID_DURATION", "wait"),
    Case("LeaseTasks-response_view-9", LEASE, lease(response_view=9), IA, "INVALID_ENUM_VALUE", "response_view"),
]

MODIFY_LEASE_CASES = [
    *_task_name_cases(ML, modify, unknown=False),
    Case("ModifyLease-unknown-task", ML, modify(T("nope")), FP, "LEASE_LOST"),
    Case("ModifyLease-finished-task", ML, lambda w: modify(T("gone"), w.lease_token), FP, "LEASE_LOST"),
    Case("ModifyLease-unknown-queue", ML, modify(T("a", "nope")), NF, "QUEUE_NOT_FOUND"),
    Case("ModifyLease-lease_token-missing", ML, modify(token=""), IA, "REQUIRED_FIELD", "lease_token"),
    Case("ModifyLease-lease_token-257-chars", ML, modify(token="t" * 257), IA, "INVALID_LEASE_TOKEN", "lease_token"),
    Case("ModifyLease-lease_token-unicode", ML, modify(token="jeton-é"), IA, "INVALID_LEASE_TOKEN", "lease_token"),
    Case("ModifyLease-stale-token", ML, lambda w: modify(T("d"), w.stale_token), FP, "LEASE_LOST"),
    Case("ModifyLease-stale-token-release", ML, lambda w: modify(T("d"), w.stale_token, lease_duration=D(0)), FP,
         "LEASE_LOST"),
    Case("ModifyLease-wrong-token", ML, modify(T("b"), "not-the-token"), FP, "LEASE_LOST"),
    Case("ModifyLease-token-of-other-task", ML, lambda w: modify(T("a"), w.lease_token), FP, "LEASE_LOST"),
    Case("ModifyLease-lease_duration-missing", ML, lambda w: modify(T("b"), w.lease_token, lease_duration=None), IA,
         "REQUIRED_FIELD", "lease_duration"),
    Case("ModifyLease-lease_duration-negative", ML, lambda w: modify(T("b"), w.lease_token, lease_duration=D(-1)), IA,
         "INVALID_DURATION", "lease_duration"),
    Case("ModifyLease-lease_duration-7d-1s-over", ML,
         lambda w: modify(T("b"), w.lease_token, lease_duration=D(7 * DAY + 1)), IA, "DURATION_OUT_OF_RANGE",
         "lease_duration"),
    Case("ModifyLease-lease_duration-nanos-1e9", ML,
         lambda w: modify(T("b"), w.lease_token, lease_duration=D(0, 1_000_000_000)), IA, "INVALID_DURATION",
         "lease_duration"),
]

RUN_TASK_CASES = [
    *_task_name_cases(RT, run),
    Case("RunTask-leased-task", RT, run(T("b")), FP, "TASK_LEASED"),
]

CREATE_QUEUE_CASES = [
    Case("CreateQueue-queue-missing", CQ, queue_service_pb2.CreateQueueRequest(), IA, "REQUIRED_FIELD", "queue"),
    *[Case(f"CreateQueue-queue.name-{name_id}", CQ, create_queue(name=name), IA, reason, "queue.name")
      for name_id, name, reason in BAD_QUEUE_NAMES],
    Case("CreateQueue-exists", CQ, create_queue(name=PULL), AE, "QUEUE_ALREADY_EXISTS"),
    Case("CreateQueue-exists-other-type", CQ, create_queue(name=PUSH, type=queue_pb2.QUEUE_TYPE_PULL), AE,
         "QUEUE_ALREADY_EXISTS"),
    Case("CreateQueue-dead_letter-itself", CQ, create_queue(dead_letter_queue="queues/new"), IA,
         "INVALID_DEAD_LETTER_QUEUE", "queue.dead_letter_queue"),
    *[Case(f"CreateQueue-{field_id}", CQ, create_queue(**fields), IA, reason, f"queue.{field}")
      for field_id, fields, reason, field in BAD_QUEUE_FIELDS],
]

UPDATE_QUEUE_CASES = [
    Case("UpdateQueue-queue-missing", UQ, queue_service_pb2.UpdateQueueRequest(), IA, "REQUIRED_FIELD", "queue"),
    *[Case(f"UpdateQueue-queue.name-{name_id}", UQ, update_queue(name=name), IA, reason, "queue.name")
      for name_id, name, reason in SOME_BAD_QUEUE_NAMES],
    *[Case(f"UpdateQueue-queue.name-{name_id}", UQ, update_queue(name=name), NF, "QUEUE_NOT_FOUND")
      for name_id, name in UNKNOWN_QUEUES],
    *[Case(f"UpdateQueue-mask-{path_id}", UQ, update_queue([path]), IA, reason, "update_mask.paths[0]")
      for path_id, path, reason in [
          ("name", "name", "FIELD_NOT_UPDATABLE"),
          ("type", "type", "FIELD_NOT_UPDATABLE"),
          ("state", "state", "FIELD_NOT_UPDATABLE"),
          ("create_time", "create_time", "FIELD_NOT_UPDATABLE"),
          ("purge_time", "purge_time", "FIELD_NOT_UPDATABLE"),
          ("unknown", "colour", "INVALID_UPDATE_MASK"),
          ("unknown-subfield", "rate_limits.colour", "INVALID_UPDATE_MASK"),
          ("empty-path", "", "INVALID_UPDATE_MASK"),
          ("wildcard", "*", "INVALID_UPDATE_MASK"),
          ("camel-case", "dispatchDeadline", "INVALID_UPDATE_MASK"),
          ("trailing-dot", "retry_config.", "INVALID_UPDATE_MASK"),
          ("unicode", "tâsk_ttl", "INVALID_UPDATE_MASK"),
      ]],
    Case("UpdateQueue-mask-second-path-bad", UQ, update_queue(["task_ttl", "type"], task_ttl=D(3600)), IA,
         "FIELD_NOT_UPDATABLE", "update_mask.paths[1]"),
    Case("UpdateQueue-change-type", UQ, update_queue(type=queue_pb2.QUEUE_TYPE_PUSH), IA, "FIELD_NOT_UPDATABLE",
         "queue.type"),
    Case("UpdateQueue-change-type-masked-out", UQ, update_queue(["task_ttl"], type=queue_pb2.QUEUE_TYPE_PUSH), IA,
         "FIELD_NOT_UPDATABLE", "queue.type"),
    Case("UpdateQueue-dead_letter-itself", UQ, update_queue(["dead_letter_queue"], dead_letter_queue=PULL), IA,
         "INVALID_DEAD_LETTER_QUEUE", "queue.dead_letter_queue"),
    Case("UpdateQueue-min_backoff-above-stored-max", UQ,
         update_queue(["retry_config.min_backoff"], retry_config=RC(min_backoff=D(7200))), IA,
         "MIN_BACKOFF_ABOVE_MAX", "queue.retry_config.min_backoff"),
    *[Case(f"UpdateQueue-{field_id}", UQ, update_queue(**fields), IA, reason, f"queue.{field}")
      for field_id, fields, reason, field in BAD_QUEUE_FIELDS],
]

LIST_QUEUES_CASES = [
    Case("ListQueues-page_size-negative", LQ, queue_service_pb2.ListQueuesRequest(page_size=-1), IA,
         "VALUE_OUT_OF_RANGE", "page_size"),
    Case("ListQueues-page_token-garbage", LQ, queue_service_pb2.ListQueuesRequest(page_token="garbage"), IA,
         "INVALID_PAGE_TOKEN", "page_token"),
    Case("ListQueues-page_token-deeply-nested-json", LQ, queue_service_pb2.ListQueuesRequest(
        page_token=base64.urlsafe_b64encode(b"[" * 100_000).decode()), IA, "INVALID_PAGE_TOKEN",
         "page_token"),
    Case("ListQueues-page_token-of-ListTasks", LQ,
         lambda w: queue_service_pb2.ListQueuesRequest(page_token=w.tasks_page_token), IA, "INVALID_PAGE_TOKEN",
         "page_token"),
]

QUEUE_NAME_CASES = [
    case
    for rpc, cls in [
        (GQ, queue_service_pb2.GetQueueRequest),
        (DQ, queue_service_pb2.DeleteQueueRequest),
        (PQ, queue_service_pb2.PauseQueueRequest),
        (RQ, queue_service_pb2.ResumeQueueRequest),
        (PGQ, queue_service_pb2.PurgeQueueRequest),
        (QS, queue_service_pb2.GetQueueStatsRequest),
    ]
    for case in _parent_cases(rpc, lambda name, cls=cls: cls(name=name), field="name", every=rpc == GQ)
]

CASES = [
    *CREATE_TASK_CASES, *HTTP_TASK_CASES, *BATCH_CREATE_CASES, *GET_TASK_CASES, *LIST_TASKS_CASES, *DELETE_TASK_CASES,
    *BATCH_DELETE_CASES, *LEASE_CASES, *MODIFY_LEASE_CASES, *RUN_TASK_CASES,
    *CREATE_QUEUE_CASES, *UPDATE_QUEUE_CASES, *LIST_QUEUES_CASES, *QUEUE_NAME_CASES,
]
assert len({case.id for case in CASES}) == len(CASES), "case ids must be unique"


def call(server: ServerHarness, rpc: str):
    return getattr(server.tasks, rpc, None) or getattr(server.queues, rpc)


def still_serving(server: ServerHarness) -> None:
    assert server.queues.GetQueue(queue_service_pb2.GetQueueRequest(name=PULL)).queue.name == PULL


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_bad_input(world, server, case: Case):
    request = case.request(world) if callable(case.request) else case.request
    before = snapshot(server)
    with pytest.raises(grpc.RpcError) as raised:
        call(server, case.rpc)(request, timeout=20)
    check_error(raised.value, case.code, case.reason, case.field)
    assert snapshot(server) == before
    still_serving(server)


def test_catalogue_covers_every_unary_rpc():
    from taskq.v1 import queue_service_pb2 as qs
    from taskq.v1 import task_service_pb2 as ts

    methods = {method.name for method in ts.DESCRIPTOR.services_by_name["TaskService"].methods
               if not method.client_streaming and not method.server_streaming}
    methods |= {method.name for method in qs.DESCRIPTOR.services_by_name["QueueService"].methods}
    assert methods == {case.rpc for case in CASES}


# Limits that are accepted --------------------------------------------------------------------


def test_payload_at_the_limit_is_accepted(server):
    created = server.tasks.CreateTask(create(task(name=T("big"), payload=b"x" * MAX_TASK_BYTES))).task
    assert created.name == T("big")
    assert len(server.get_task(T("big")).payload) == MAX_TASK_BYTES


def test_payload_attributes_and_tag_at_the_limit_are_accepted(server):
    attributes = {"k" * 256: "v" * 1000, **{f"a{i}": "" for i in range(99)}}
    tag = "é" * 250  # 500 bytes
    used = sum(len(key.encode()) + len(value.encode()) for key, value in attributes.items()) + len(tag.encode())
    request = create(task(payload=b"x" * (MAX_TASK_BYTES - used), attributes=attributes, tag=tag))
    created = server.tasks.CreateTask(request).task
    assert len(created.attributes) == 100 and created.tag == tag


def test_limits_just_inside_are_accepted(server):
    server.create_queue("edges", queue_pb2.QUEUE_TYPE_PUSH, rate_limits=RL(
        max_dispatches_per_second=1_000_000, max_burst_size=100_000, max_concurrent_dispatches=100_000),
        retry_config=RC(max_attempts=-1, max_retry_duration=D(3650 * DAY), min_backoff=D(30 * DAY),
                        max_backoff=D(30 * DAY), max_doublings=64),
        dispatch_deadline=D(15), task_ttl=D(60), tombstone_ttl=D(30 * DAY))
    server.create_task("edges", name=T("x" * 500, "edges"), schedule_time=TS(int(time.time()) + 364 * DAY),
                       dispatch_deadline=D(DAY), request_id="r" * 100)
    assert server.lease("pull", 7 * DAY, 1000)  # a and d
    page = server.tasks.ListTasks(list_tasks(page_size=5000))
    assert len(page.tasks) == 4 and not page.next_page_token


# Batches: one bad item does not fail the others ----------------------------------------------


def test_batch_create_answers_each_item(server):
    before = snapshot(server)
    items = [
        (create(task(name=T("new1")), parent=None), None),
        (create(task(name=T("bad name")), parent=None), (IA, "INVALID_NAME", "requests[1].task.name")),
        (create(task(payload=b"ok")), None),  # the item's parent may repeat the batch's
        (create(task(), parent=PUSH), (IA, "PARENT_MISMATCH", "requests[3].parent")),
        (create(task(name=T("a")), parent=None), (AE, "TASK_ALREADY_EXISTS", None)),
        (create(task(name=T("gone")), parent=None), (AE, "TASK_TOMBSTONED", None)),
        (create(task(name=T("new1")), parent=None), (AE, "TASK_ALREADY_EXISTS", None)),  # twice in the batch
        (create(task(payload=b"x" * (MAX_TASK_BYTES + 1)), parent=None),
         (IA, "TASK_TOO_LARGE", "requests[7].task.payload")),
        (create(task(schedule_time=TS(int(time.time()) + 400 * DAY)), parent=None),
         (IA, "SCHEDULE_TIME_TOO_FAR", "requests[8].task.schedule_time")),
        (create(task(), parent=None, response_view=7), (IA, "INVALID_ENUM_VALUE", "requests[9].response_view")),
        (task_service_pb2.CreateTaskRequest(), (IA, "REQUIRED_FIELD", "requests[10].task")),
        (create(task(name=T("x", "push")), parent=None), (IA, "PARENT_MISMATCH", "requests[11].task.name")),
        (create(task(name=T("new2"), payload=b"full"), parent=None, response_view=task_pb2.TASK_VIEW_FULL), None),
        (create(task(), parent=None, request_id="a b"), (IA, "INVALID_REQUEST_ID", "requests[13].request_id")),
        (create(task(retry_config=RC(max_doublings=99)), parent=None),
         (IA, "VALUE_OUT_OF_RANGE", "requests[14].task.retry_config.max_doublings")),
        (create(task(tag="t" * 501), parent=None), (IA, "TAG_TOO_LONG", "requests[15].task.tag")),
    ]
    response = server.tasks.BatchCreateTasks(
        task_service_pb2.BatchCreateTasksRequest(parent=PULL, requests=[item for item, _ in items])
    )
    assert len(response.results) == len(items)
    created = []
    for index, (result, (_, expected)) in enumerate(zip(response.results, items)):
        if expected is None:
            assert result.WhichOneof("result") == "task", (index, result)
            created.append(result.task.name)
        else:
            assert result.WhichOneof("result") == "error", (index, result)
            check_status(result.error, *expected)
    assert created[0] == T("new1") and created[2] == T("new2")
    assert response.results[12].task.payload == b"full" and response.results[0].task.payload == b""
    after = snapshot(server)
    for name in (PUSH, PAUSED, DLQ):
        assert after[name] == before[name]
    stored = [line for line in after[PULL]["tasks"] if not any(f'name: "{name}"' in line for name in created)]
    assert stored == before[PULL]["tasks"]
    assert len(after[PULL]["tasks"]) == len(before[PULL]["tasks"]) + 3
    assert server.stats("pull").tasks_count == len(after[PULL]["tasks"])


def test_batch_create_with_only_bad_items_stores_nothing(server):
    before = snapshot(server)
    response = server.tasks.BatchCreateTasks(task_service_pb2.BatchCreateTasksRequest(parent=PULL, requests=[
        create(task(name=T("a")), parent=None),
        create(task(tag="t" * 501), parent=None),
    ]))
    check_status(response.results[0].error, AE, "TASK_ALREADY_EXISTS", None)
    check_status(response.results[1].error, IA, "TAG_TOO_LONG", "requests[1].task.tag")
    assert snapshot(server) == before


def test_batch_delete_answers_each_item(world, server):
    before = snapshot(server)
    items = [
        (delete(T("a")), None),
        (delete(T("p", "push")), (IA, "PARENT_MISMATCH", "requests[1].name")),
        (delete(T("bad name")), (IA, "INVALID_NAME", "requests[2].name")),
        (delete(T("nope")), (NF, "TASK_NOT_FOUND", None)),
        (delete(T("d"), lease_token=world.stale_token), (FP, "LEASE_LOST", None)),
        (delete(T("a")), (NF, "TASK_NOT_FOUND", None)),  # deleted by item 0
        (delete(T("b"), lease_token=world.lease_token), None),  # an acknowledgement
        (delete(T("c"), lease_token=world.lease_token), (FP, "LEASE_LOST", None)),
        (delete(T("c"), lease_token="t" * 257), (IA, "INVALID_LEASE_TOKEN", "requests[8].lease_token")),
        (delete(""), (IA, "REQUIRED_FIELD", "requests[9].name")),
        (delete(T("b"), lease_token=world.lease_token), (FP, "LEASE_LOST", None)),  # acknowledged by item 6
        (delete(T("gone")), (NF, "TASK_NOT_FOUND", None)),
    ]
    response = server.tasks.BatchDeleteTasks(
        task_service_pb2.BatchDeleteTasksRequest(parent=PULL, requests=[item for item, _ in items])
    )
    assert len(response.results) == len(items)
    for index, (result, (_, expected)) in enumerate(zip(response.results, items)):
        if expected is None:
            assert result.code == 0, (index, result)
        else:
            check_status(result, *expected)
    after = snapshot(server)
    for name in (PUSH, PAUSED, DLQ):
        assert after[name] == before[name]
    remaining = [line for line in before[PULL]["tasks"] if T("a") not in line and T("b") not in line]
    assert after[PULL]["tasks"] == remaining
    for name in (T("a"), T("b")):
        with pytest.raises(grpc.RpcError) as raised:
            server.get_task(name)
        check_error(raised.value, NF, "TASK_NOT_FOUND", None)


# Bytes that are not the request message ------------------------------------------------------


def _raw(server: ServerHarness, method: str, payload: bytes):
    return server.channel.unary_unary(method, request_serializer=None, response_deserializer=None)(payload, timeout=10)


#: (id, method, bytes) that grpc's own deserializer refuses before any taskq code runs.
NOT_PROTOBUF = [
    ("garbage", "/taskq.v1.TaskService/CreateTask", b"\xff\xff\xff\xff"),  # a truncated varint key
    ("truncated", "/taskq.v1.TaskService/CreateTask", b"\x0a\x05ab"),  # a length running past the end
    ("invalid-utf8", "/taskq.v1.QueueService/GetQueue", b"\x0a\x01\xff"),  # name: invalid UTF-8 in a string
    ("truncated-submessage", "/taskq.v1.TaskService/LeaseTasks", b"\x12\x03\x08"),  # lease_duration
    ("field-0", "/taskq.v1.QueueService/CreateQueue", b"\x00"),  # field number 0
    ("group-end", "/taskq.v1.TaskService/DeleteTask", b"\x0c"),  # an END_GROUP tag with no group
]


@pytest.mark.parametrize("method, payload", [item[1:] for item in NOT_PROTOBUF], ids=[item[0] for item in NOT_PROTOBUF])
def test_bytes_that_are_not_protobuf_get_invalid_argument(server, method, payload):
    """grpcio itself would answer these with UNKNOWN; taskq decodes requests without raising and
    refuses them like any other bad input. Nothing is stored and the server goes on serving."""
    before = snapshot(server)
    with pytest.raises(grpc.RpcError) as raised:
        _raw(server, method, payload)
    check_malformed(raised.value)
    assert snapshot(server) == before
    still_serving(server)


def check_malformed(error: grpc.RpcError) -> None:
    # No field can be named in a message that does not decode: ErrorInfo only, no BadRequest.
    assert error.code() == IA, error
    assert error_reason(error) == "MALFORMED_REQUEST"
    assert "not a valid protobuf message" in error.details()


def test_a_stream_message_that_is_not_protobuf_is_refused_on_the_stream(server):
    call = server.channel.stream_stream("/taskq.v1.TaskService/StreamTasks", request_serializer=None,
                                        response_deserializer=None)
    with pytest.raises(grpc.RpcError) as raised:
        list(call(iter([b"\xff\xff\xff\xff"]), timeout=10))
    check_malformed(raised.value)
    still_serving(server)


def test_unknown_and_mistyped_fields_are_ignored_like_protobuf_does(server):
    # GetQueue{name: "queues/pull"} followed by unknown field 99 (varint): answered normally.
    answer = _raw(server, "/taskq.v1.QueueService/GetQueue", b"\x0a\x0bqueues/pull" + b"\x98\x06\x01")
    assert queue_service_pb2.GetQueueResponse.FromString(answer).queue.name == PULL
    # name sent with the wrong wire type (varint): protobuf keeps it as an unknown field, so the
    # name is missing.
    with pytest.raises(grpc.RpcError) as raised:
        _raw(server, "/taskq.v1.QueueService/GetQueue", b"\x08\x01")
    check_error(raised.value, IA, "REQUIRED_FIELD", "name")
