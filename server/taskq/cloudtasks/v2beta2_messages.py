"""google.cloud.tasks.v2beta2 messages <-> taskq's queues and tasks, with the defaults and limits
of Cloud Tasks' v2beta2 documentation (the docstrings of Google's google-cloud-tasks package).

What maps how:
- A queue with `pull_target` is a taskq pull queue. One with `app_engine_http_target` (or no
  target at all) is an HTTP push queue to the App Engine app: its base URL is --appengine-url,
  or the URL --appengine-targets gives the service of its `app_engine_routing_override`. One
  with `http_target` is an HTTP push queue whose tasks carry absolute URLs (HttpRequest).
- Push queue defaults: 500 tasks/s (at most 500), a bucket derived from the rate unless
  `max_burst_size` is set (at most 500), 1000 concurrent (at most 5000), 100 attempts
  (`unlimited_attempts`), backoff 0.1 s to 1 h doubling 16 times, task_ttl 31 days,
  tombstone_ttl 1 hour. Pull queues: only `max_attempts` of the retry config and the TTLs are
  settable; the rest is output only (ignored when given), `max_concurrent_tasks` reads -1.
- A pull task's lease is named by its schedule_time: a leased task shows its lease's expiry
  there, and AcknowledgeTask/RenewLease/CancelLease must give it back (the service compares
  it with the task's lease and uses taskq's lease token).
- App Engine routing: appengine_routing.py, shared with v2.
"""

from __future__ import annotations

import math
from typing import Any

from google.cloud import tasks_v2beta2

from taskq.api import convert, validate
from taskq.cloudtasks import names, push_tasks
from taskq.cloudtasks.appengine_routing import AppEngine, routing_to_pb
from taskq.core import limits
from taskq.core.errors import FailedPrecondition, InvalidArgument
from taskq.core.limits import DAY, SECOND
from taskq.core.model import (
    HttpMethod,
    HttpTarget,
    Queue,
    QueueState,
    QueueType,
    RetryPolicy,
)
from taskq.core.queues import QueueStats

QueuePb: Any = tasks_v2beta2.Queue.pb()
TaskPb: Any = tasks_v2beta2.Task.pb()
QueueStatsPb: Any = tasks_v2beta2.QueueStats.pb()

# Cloud Tasks' v2beta2 limits and defaults.
MAX_RATE = 500.0
DEFAULT_RATE = 500.0
MAX_BURST = 500
MAX_CONCURRENT = 5000
DEFAULT_CONCURRENT = 1000
DEFAULT_MAX_ATTEMPTS = 100
#: Pull queues have no concurrency cap: their max_concurrent_tasks is always -1.
PULL_CONCURRENT = -1
MAX_SCHEDULE_AHEAD_US = 30 * DAY
#: Tags, filters' tags: "must be less than 500 characters".
MAX_TAG_CHARS = 499
MAX_LEASE_TASKS = 1000
MAX_LEASE_DURATION_US = 7 * DAY
#: ListQueues: "The maximum page size is 9800. If unspecified, the page size will be the maximum."
MAX_QUEUE_PAGE = 9800
#: ListTasks: "The maximum page size is 1000. If unspecified, the page size will be the maximum."
MAX_TASK_PAGE = 1000

STATE_RUNNING = QueuePb.State.Value("RUNNING")
STATE_PAUSED = QueuePb.State.Value("PAUSED")
VIEW_BASIC = TaskPb.View.Value("BASIC")
VIEW_FULL = TaskPb.View.Value("FULL")

APP_ENGINE_TARGET = "app_engine_http_target"
PULL_TARGET = "pull_target"
HTTP_TARGET = "http_target"
TARGET_KINDS = (APP_ENGINE_TARGET, PULL_TARGET, HTTP_TARGET)


# Queues ---------------------------------------------------------------------------------------


def target_kind(queue: Queue) -> str | None:
    """Which v2beta2 target a taskq queue shows: pull, App Engine (an HTTP queue with a base
    URL), HTTP (absolute URLs only), or none (a push queue streamed to taskq.v1 workers)."""
    if queue.type is QueueType.PULL:
        return PULL_TARGET
    if queue.http_target is None:
        return None
    return APP_ENGINE_TARGET if queue.http_target.uri else HTTP_TARGET


def queue_to_pb(queue: Queue, parent: str, app: AppEngine, stats: QueueStats | None = None) -> Any:
    message = QueuePb(name=names.queue_name(queue, parent))
    kind = target_kind(queue)
    pull = kind == PULL_TARGET
    if pull:
        message.pull_target.SetInParent()
    elif kind == APP_ENGINE_TARGET:
        assert queue.http_target is not None
        message.app_engine_http_target.SetInParent()
        override = app.target_of_base(queue.http_target.uri)
        if override:
            routing_to_pb(message.app_engine_http_target.app_engine_routing_override, override, queue.http_target.uri)
    elif kind == HTTP_TARGET:
        assert queue.http_target is not None
        target = message.http_target
        target.SetInParent()
        target.http_method = queue.http_target.method.value
        for name, value in queue.http_target.headers.items():
            override = target.header_overrides.add()
            override.header.key, override.header.value = name, value
    rates = message.rate_limits
    if queue.max_dispatches_per_second is not None:
        rates.max_tasks_dispatched_per_second = queue.max_dispatches_per_second
    if pull:
        rates.max_concurrent_tasks = PULL_CONCURRENT
    else:
        rates.max_burst_size = queue.burst_size
        rates.max_concurrent_tasks = queue.max_concurrent_dispatches
    retry = message.retry_config
    if queue.retry.max_attempts:
        retry.max_attempts = queue.retry.max_attempts
    else:
        retry.unlimited_attempts = True
    retry.max_retry_duration.CopyFrom(convert.duration(queue.retry.max_retry_duration_us or 0))
    retry.min_backoff.CopyFrom(convert.duration(queue.retry.min_backoff_us or 0))
    retry.max_backoff.CopyFrom(convert.duration(queue.retry.max_backoff_us or 0))
    retry.max_doublings = queue.retry.max_doublings or 0
    message.state = STATE_PAUSED if queue.state is QueueState.PAUSED else STATE_RUNNING
    if queue.purge_time_us:
        message.purge_time.CopyFrom(convert.timestamp(queue.purge_time_us))
    message.task_ttl.CopyFrom(convert.duration(queue.task_ttl_us))
    message.tombstone_ttl.CopyFrom(convert.duration(queue.tombstone_ttl_us))
    if stats is not None:
        message.stats.CopyFrom(stats_to_pb(queue, stats))
    return message


def stats_to_pb(queue: Queue, stats: QueueStats) -> Any:
    """Cloud Tasks' QueueStats from taskq's. tasks_count leaves out FAILED tasks (Cloud Tasks
    deletes a task that used up its attempts; taskq keeps it for task_ttl). The concurrent
    dispatches are the leased tasks (pull queues: leases not yet acknowledged).
    effective_execution_rate is the rate taskq holds the queue to now: its rate while it
    runs, 0 while paused; queues taskq does not throttle (pull queues, no rate) show the
    rate of the last minute."""
    message = QueueStatsPb(
        tasks_count=stats.scheduled_count + stats.ready_count + stats.leased_count,
        executed_last_minute_count=stats.executed_last_minute,
        concurrent_dispatches_count=stats.leased_count,
    )
    if stats.oldest_schedule_time_us is not None:
        message.oldest_estimated_arrival_time.CopyFrom(convert.timestamp(stats.oldest_schedule_time_us))
    if queue.state is QueueState.PAUSED:
        message.effective_execution_rate = 0.0
    elif queue.type is QueueType.PUSH and queue.max_dispatches_per_second is not None:
        message.effective_execution_rate = queue.max_dispatches_per_second
    else:
        message.effective_execution_rate = stats.effective_dispatch_rate
    return message


def whole_seconds(duration_us: int) -> int:
    """Cloud Tasks truncates lease durations, retry durations and backoffs to whole seconds."""
    return duration_us - duration_us % SECOND


def rate_limits(message: Any, field: str, queue: Queue) -> None:
    """Sets a push queue's rate, bucket and cap from a RateLimits (0: Cloud Tasks' default)."""
    rate = message.max_tasks_dispatched_per_second
    if rate:
        if not math.isfinite(rate) or not 0 < rate <= MAX_RATE:
            raise InvalidArgument.field(f"{field}.max_tasks_dispatched_per_second",
                                        f"must be greater than 0 and at most {MAX_RATE:g}", "VALUE_OUT_OF_RANGE")
        queue.max_dispatches_per_second = rate
    else:
        queue.max_dispatches_per_second = DEFAULT_RATE
    queue.max_burst_size = validate.int_range(message.max_burst_size, f"{field}.max_burst_size", 0, MAX_BURST)
    concurrent = message.max_concurrent_tasks
    if concurrent == PULL_CONCURRENT:
        raise InvalidArgument.field(f"{field}.max_concurrent_tasks", "-1 (no limit) is for pull queues only",
                                    "VALUE_OUT_OF_RANGE")
    if concurrent:
        queue.max_concurrent_dispatches = validate.int_range(concurrent, f"{field}.max_concurrent_tasks", 1,
                                                             MAX_CONCURRENT)
    else:
        queue.max_concurrent_dispatches = DEFAULT_CONCURRENT


def retry_config(message: Any, field: str, pull: bool) -> RetryPolicy:
    """A complete queue retry policy. Unset fields take Cloud Tasks' defaults; on a pull queue
    everything but the number of attempts is output only and keeps its default."""
    policy = RetryPolicy(
        max_attempts=DEFAULT_MAX_ATTEMPTS, max_retry_duration_us=0, min_backoff_us=limits.DEFAULT_MIN_BACKOFF_US,
        max_backoff_us=limits.DEFAULT_MAX_BACKOFF_US, max_doublings=limits.DEFAULT_MAX_DOUBLINGS,
    )
    attempts = message.WhichOneof("num_attempts")
    if attempts == "max_attempts":
        policy.max_attempts = validate.int_range(message.max_attempts, f"{field}.max_attempts", 1,
                                                 limits.MAX_ATTEMPTS_LIMIT)
    elif attempts == "unlimited_attempts" and message.unlimited_attempts:
        policy.max_attempts = 0
    if pull:
        return policy
    for name, attribute, maximum in (
        ("max_retry_duration", "max_retry_duration_us", limits.MAX_RETRY_DURATION_LIMIT_US),
        ("min_backoff", "min_backoff_us", limits.MAX_BACKOFF_LIMIT_US),
        ("max_backoff", "max_backoff_us", limits.MAX_BACKOFF_LIMIT_US),
    ):
        if message.HasField(name):
            value = validate.duration_us(getattr(message, name), f"{field}.{name}", maximum_us=maximum)
            setattr(policy, attribute, whole_seconds(value))
    if message.max_doublings:
        policy.max_doublings = validate.int_range(message.max_doublings, f"{field}.max_doublings", 0,
                                                  limits.MAX_DOUBLINGS_LIMIT)
    assert policy.min_backoff_us is not None and policy.max_backoff_us is not None
    if policy.min_backoff_us > policy.max_backoff_us:
        raise InvalidArgument.field(f"{field}.min_backoff", "must not exceed max_backoff", "MIN_BACKOFF_ABOVE_MAX")
    return policy


def queue_target(message: Any, field: str, kind: str | None, app: AppEngine) -> HttpTarget | None:
    """A push queue's HTTP target for its v2beta2 target kind (None: streamed, no target)."""
    if kind == APP_ENGINE_TARGET:
        service = version = instance = ""
        if message.HasField(APP_ENGINE_TARGET) and message.app_engine_http_target.HasField("app_engine_routing_override"):
            routing = message.app_engine_http_target.app_engine_routing_override
            service, version, instance = routing.service, routing.version, routing.instance
        base = app.base(service, version, instance)
        if not base:
            raise FailedPrecondition(
                "App Engine queues need the app's URL: start the server with --appengine-url (or give the queue a "
                "pull_target or an http_target)", reason="APP_ENGINE_URL_UNSET",
            )
        return HttpTarget(uri=base)
    if kind == HTTP_TARGET:
        target = message.http_target
        if target.HasField("uri_override"):
            raise InvalidArgument.field(f"{field}.http_target.uri_override", "is not supported by taskq: give each "
                                        "task its URL", "UNSUPPORTED_FIELD")
        # OAuth and OIDC tokens are minted by Google for Google's service accounts: accepted,
        # no Authorization header is sent (sign with X-Taskq-Signature instead).
        given = push_tasks.method(target.http_method, f"{field}.http_target.http_method")
        return HttpTarget(uri="", method=given or HttpMethod.POST,
                          headers=push_tasks.queue_headers(target.header_overrides, f"{field}.http_target.header_overrides"))
    return None


def _ttl(message: Any, name: str, field: str, default: int, minimum: int, maximum: int) -> int:
    if not message.HasField(name):
        return default
    value = validate.duration_us(getattr(message, name), f"{field}.{name}", maximum_us=maximum)
    if value and value < minimum:
        raise InvalidArgument.field(f"{field}.{name}", f"must be at least {minimum // SECOND}s", "DURATION_OUT_OF_RANGE")
    return value


def build_queue(message: Any, field: str, parent: str, kind: str | None, app: AppEngine, target: bool = True) -> Queue:
    """A complete queue from a v2beta2 Queue whose target is `kind` (output-only fields, and
    those output only for its kind, are ignored); without its HTTP target unless `target`."""
    queue_parent, queue_id = names.queue(message.name, f"{field}.name")
    if queue_parent != parent:
        raise InvalidArgument.field(f"{field}.name", f"must be under the parent {parent}", "PARENT_MISMATCH")
    pull = kind == PULL_TARGET
    queue = Queue(
        queue_id=queue_id, type=QueueType.PULL if pull else QueueType.PUSH,
        retry=retry_config(message.retry_config, f"{field}.retry_config", pull),
        dispatch_deadline_us=limits.DEFAULT_DISPATCH_DEADLINE_US,
        task_ttl_us=_ttl(message, "task_ttl", field, limits.DEFAULT_TASK_TTL_US, limits.MIN_TASK_TTL_US,
                         limits.MAX_TASK_TTL_US) or limits.DEFAULT_TASK_TTL_US,
        tombstone_ttl_us=_ttl(message, "tombstone_ttl", field, limits.DEFAULT_TOMBSTONE_TTL_US, 0,
                              limits.MAX_TOMBSTONE_TTL_US),
        max_concurrent_dispatches=DEFAULT_CONCURRENT, cloud_parent=parent,
    )
    if not pull:
        rate_limits(message.rate_limits, f"{field}.rate_limits", queue)
        queue.http_target = queue_target(message, field, kind, app) if target else None
    return queue


#: UpdateQueue mask paths -> taskq's update paths, for push and for pull queues (on pull
#: queues the rate limits and all of the retry config but the attempts are output only).
_PUSH_PATHS: dict[str, tuple[str, ...]] = {
    "rate_limits": ("rate_limits.max_dispatches_per_second", "rate_limits.max_burst_size",
                    "rate_limits.max_concurrent_dispatches"),
    # A new rate without a burst size gets the bucket derived from it, as Cloud Tasks does.
    "rate_limits.max_tasks_dispatched_per_second": ("rate_limits.max_dispatches_per_second",
                                                    "rate_limits.max_burst_size"),
    "rate_limits.max_burst_size": ("rate_limits.max_burst_size",),
    "rate_limits.max_concurrent_tasks": ("rate_limits.max_concurrent_dispatches",),
    "retry_config": ("retry_config",),
    "retry_config.max_attempts": ("retry_config.max_attempts",),
    "retry_config.unlimited_attempts": ("retry_config.max_attempts",),
    "retry_config.max_retry_duration": ("retry_config.max_retry_duration",),
    "retry_config.min_backoff": ("retry_config.min_backoff",),
    "retry_config.max_backoff": ("retry_config.max_backoff",),
    "retry_config.max_doublings": ("retry_config.max_doublings",),
    "task_ttl": ("task_ttl",),
    "tombstone_ttl": ("tombstone_ttl",),
}
_PULL_PATHS: dict[str, tuple[str, ...]] = {
    "retry_config": ("retry_config.max_attempts",),
    "retry_config.max_attempts": ("retry_config.max_attempts",),
    "retry_config.unlimited_attempts": ("retry_config.max_attempts",),
    "task_ttl": ("task_ttl",),
    "tombstone_ttl": ("tombstone_ttl",),
}
#: Output-only paths (and the name, which cannot change): accepted and ignored.
_IGNORED_PATHS = ("name", "state", "purge_time", "stats")
_TARGET_PATHS = {
    APP_ENGINE_TARGET, f"{APP_ENGINE_TARGET}.app_engine_routing_override", PULL_TARGET, HTTP_TARGET,
    f"{HTTP_TARGET}.http_method", f"{HTTP_TARGET}.header_overrides", f"{HTTP_TARGET}.uri_override",
    f"{HTTP_TARGET}.oauth_token", f"{HTTP_TARGET}.oidc_token",
}
UPDATE_PATHS = frozenset(_PUSH_PATHS) | _TARGET_PATHS


def check_update_paths(paths: list[str]) -> None:
    for index, path in enumerate(paths):
        root = path.split(".", 1)[0]
        if path in UPDATE_PATHS or root in _IGNORED_PATHS:
            continue
        allowed = ", ".join(sorted(UPDATE_PATHS))
        raise InvalidArgument.field(f"update_mask.paths[{index}]", f"{path[:100]!r} cannot be updated; allowed: {allowed}",
                                    "INVALID_UPDATE_MASK")


def target_paths(paths: list[str]) -> str | None:
    """The target kind the mask's paths name, if any."""
    for path in paths:
        root = path.split(".", 1)[0]
        if root in TARGET_KINDS:
            return root
    return None


def taskq_update_paths(paths: list[str], pull: bool, target_changes: bool) -> list[str]:
    """taskq's update paths for Cloud Tasks' (empty: every field the queue's kind can set)."""
    table = _PULL_PATHS if pull else _PUSH_PATHS
    chosen = paths or ["rate_limits", "retry_config", "task_ttl", "tombstone_ttl"]
    mapped: list[str] = []
    for path in chosen:
        for taskq_path in table.get(path, ()):
            if taskq_path not in mapped:
                mapped.append(taskq_path)
    if target_changes and not pull:
        mapped.append("http_target")
    return mapped
