"""Per-queue task counters and latency histograms, counted from the engine's committed events
(core/events.py).

One QueueTally per queue: a list of counts and two histograms, so an event costs a dict
lookup, a list increment and, for deliveries and acknowledgements, one bisect. Series are
per queue, never per task. A queue deleted here is forgotten at once; one deleted by another
server (PostgreSQL) is forgotten at the next scrape that no longer finds it (`settle`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric

from taskq.core.events import Event, QueueEvent, TaskEvent
from taskq.core.model import US_PER_SECOND, TaskState
from taskq.metrics.histogram import COMPLETION_BUCKETS, DELIVERY_DELAY_BUCKETS, Histogram

#: The counters, in the order of QueueTally.counts: (name, help).
COUNTERS = (
    ("taskq_tasks_created_total", "Tasks created in the queue (arrivals from dead-lettering are not counted)."),
    ("taskq_tasks_delivered_total",
     "Attempts started: tasks leased by LeaseTasks, or dispatched to a push stream or an HTTP target."),
    ("taskq_tasks_acknowledged_total",
     "Tasks completed: acknowledged with their lease token (DeleteTask, a stream ack, a 2xx HTTP answer)."),
    ("taskq_tasks_nacked_total", "Attempts the worker reported as failed (a stream nack, a failing HTTP answer)."),
    ("taskq_leases_expired_total", "Attempts whose lease ran out before the worker answered."),
    ("taskq_leases_released_total",
     "Attempts given back unfinished (ModifyLease to 0, the end of the push stream holding them, a restart)."),
    ("taskq_tasks_failed_total",
     "Tasks whose retries ran out (or nacked as permanent) kept FAILED in the queue, which has no dead-letter queue."),
    ("taskq_tasks_dead_lettered_total",
     "Tasks whose retries ran out (or nacked as permanent) moved to the queue's dead-letter queue."),
    ("taskq_tasks_deleted_total", "Tasks deleted without a lease token (DeleteTask, BatchDeleteTasks)."),
    ("taskq_tasks_purged_total", "Tasks removed by PurgeQueue."),
    ("taskq_tasks_discarded_total", "FAILED tasks deleted when the queue's task_ttl ran out."),
)
(CREATED, DELIVERED, ACKNOWLEDGED, NACKED, EXPIRED, RELEASED, FAILED, DEAD_LETTERED, DELETED, PURGED,
 DISCARDED) = range(len(COUNTERS))

#: The counter each task event adds to (RENEW, RUN and DEAD_LETTER arrivals count nowhere).
_COUNTED: dict[TaskEvent | QueueEvent, int] = {
    TaskEvent.CREATE: CREATED,
    TaskEvent.LEASE: DELIVERED,
    TaskEvent.ACK: ACKNOWLEDGED,
    TaskEvent.NACK: NACKED,
    TaskEvent.EXPIRE: EXPIRED,
    TaskEvent.RELEASE: RELEASED,
    TaskEvent.DELETE: DELETED,
    TaskEvent.PURGE: PURGED,
    TaskEvent.DISCARD: DISCARDED,
}
#: Events that end an attempt: their outcome may also be FAILED or a dead-lettering.
_ATTEMPT_ENDS = frozenset({NACKED, EXPIRED, RELEASED})

DELIVERY_DELAY = ("taskq_task_delivery_delay_seconds",
                  "Seconds from the moment an attempt was due (the task's schedule time, or the end of its "
                  "retry backoff) to its delivery (lease or dispatch).")
COMPLETION = ("taskq_task_completion_seconds", "Seconds from a task's creation to its acknowledgement.")


class QueueTally:
    __slots__ = ("counts", "delivery_delay", "completion", "generation")

    def __init__(self, generation: int) -> None:
        self.counts = [0] * len(COUNTERS)
        self.delivery_delay = Histogram(DELIVERY_DELAY_BUCKETS)
        self.completion = Histogram(COMPLETION_BUCKETS)
        #: The scrape generation it was made in (see TaskMetrics.settle).
        self.generation = generation


class TaskMetrics:
    """An event subscriber (Engine.events) counting per queue."""

    def __init__(self) -> None:
        self.queues: dict[str, QueueTally] = {}
        self._generation = 0

    def __call__(self, events: Sequence[Event]) -> None:
        queues = self.queues
        for kind, queue_id, _, state, time_us, since_us, _, _ in events:
            index = _COUNTED.get(kind)
            if index is None:
                if kind is QueueEvent.DELETE:
                    queues.pop(queue_id, None)
                elif kind is QueueEvent.CREATE:
                    self.tally(queue_id)  # its counters start at 0, before its first task
                continue
            tally = queues.get(queue_id) or self.tally(queue_id)
            counts = tally.counts
            counts[index] += 1
            if index == DELIVERED:
                tally.delivery_delay.observe((time_us - since_us) / US_PER_SECOND if time_us > since_us else 0.0)
            elif index == ACKNOWLEDGED:
                tally.completion.observe((time_us - since_us) / US_PER_SECOND if time_us > since_us else 0.0)
            elif index in _ATTEMPT_ENDS:
                if state is None:
                    counts[DEAD_LETTERED] += 1
                elif state is TaskState.FAILED:
                    counts[FAILED] += 1

    def tally(self, queue_id: str) -> QueueTally:
        tally = self.queues.get(queue_id)
        if tally is None:
            tally = self.queues[queue_id] = QueueTally(self._generation)
        return tally

    def mark(self) -> int:
        """Starts a scrape's generation: tallies made from now on belong to it."""
        self._generation += 1
        return self._generation

    def settle(self, queue_ids: set[str], mark: int) -> None:
        """After reading the queues that exist (`queue_ids`, read after `mark`): every one has
        a tally, and tallies of queues that no longer exist are forgotten, unless made since
        the mark (a queue created while the list was read)."""
        for queue_id in queue_ids:
            self.tally(queue_id)
        for queue_id in [q for q, tally in self.queues.items() if q not in queue_ids and tally.generation < mark]:
            del self.queues[queue_id]

    def collect(self) -> Iterator[Metric]:
        queues = sorted(self.queues.items())
        for index, (name, documentation) in enumerate(COUNTERS):
            counter = CounterMetricFamily(name, documentation, labels=["queue"])
            for queue_id, tally in queues:
                counter.add_metric([queue_id], tally.counts[index])
            yield counter
        for (name, documentation), attribute in ((DELIVERY_DELAY, "delivery_delay"), (COMPLETION, "completion")):
            family = HistogramMetricFamily(name, documentation, labels=["queue"], unit="seconds")
            for queue_id, tally in queues:
                histogram: Histogram = getattr(tally, attribute)
                family.add_metric([queue_id], histogram.cumulative(), histogram.sum)
            yield family
