"""Every documented limit and default of the API, in one place.

The proto comments state the same numbers; change both together. Limits a server operator
may change (task size, schedule horizon) are in `ServerLimits`, filled from taskq.config.
"""

from __future__ import annotations

import dataclasses
import re

from taskq.core.model import US_PER_SECOND, Task

SECOND = US_PER_SECOND
MINUTE = 60 * SECOND
HOUR = 60 * MINUTE
DAY = 24 * HOUR

#: Queue ids: 1 to 100 characters of [A-Za-z0-9-] (App Engine and Cloud Tasks).
QUEUE_ID_PATTERN = r"[A-Za-z0-9-]{1,100}"
#: Task ids: 1 to 500 characters of [A-Za-z0-9_-] (App Engine and Cloud Tasks).
TASK_ID_PATTERN = r"[A-Za-z0-9_-]{1,500}"
QUEUE_ID_RE = re.compile(QUEUE_ID_PATTERN)
TASK_ID_RE = re.compile(TASK_ID_PATTERN)
#: request_id idempotency keys: 1 to 100 characters of [A-Za-z0-9_-].
REQUEST_ID_PATTERN = r"[A-Za-z0-9_-]{1,100}"
#: Tags: 1 to 500 bytes of UTF-8.
MAX_TAG_BYTES = 500
#: Attributes per task, and the length of an attribute key in bytes.
MAX_ATTRIBUTES = 100
MAX_ATTRIBUTE_KEY_BYTES = 256

#: Items per BatchCreateTasks / BatchDeleteTasks, and tasks per LeaseTasks.
MAX_BATCH = 1000
MAX_LEASE_TASKS = 1000
#: The longest pull lease: 7 days (App Engine, Cloud Tasks v2beta2).
MAX_LEASE_DURATION_US = 7 * DAY
#: The longest LeaseTasks long-poll wait.
MAX_LEASE_WAIT_US = 60 * SECOND
#: The longest lease extension on a push stream.
MAX_STREAM_EXTENSION_US = DAY
#: The longest nack retry_delay.
MAX_RETRY_DELAY_US = 30 * DAY
#: How much of a nack's error message is kept.
MAX_ERROR_MESSAGE_BYTES = 4096

#: List page sizes.
DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000
#: How many stored tasks one ListTasks page examines at most: a page of a filtered list can
#: come back short (even empty) with a next_page_token, so no call scans without bound.
LIST_SCAN_BUDGET = 10_000
MAX_FILTER_CHARS = 1000

# Queue configuration: defaults and allowed ranges.
DEFAULT_MIN_BACKOFF_US = 100_000  #: 0.1 s (App Engine, Cloud Tasks)
DEFAULT_MAX_BACKOFF_US = 3600 * SECOND  #: 1 hour
DEFAULT_MAX_DOUBLINGS = 16
MAX_BACKOFF_LIMIT_US = 30 * DAY
MAX_DOUBLINGS_LIMIT = 64
MAX_ATTEMPTS_LIMIT = 1_000_000
MAX_RETRY_DURATION_LIMIT_US = 3650 * DAY
DEFAULT_DISPATCH_DEADLINE_US = 10 * MINUTE
MIN_DISPATCH_DEADLINE_US = 15 * SECOND
MAX_DISPATCH_DEADLINE_US = DAY
DEFAULT_TASK_TTL_US = 31 * DAY
MIN_TASK_TTL_US = MINUTE
MAX_TASK_TTL_US = 3650 * DAY
DEFAULT_TOMBSTONE_TTL_US = HOUR
MAX_TOMBSTONE_TTL_US = 30 * DAY
MAX_DISPATCHES_PER_SECOND = 1_000_000.0
MAX_BURST_SIZE = 100_000
DEFAULT_MAX_CONCURRENT_DISPATCHES = 1000
MAX_CONCURRENT_DISPATCHES = 100_000

# Push streams.
DEFAULT_MAX_OUTSTANDING = 100
MAX_OUTSTANDING = 10_000
#: An idle stream gets a heartbeat this often (proxies drop silent streams).
HEARTBEAT_INTERVAL_US = 20 * SECOND


#: An upper bound of what a Task message takes beyond its variable-length parts: the framing of
#: every field, the fixed-size fields (six timestamps, counts, the state, a retry config, a
#: deadline), a lease token, and the framing of the message within a response's repeated field.
TASK_MESSAGE_OVERHEAD = 512
#: An upper bound of the framing of one attribute (a map entry with a key and a value).
ATTRIBUTE_OVERHEAD = 16


def task_message_bound(queue_id: str, task: Task, *, payload: bool) -> int:
    """At most how many bytes `task` takes in a response, as a Task message with or without
    its payload. Responses are sized with it before anything is committed, so that no answer
    can exceed the message-size limit after its writes are made."""
    size = TASK_MESSAGE_OVERHEAD + len(queue_id) + len(task.task_id) + len(task.tag.encode())
    for key, value in task.attributes.items():
        size += len(key.encode()) + len(value.encode()) + ATTRIBUTE_OVERHEAD
    if task.last_attempt is not None:
        size += len(task.last_attempt.error_message.encode())
    if task.http is not None:
        size += task.http.size() + ATTRIBUTE_OVERHEAD * (len(task.http.headers) + 1)
    if payload:
        size += len(task.payload) + 6
    return size


@dataclasses.dataclass(frozen=True, slots=True)
class ServerLimits:
    """Limits the operator sets with server flags."""

    #: Payload + attribute keys and values + tag, in bytes.
    max_task_bytes: int = 1024 * 1024
    #: How far ahead a schedule_time may be.
    max_schedule_ahead_us: int = 365 * DAY
    #: The gRPC message-size limit; responses (lease batches, list pages) stay under it.
    max_message_bytes: int = 32 * 1024 * 1024

    @property
    def response_budget_bytes(self) -> int:
        """How many bytes of tasks (as task_message_bound counts them) one response may carry,
        leaving room for the rest of the response."""
        return self.max_message_bytes - 64 * 1024
