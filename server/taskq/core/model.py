"""The domain types: queues, tasks, attempts, retry policies, counters.

Plain data, no behaviour beyond derived properties. Times are integers in microseconds since
the Unix epoch (`*_us`), durations integers in microseconds, so no float rounding creeps into
keys or comparisons.
"""

from __future__ import annotations

import dataclasses
import enum
import math

US_PER_SECOND = 1_000_000


def content_size(payload: bytes, attributes: dict[str, str], tag: str, http: HttpRequest | None = None) -> int:
    """The bytes a task counts against the size limit: payload, attribute keys and values, tag,
    and its HTTP request's URL and headers."""
    return (
        len(payload)
        + sum(len(key.encode()) + len(value.encode()) for key, value in attributes.items())
        + len(tag.encode())
        + (http.size() if http is not None else 0)
    )


class QueueType(enum.IntEnum):
    """How a queue's tasks reach workers (values match taskq.v1.QueueType)."""

    PUSH = 1
    PULL = 2


class QueueState(enum.IntEnum):
    """Whether a queue hands out tasks (values match taskq.v1.QueueState)."""

    RUNNING = 1
    PAUSED = 2


class Stage(enum.IntEnum):
    """Where a stored task sits, which decides the index it is in.

    The public TaskState splits WAITING into SCHEDULED and READY by comparing the schedule
    time with the clock; that split needs no write when time passes.
    """

    WAITING = 1
    LEASED = 2
    FAILED = 3


class TaskState(enum.IntEnum):
    """A task's state as users see it (values match taskq.v1.TaskState)."""

    SCHEDULED = 1
    READY = 2
    LEASED = 3
    FAILED = 4


@dataclasses.dataclass(slots=True)
class RetryPolicy:
    """Retry limits and backoff. On a queue every field is set; on a task, None inherits.

    `max_attempts` 0 and `max_retry_duration_us` 0 mean unlimited.
    """

    max_attempts: int | None = None
    max_retry_duration_us: int | None = None
    min_backoff_us: int | None = None
    max_backoff_us: int | None = None
    max_doublings: int | None = None

    def over(self, base: RetryPolicy) -> RetryPolicy:
        """Returns this policy with its unset fields taken from `base`."""
        return RetryPolicy(
            max_attempts=base.max_attempts if self.max_attempts is None else self.max_attempts,
            max_retry_duration_us=(
                base.max_retry_duration_us
                if self.max_retry_duration_us is None
                else self.max_retry_duration_us
            ),
            min_backoff_us=base.min_backoff_us if self.min_backoff_us is None else self.min_backoff_us,
            max_backoff_us=base.max_backoff_us if self.max_backoff_us is None else self.max_backoff_us,
            max_doublings=base.max_doublings if self.max_doublings is None else self.max_doublings,
        )

    def is_empty(self) -> bool:
        return all(getattr(self, f.name) is None for f in dataclasses.fields(self))


class HttpMethod(enum.IntEnum):
    """An HTTP method (values match taskq.v1.HttpMethod)."""

    POST = 1
    GET = 2
    HEAD = 3
    PUT = 4
    DELETE = 5
    PATCH = 6
    OPTIONS = 7

    @property
    def has_body(self) -> bool:
        """Whether a request with this method carries the task's payload as its body."""
        return self not in (HttpMethod.GET, HttpMethod.HEAD, HttpMethod.DELETE, HttpMethod.OPTIONS)


@dataclasses.dataclass(slots=True)
class HttpTarget:
    """Where a push queue sends its tasks as HTTP requests (instead of over streams)."""

    #: The base URL; "" when every task carries an absolute URL.
    uri: str = ""
    method: HttpMethod = HttpMethod.POST
    #: Added to every request, replacing a task's header of the same name.
    headers: dict[str, str] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(slots=True)
class HttpRequest:
    """A task's own HTTP request: an absolute URL or a path on the queue's host ("" for the
    queue's uri), a method (None: the queue's) and headers. The body is the payload."""

    url: str = ""
    method: HttpMethod | None = None
    headers: dict[str, str] = dataclasses.field(default_factory=dict)

    def size(self) -> int:
        """The bytes it counts against the task size limit."""
        return len(self.url.encode()) + sum(len(k.encode()) + len(v.encode()) for k, v in self.headers.items())


@dataclasses.dataclass(slots=True)
class Queue:
    """A queue's configuration and state, as stored."""

    queue_id: str
    type: QueueType
    retry: RetryPolicy
    dispatch_deadline_us: int
    task_ttl_us: int
    tombstone_ttl_us: int
    state: QueueState = QueueState.RUNNING
    #: Tokens added per second; None means unlimited.
    max_dispatches_per_second: float | None = None
    #: The configured bucket size; 0 means the default (see `burst_size`).
    max_burst_size: int = 0
    max_concurrent_dispatches: int = 1000
    #: queue_id of the dead-letter queue, or "" for none.
    dead_letter_queue: str = ""
    create_time_us: int = 0
    update_time_us: int = 0
    #: Tasks created at or before this time are purged: never delivered again, and deleted by
    #: the purger (core/purger.py). 0: never purged.
    purge_time_us: int = 0
    #: A purge is recorded and not finished yet: the purger still has tasks to delete.
    purging: bool = False
    #: Names this queue's key space in the store; assigned by the store when first written.
    #: A deleted and re-created queue gets a new one, so nothing of the old queue leaks in.
    storage_id: int = 0
    #: Push queues: deliver tasks as HTTP requests here instead of to streams; None: streams.
    http_target: HttpTarget | None = None
    #: The Cloud Tasks parent (`projects/P/locations/L`) the queue was created under through the
    #: Cloud Tasks API, so that its name round-trips; "" for queues made otherwise (they answer
    #: to any project and location).
    cloud_parent: str = ""

    @property
    def burst_size(self) -> int:
        """The effective token-bucket size: max(1, rate/5) rounded up when a rate is set, else 5."""
        if self.max_burst_size:
            return self.max_burst_size
        if self.max_dispatches_per_second is None:
            return 5
        return max(1, math.ceil(self.max_dispatches_per_second / 5))

    @property
    def name(self) -> str:
        return f"queues/{self.queue_id}"


@dataclasses.dataclass(slots=True)
class Attempt:
    """One delivery of a task and how it ended; error_code 0 means no error (yet)."""

    dispatch_time_us: int
    response_time_us: int = 0
    error_code: int = 0
    error_message: str = ""
    #: HTTP push: the status the worker answered; 0 without an answer.
    http_status: int = 0


@dataclasses.dataclass(slots=True)
class Task:
    """A task as stored. `stage` decides which index holds it; see core/states.py."""

    task_id: str
    schedule_time_us: int
    create_time_us: int
    payload: bytes = b""
    attributes: dict[str, str] = dataclasses.field(default_factory=dict)
    tag: str = ""
    stage: Stage = Stage.WAITING
    attempt_count: int = 0
    first_attempt_time_us: int = 0
    last_attempt: Attempt | None = None
    lease_token: str = ""
    lease_expire_us: int = 0
    #: Per-task overrides of the queue's retry policy; None when there are none.
    retry: RetryPolicy | None = None
    #: Per-task dispatch deadline; 0 means the queue's.
    dispatch_deadline_us: int = 0
    #: True when the caller chose the name: only such names are tombstoned.
    named: bool = False
    #: FAILED tasks: when the task is deleted (its failure time plus the queue's task_ttl).
    retain_until_us: int = 0
    #: Never stored: set on the summary that a request_id retry returns for a task that has
    #: finished since it was created. Such a task has no state.
    finished: bool = False
    #: HTTP push: the task's own request; None means the queue's target as it is.
    http: HttpRequest | None = None
    #: HTTP push: attempts that got an HTTP answer, whatever its status.
    response_count: int = 0
    #: Never stored: on a task just leased, the attempt before this one (what an HTTP push
    #: tells the worker about the previous response), since `last_attempt` is the new one.
    previous_attempt: Attempt | None = None
    #: The W3C trace context of the call that created the task (traceparent, tracestate),
    #: handed to every delivery so that workers continue that trace; "" when there was none.
    trace_parent: str = ""
    trace_state: str = ""

    def state(self, now_us: int) -> TaskState | None:
        if self.finished:
            return None
        if self.stage is Stage.WAITING:
            return TaskState.SCHEDULED if self.schedule_time_us > now_us else TaskState.READY
        if self.stage is Stage.LEASED:
            return TaskState.LEASED
        return TaskState.FAILED

    def copy(self) -> Task:
        """A copy that can be changed without touching this task (attributes are shared: they
        never change after creation). Positional on purpose: dataclasses.replace costs
        several times more, on the hottest path there is."""
        return Task(
            self.task_id, self.schedule_time_us, self.create_time_us, self.payload, self.attributes, self.tag,
            self.stage, self.attempt_count, self.first_attempt_time_us, self.last_attempt, self.lease_token,
            self.lease_expire_us, self.retry, self.dispatch_deadline_us, self.named, self.retain_until_us,
            self.finished, self.http, self.response_count, self.previous_attempt, self.trace_parent,
            self.trace_state,
        )


#: The highest possible task id in key order: task ids are [A-Za-z0-9_-], all below "~".
AFTER_EVERY_ID = "~"


@dataclasses.dataclass(slots=True)
class Counters:
    """A queue's task counts, kept by the store in the same write as the task changes.

    Waiting tasks are split by a boundary, the position (`promoted_through_us`,
    `promoted_through_id`) in schedule-time order: those at or before it are counted as ready,
    later ones as scheduled. Promotion moves the boundary forward as time passes, in bounded
    steps (see Txn.promote), so a boundary can stop between two tasks of the same schedule
    time; an empty `promoted_through_id` includes every task at `promoted_through_us`.
    """

    scheduled: int = 0
    ready: int = 0
    leased: int = 0
    failed: int = 0
    promoted_through_us: int = 0
    promoted_through_id: str = ""
    #: Where the queue sits in the store's promotion index (when its next scheduled task may be
    #: due); 0 when it has none there.
    next_promotion_us: int = 0

    @property
    def total(self) -> int:
        return self.scheduled + self.ready + self.leased + self.failed

    def counts_as_ready(self, schedule_time_us: int, task_id: str) -> bool:
        """Whether a waiting task at this position is counted as ready (else as scheduled)."""
        if schedule_time_us != self.promoted_through_us:
            return schedule_time_us < self.promoted_through_us
        return not self.promoted_through_id or task_id <= self.promoted_through_id


@dataclasses.dataclass(slots=True)
class TokenState:
    """A push queue's token bucket as stored: `tokens` (fractional) as of `updated_us`.

    Kept in the store, not in a dispatcher's memory, so that neither a restart nor a new
    dispatcher (nor, with a shared database, another server) starts with a full bucket again.
    """

    tokens: float
    updated_us: int


@dataclasses.dataclass(slots=True)
class RequestRecord:
    """What a create with a request_id left behind, to answer its retries."""

    task_id: str
    tag: str
    schedule_time_us: int
    create_time_us: int


class ExpiryKind(enum.IntEnum):
    """What an entry of the expiry index removes when its time comes."""

    TOMBSTONE = 1
    FAILED_TASK = 2


@dataclasses.dataclass(slots=True, frozen=True)
class Expiry:
    """An entry of the expiry index: `key` is a task id or a request id."""

    expire_us: int
    kind: ExpiryKind
    storage_id: int
    key: str


@dataclasses.dataclass(slots=True, frozen=True)
class LeaseEntry:
    """An entry of the lease-expiry index."""

    expire_us: int
    storage_id: int
    task_id: str


@dataclasses.dataclass(slots=True, frozen=True)
class Promotion:
    """An entry of the promotion index: the queue may have waiting tasks due by `due_us` that
    its counters still count as scheduled."""

    due_us: int
    storage_id: int
