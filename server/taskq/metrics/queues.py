"""Each queue's depth by state, the age of its oldest ready task and its dispatch limits, read
at scrape time from what GetQueueStats reads: the counters kept in the same write as the
tasks, and the first entry of the queue's schedule-time index. No task is ever scanned: a
scrape costs a few reads per queue, whatever the queues hold.

On PostgreSQL these are the shared database's figures: every replica reports the same ones
(docs/metrics.md).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily, Metric

from taskq.core.model import US_PER_SECOND, Counters, Queue, QueueState, QueueType
from taskq.store.base import Reader

#: Queues read per page.
PAGE = 1000


@dataclasses.dataclass(slots=True)
class QueueDepth:
    queue: Queue
    counters: Counters
    #: The schedule time of the queue's earliest waiting task (ready or scheduled), if any.
    earliest_waiting_us: int | None


def read_depths(reader: Reader) -> list[QueueDepth]:
    """Every queue's counters, and its earliest waiting task where it has waiting tasks."""
    depths: list[QueueDepth] = []
    after = ""
    while True:
        page = reader.queues(after, PAGE)
        for queue in page:
            counters = reader.counters(queue)
            waiting = counters.ready + counters.scheduled > 0
            earliest = reader.oldest_waiting(queue) if waiting else None
            depths.append(QueueDepth(queue, counters, earliest[0] if earliest is not None else None))
        if len(page) < PAGE:
            return depths
        after = page[-1].queue_id


def collect(depths: list[QueueDepth], now_us: int) -> Iterator[Metric]:
    tasks = GaugeMetricFamily("taskq_queue_tasks", "Tasks in the queue by state (scheduled, ready, leased, failed).",
                              labels=["queue", "state"])
    age = GaugeMetricFamily(
        "taskq_queue_oldest_ready_age_seconds",
        "Seconds the queue's oldest ready task has waited since its schedule time; 0 when no task is ready.",
        labels=["queue"], unit="seconds",
    )
    paused = GaugeMetricFamily("taskq_queue_paused", "1 while the queue is paused (it delivers nothing), else 0.",
                               labels=["queue"])
    info = GaugeMetricFamily("taskq_queue_info", "1 for every queue, with its type and dead-letter queue as labels.",
                             labels=["queue", "type", "dead_letter_queue"])
    rate = GaugeMetricFamily("taskq_queue_max_dispatches_per_second",
                             "A push queue's rate limit (absent when it has none).", labels=["queue"])
    burst = GaugeMetricFamily("taskq_queue_max_burst_size", "A push queue's token-bucket size.", labels=["queue"])
    concurrent = GaugeMetricFamily(
        "taskq_queue_max_concurrent_dispatches",
        "A push queue's cap on tasks delivered at once (compare taskq_queue_tasks{state=\"leased\"}).",
        labels=["queue"],
    )
    for depth in depths:
        queue, counters = depth.queue, depth.counters
        name = queue.queue_id
        for state in ("scheduled", "ready", "leased", "failed"):
            tasks.add_metric([name, state], getattr(counters, state))
        waited_us = now_us - depth.earliest_waiting_us if depth.earliest_waiting_us is not None else 0
        age.add_metric([name], max(0, waited_us) / US_PER_SECOND)
        paused.add_metric([name], 1 if queue.state is QueueState.PAUSED else 0)
        info.add_metric([name, queue.type.name.lower(), queue.dead_letter_queue], 1)
        if queue.type is QueueType.PUSH:
            if queue.max_dispatches_per_second is not None:
                rate.add_metric([name], queue.max_dispatches_per_second)
            burst.add_metric([name], queue.burst_size)
            concurrent.add_metric([name], queue.max_concurrent_dispatches)
    yield from (tasks, age, paused, info, rate, burst, concurrent)
