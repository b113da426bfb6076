"""HTTP push with three replicas on one database: each runs a deliverer for the queue (the
leases are taken in the database), and together they keep the queue's rate and deliver each
task once."""

from __future__ import annotations

from support.http_worker import HttpWorker
from test_replicas import RATE_TOLERANCE, create_queue, create_tasks

from harness import eventually
from taskq.v1 import http_pb2, queue_pb2


def test_replicas_deliver_an_http_queue_together_at_its_rate_and_each_task_once(replicas):
    worker = HttpWorker()
    try:
        group = replicas(3, extra=("--http-allow-networks", "127.0.0.0/8"))
        rate = 100.0
        create_queue(group, 0, queue_pb2.Queue(
            name="queues/web", type=queue_pb2.QUEUE_TYPE_PUSH,
            http_target=http_pb2.HttpTarget(uri=worker.url + "/work"),
            rate_limits=queue_pb2.RateLimits(max_dispatches_per_second=rate, max_burst_size=10),
        ))
        created = create_tasks(group, 1, "web", 800)
        eventually(lambda: len(worker.received("/work")) >= 800, seconds=60)
        received = worker.received("/work")
        names = sorted(f"queues/web/tasks/{request.header('X-AppEngine-TaskName')}" for request in received)
        assert names == sorted(created), "each task once"
        arrivals = sorted(request.at for request in received)
        window = [at for at in arrivals if arrivals[0] + 1.0 <= at <= arrivals[-1] - 0.2]
        measured = (len(window) - 1) / (window[-1] - window[0])
        print(f"\nHTTP push across 3 replicas: {measured:.1f}/s for a {rate:.0f}/s queue")
        assert abs(measured - rate) <= rate * RATE_TOLERANCE, measured
    finally:
        worker.close()
