"""GET /metrics through a real server: task counters and latencies from the engine's events,
depth and limit gauges read at scrape time, gRPC calls by method and code, the database's
figures, and no series left behind by a deleted queue. On both engines unless marked."""

from __future__ import annotations

import grpc
import pytest

from harness import ServerHarness, eventually, fill, open_stream, push_queue, seconds_to_duration
from taskq.v1 import queue_pb2, queue_service_pb2, task_service_pb2

PULL = queue_pb2.QUEUE_TYPE_PULL

TASK_COUNTERS = (
    "taskq_tasks_created_total", "taskq_tasks_delivered_total", "taskq_tasks_acknowledged_total",
    "taskq_tasks_nacked_total", "taskq_leases_expired_total", "taskq_leases_released_total",
    "taskq_tasks_failed_total", "taskq_tasks_dead_lettered_total", "taskq_tasks_deleted_total",
    "taskq_tasks_purged_total", "taskq_tasks_discarded_total",
)


def counters(scrape, queue_id: str) -> dict[str, float | None]:
    """The queue's task counters that are not 0 (None: the series is missing)."""
    values = {name: scrape.value(name, queue=queue_id) for name in TASK_COUNTERS}
    return {name: value for name, value in values.items() if value != 0}


def depth(scrape, queue_id: str) -> dict[str, float | None]:
    return {state: scrape.value("taskq_queue_tasks", queue=queue_id, state=state)
            for state in ("scheduled", "ready", "leased", "failed")}


def modify_lease(server: ServerHarness, task, seconds: float):
    return server.tasks.ModifyLease(task_service_pb2.ModifyLeaseRequest(
        name=task.name, lease_token=task.lease_token, lease_duration=seconds_to_duration(seconds),
    )).task


def test_the_endpoint_serves_prometheus_text_with_the_process_and_server_figures(metered, scrape):
    metrics = scrape(metered)
    assert metrics.content_type.startswith("text/plain; version=0.0.4")
    assert metrics.value("taskq_ready") == 1
    assert metrics.value("taskq_housekeeping_leader") in (0, 1)
    assert metrics.value("process_resident_memory_bytes") > 0
    assert any(name == "taskq_build_info" for name in metrics.names())


def test_openmetrics_is_served_to_a_scraper_that_asks_for_it(metered):
    import urllib.request

    from prometheus_client.openmetrics.parser import text_string_to_metric_families

    assert metered.server is not None and metered.server.http_port is not None
    request = urllib.request.Request(f"http://127.0.0.1:{metered.server.http_port.port}/metrics",
                                     headers={"Accept": "application/openmetrics-text; version=1.0.0"})
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.headers["Content-Type"].startswith("application/openmetrics-text; version=1.0.0")
        text = response.read().decode()
    assert text.endswith("# EOF\n")
    families = {family.name: family for family in text_string_to_metric_families(text)}
    assert families["taskq_tasks_created"].type == "counter"
    assert families["taskq_task_delivery_delay_seconds"].type == "histogram"


def test_a_pull_task_life_is_counted_created_delivered_acknowledged_with_its_waits(metered, scrape, clock):
    metered.create_queue("work", PULL)
    metered.create_task("work", b"a")
    metered.create_task("work", b"b", schedule_time={"seconds": int(clock.now_us() // 1_000_000) + 3})
    before = scrape(metered)
    assert counters(before, "work") == {"taskq_tasks_created_total": 2}
    assert depth(before, "work") == {"scheduled": 1, "ready": 1, "leased": 0, "failed": 0}
    clock.advance(5)  # "a" was due 5 s ago, "b" 2 s ago
    leased = metered.lease("work", seconds=60)
    assert len(leased) == 2
    clock.advance(1)
    for task in leased:
        metered.ack(task)
    after = scrape(metered)
    assert counters(after, "work") == {
        "taskq_tasks_created_total": 2, "taskq_tasks_delivered_total": 2, "taskq_tasks_acknowledged_total": 2,
    }
    assert depth(after, "work") == {"scheduled": 0, "ready": 0, "leased": 0, "failed": 0}
    # ETA -> delivery: 5 s and 2 s; create -> ack: 6 s each.
    delay = "taskq_task_delivery_delay_seconds"
    assert after.value(f"{delay}_count", queue="work") == 2
    assert after.value(f"{delay}_sum", queue="work") == pytest.approx(7)
    assert after.value(f"{delay}_bucket", queue="work", le="1.0") == 0
    assert after.value(f"{delay}_bucket", queue="work", le="2.5") == 1
    assert after.value(f"{delay}_bucket", queue="work", le="5.0") == 2
    completion = "taskq_task_completion_seconds"
    assert after.value(f"{completion}_sum", queue="work") == pytest.approx(12)
    assert after.value(f"{completion}_bucket", queue="work", le="5.0") == 0
    assert after.value(f"{completion}_bucket", queue="work", le="10.0") == 2


def test_expiries_releases_deletes_and_dead_letters_are_counted_where_they_happened(metered, scrape, clock):
    metered.create_queue("dead", PULL)
    metered.create_queue("work", PULL, dead_letter_queue="queues/dead", retry_config=queue_pb2.RetryConfig(max_attempts=2))
    for payload in (b"expires", b"released", b"deleted"):
        metered.create_task("work", payload)
    leased = {task.payload: task for task in metered.lease("work", seconds=30)}
    modify_lease(metered, leased[b"released"], 0)  # attempt 1 of 2 given back: READY again
    metered.tasks.DeleteTask(task_service_pb2.DeleteTaskRequest(name=leased[b"deleted"].name))
    clock.advance(31)
    assert metered.reap() == 1  # "expires": attempt 1 of 2 ran out, READY again
    again = metered.lease("work", seconds=30)
    assert sorted(task.payload for task in again) == [b"expires", b"released"]
    clock.advance(31)
    assert metered.reap() == 2  # both: attempt 2 of 2 ran out, off to the dead-letter queue
    metrics = scrape(metered)
    assert counters(metrics, "work") == {
        "taskq_tasks_created_total": 3, "taskq_tasks_delivered_total": 5, "taskq_leases_released_total": 1,
        "taskq_tasks_deleted_total": 1, "taskq_leases_expired_total": 3, "taskq_tasks_dead_lettered_total": 2,
    }
    assert counters(metrics, "dead") == {}  # arrivals are not creations
    assert depth(metrics, "work") == {"scheduled": 0, "ready": 0, "leased": 0, "failed": 0}
    assert depth(metrics, "dead") == {"scheduled": 0, "ready": 2, "leased": 0, "failed": 0}
    clock.advance(10)
    assert scrape(metered).value("taskq_queue_oldest_ready_age_seconds", queue="dead") == 10
    assert scrape(metered).value("taskq_queue_oldest_ready_age_seconds", queue="work") == 0


def test_push_nacks_and_failures_are_counted_and_limits_shown_beside_the_leased_count(metered, scrape, streams):
    push_queue(metered, "push", rate_limits=queue_pb2.RateLimits(max_dispatches_per_second=50, max_burst_size=20,
                                                                  max_concurrent_dispatches=7),
               retry_config=queue_pb2.RetryConfig(max_attempts=1))
    fill(metered, "push", 3)
    stream = open_stream(metered, streams, "push", max_outstanding=2)
    first, second = stream.tasks(2)
    stream.nack(first)  # max_attempts 1 and no dead-letter queue: FAILED
    stream.nack(second, permanent=True)
    stream.tasks(1)  # the third, now that credit came back
    expected = {
        "taskq_tasks_created_total": 3, "taskq_tasks_delivered_total": 3, "taskq_tasks_nacked_total": 2,
        "taskq_tasks_failed_total": 2,
    }
    # The first nack's commit gives the credit back; on PostgreSQL the second nack's commit may
    # still be on its way when the third task arrives.
    eventually(lambda: counters(scrape(metered), "push") == expected, seconds=10)
    metrics = scrape(metered)
    assert depth(metrics, "push") == {"scheduled": 0, "ready": 0, "leased": 1, "failed": 2}
    assert metrics.value("taskq_queue_max_dispatches_per_second", queue="push") == 50
    assert metrics.value("taskq_queue_max_burst_size", queue="push") == 20
    assert metrics.value("taskq_queue_max_concurrent_dispatches", queue="push") == 7
    assert metrics.value("taskq_queue_info", queue="push", type="push", dead_letter_queue="") == 1
    assert metrics.value("taskq_grpc_requests_in_flight", service="taskq.v1.TaskService", method="StreamTasks",
                         type="bidi_stream") == 1


def test_pausing_shows_and_pull_queues_have_no_dispatch_limits(metered, scrape):
    metered.create_queue("pull", PULL)
    metered.queues.PauseQueue(queue_service_pb2.PauseQueueRequest(name="queues/pull"))
    metrics = scrape(metered)
    assert metrics.value("taskq_queue_paused", queue="pull") == 1
    assert metrics.value("taskq_queue_max_concurrent_dispatches", queue="pull") is None
    assert metrics.value("taskq_queue_paused", queue="default") == 0  # the HTTP port's App Engine queue


def test_grpc_calls_are_counted_and_timed_by_method_and_code(metered, scrape):
    metered.create_queue("q", PULL)
    with pytest.raises(grpc.RpcError):
        metered.queues.GetQueue(queue_service_pb2.GetQueueRequest(name="queues/missing"))
    with pytest.raises(grpc.RpcError):
        metered.queues.GetQueue(queue_service_pb2.GetQueueRequest(name="not a name"))
    metrics = scrape(metered)
    queue_service = {"service": "taskq.v1.QueueService", "type": "unary"}
    assert metrics.value("taskq_grpc_requests_total", **queue_service, method="CreateQueue", code="OK") == 1
    assert metrics.value("taskq_grpc_requests_total", **queue_service, method="GetQueue", code="NOT_FOUND") == 1
    assert metrics.value("taskq_grpc_requests_total", **queue_service, method="GetQueue", code="INVALID_ARGUMENT") == 1
    duration = "taskq_grpc_request_duration_seconds"
    assert metrics.value(f"{duration}_count", **queue_service, method="GetQueue", code="NOT_FOUND") == 1
    assert metrics.value(f"{duration}_bucket", **queue_service, method="CreateQueue", code="OK", le="+Inf") == 1
    assert metrics.value("taskq_grpc_requests_in_flight", **queue_service, method="GetQueue") == 0


def test_a_stream_is_one_call_counted_when_it_ends(metered, scrape, streams):
    push_queue(metered, "push")
    stream = open_stream(metered, streams, "push")
    stream.send(acks=[task_service_pb2.TaskAck(name="queues/push/tasks/nope", lease_token="x")])
    stream.next()  # the refusal: the stream is open and answered
    labels = {"service": "taskq.v1.TaskService", "method": "StreamTasks", "type": "bidi_stream"}
    assert scrape(metered).value("taskq_grpc_requests_in_flight", **labels) == 1
    stream.close()
    stream.ended.wait(10)
    metrics = scrape(metered)
    assert metrics.value("taskq_grpc_requests_in_flight", **labels) == 0
    assert metrics.value("taskq_grpc_requests_total", **labels, code="OK") == 1


def test_cloud_tasks_calls_are_counted_under_their_own_service(metered, scrape):
    from google.cloud.tasks_v2.types import cloudtasks

    call = metered.channel.unary_unary(
        "/google.cloud.tasks.v2.CloudTasks/GetQueue",
        request_serializer=cloudtasks.GetQueueRequest.serialize, response_deserializer=lambda data: data,
    )
    with pytest.raises(grpc.RpcError) as raised:
        call(cloudtasks.GetQueueRequest(name="projects/p/locations/l/queues/missing"))
    assert raised.value.code() is grpc.StatusCode.NOT_FOUND
    metrics = scrape(metered)
    assert metrics.value("taskq_grpc_requests_total", service="google.cloud.tasks.v2.CloudTasks", method="GetQueue",
                         type="unary", code="NOT_FOUND") == 1


def test_a_deleted_queue_leaves_no_series(metered, scrape):
    metered.create_queue("gone", PULL)
    task = metered.create_task("gone", b"x")
    metered.tasks.DeleteTask(task_service_pb2.DeleteTaskRequest(name=task.name))
    assert scrape(metered).labelled(queue="gone")
    metered.queues.DeleteQueue(queue_service_pb2.DeleteQueueRequest(name="queues/gone"))
    assert scrape(metered).labelled(queue="gone") == []
    metered.create_queue("gone", PULL)  # a new queue of the same name starts from 0
    assert counters(scrape(metered), "gone") == {}


def test_a_purge_counts_each_task_it_removes(metered, scrape):
    metered.create_queue("q", PULL)
    fill(metered, "q", 4)
    metered.queues.PurgeQueue(queue_service_pb2.PurgeQueueRequest(name="queues/q"))
    assert counters(scrape(metered), "q") == {"taskq_tasks_created_total": 4, "taskq_tasks_purged_total": 4}


#: What each engine measures of its commits (histogram counts), and what an empty database weighs at least.
COMMIT_FIGURES = {
    "rocksdb": ("rocksdb", ["taskq_commit_group_size_count", "taskq_wal_fsync_duration_seconds_count"], 1),
    "postgres": ("postgresql", ["taskq_transaction_duration_seconds_count"], 1_000_000),  # ~7 MB empty
}


def test_each_engine_reports_its_own_commit_figures_and_the_database_size(metered, scrape, engine):
    metered.create_queue("q", PULL)
    fill(metered, "q", 10)
    metrics = scrape(metered)
    label, measured, least_size = COMMIT_FIGURES[engine]
    assert metrics.value("taskq_build_info", version=metrics_version(metrics), engine=label) == 1
    assert all(metrics.value(name) >= 2 for name in measured)
    others = [name for _, names, _ in COMMIT_FIGURES.values() for name in names if name not in measured]
    assert [metrics.value(name) for name in others] == [None] * len(others)
    assert metrics.value("taskq_database_size_bytes") >= least_size
    if engine == "postgres":
        assert metrics.value("taskq_transaction_conflicts_total") == 0
    else:
        assert metrics.value("taskq_commit_group_size_sum") >= metrics.value("taskq_commit_group_size_count")


@pytest.mark.engines("postgres")
def test_replicas_share_the_depth_and_each_counts_its_own_calls(request, tmp_path, scrape):
    dsn = request.getfixturevalue("postgres_cluster").new_database()
    first = ServerHarness(str(tmp_path / "a"), http_listen="127.0.0.1:0", database=dsn)
    second = ServerHarness(str(tmp_path / "b"), http_listen="127.0.0.1:0", database=dsn)
    try:
        first.create_queue("shared", PULL)
        fill(first, "shared", 3)
        second.lease("shared", max_tasks=1)
        one, two = scrape(first), scrape(second)
        assert depth(one, "shared") == depth(two, "shared") == {"scheduled": 0, "ready": 2, "leased": 1, "failed": 0}
        assert counters(one, "shared") == {"taskq_tasks_created_total": 3}
        assert counters(two, "shared") == {"taskq_tasks_delivered_total": 1}
        # Deleted through the first: the second forgets its series at its next scrape.
        first.queues.PurgeQueue(queue_service_pb2.PurgeQueueRequest(name="queues/shared"))
        first.queues.DeleteQueue(queue_service_pb2.DeleteQueueRequest(name="queues/shared"))
        assert scrape(first).labelled(queue="shared") == []
        assert scrape(second).labelled(queue="shared") == []
    finally:
        first.close()
        second.close()


def metrics_version(metrics) -> str:
    [version] = [dict(labels)["version"] for name, labels in metrics.samples if name == "taskq_build_info"]
    return version
