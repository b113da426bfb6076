"""App Engine's `taskqueue` service on taskq's core: what Google's SDK sends through the API
bridge (bridge.py), answered with the SDK's own messages and error codes.

Served: BulkAdd and Add (taskqueue.add, Queue.add, deferred.defer), QueryAndOwnTasks
(Queue.lease_tasks, lease_tasks_by_tag), ModifyTaskLease, Delete, PurgeQueue and
FetchQueueStats. What App Engine did and taskq does the same way:

- A pull task's lease is named by its ETA: a lease sets the task's ETA to the lease's end,
  and ModifyTaskLease must give that ETA back (else TASK_LEASE_EXPIRED). taskq keeps the
  lease token itself and compares the lease's end.
- BulkAdd checks every task first; if one is invalid, none is added and the others are
  answered SKIPPED. Then each valid task is added on its own: one that exists or is
  tombstoned fails alone.
- A push task goes to its queue's HTTP target (the app's base URL) with its relative URL,
  method, headers and body; a `Host` header naming a configured target (`target:` in
  App Engine) sends it to that target's URL instead.
- Transactional adds (bound to a Datastore transaction) are refused: there is no Datastore.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable
from typing import Any

from google.appengine.api.taskqueue import taskqueue_service_bytes_pb2 as pb

from taskq.core import http_push, limits
from taskq.core.engine import Engine
from taskq.core.errors import InvalidArgument, TaskqError
from taskq.core.model import US_PER_SECOND, HttpMethod, HttpRequest, Queue, QueueType, RetryPolicy
from taskq.core.tasks import DeleteRequest, NewTask

log = logging.getLogger(__name__)

Errors = pb.TaskQueueServiceError

#: App Engine's request methods (TaskQueueAddRequest.RequestMethod) -> taskq's.
_METHODS = {1: HttpMethod.GET, 2: HttpMethod.POST, 3: HttpMethod.HEAD, 4: HttpMethod.PUT, 5: HttpMethod.DELETE}
#: Task headers App Engine's SDK adds that taskq sets itself or that route the request.
_DROPPED_HEADERS = {"host", "content-length"}

#: taskq error reasons -> App Engine error codes (the SDK raises its exception for each).
_REASONS = {
    "QUEUE_NOT_FOUND": Errors.UNKNOWN_QUEUE,
    "TASK_ALREADY_EXISTS": Errors.TASK_ALREADY_EXISTS,
    "TASK_TOMBSTONED": Errors.TOMBSTONED_TASK,
    "TASK_NOT_FOUND": Errors.UNKNOWN_TASK,
    "TASK_TOO_LARGE": Errors.TASK_TOO_LARGE,
    "SCHEDULE_TIME_TOO_FAR": Errors.INVALID_ETA,
    "INVALID_URL": Errors.INVALID_URL,
    "URL_TOO_LONG": Errors.INVALID_URL,
    "URL_REQUIRED": Errors.INVALID_URL,
    "WRONG_QUEUE_TYPE": Errors.INVALID_QUEUE_MODE,
    "NOT_AN_HTTP_QUEUE": Errors.INVALID_QUEUE_MODE,
    "QUEUE_PAUSED": Errors.QUEUE_PAUSED,
    "LEASE_LOST": Errors.TASK_LEASE_EXPIRED,
    "TAG_TOO_LONG": Errors.INVALID_TAG,
    "INVALID_NAME": Errors.INVALID_TASK_NAME,
    "INVALID_QUEUE_NAME": Errors.INVALID_QUEUE_NAME,
    "PERMISSION_DENIED": Errors.PERMISSION_DENIED,
}


class ServiceError(Exception):
    """An App Engine application error: `code` is a TaskQueueServiceError value."""

    def __init__(self, code: int, detail: str = "") -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


def error_code(error: TaskqError) -> int:
    if error.reason in _REASONS:
        return _REASONS[error.reason]
    if error.code.name in ("UNAVAILABLE", "RESOURCE_EXHAUSTED", "ABORTED", "DEADLINE_EXCEEDED"):
        return Errors.TRANSIENT_ERROR
    if error.code.name in ("INVALID_ARGUMENT", "FAILED_PRECONDITION", "OUT_OF_RANGE"):
        return Errors.INVALID_REQUEST
    return Errors.INTERNAL_ERROR


def _text(value: bytes, what: str) -> str:
    try:
        return value.decode()
    except UnicodeDecodeError:
        raise ServiceError(Errors.INVALID_REQUEST, f"{what} is not UTF-8") from None


def _queue_id(value: bytes) -> str:
    name = _text(value, "the queue name")
    if not limits.QUEUE_ID_RE.fullmatch(name):
        raise ServiceError(Errors.INVALID_QUEUE_NAME, f"{name[:120]!r} is not a queue name")
    return name


class TaskQueueService:
    def __init__(self, engine: Engine, target_urls: dict[str, str]) -> None:
        self._engine = engine
        #: queue.yaml target -> base URL (the `Host` header of a task can name one).
        self._target_urls = target_urls
        self.methods: dict[str, tuple[Any, Callable[[Any], Awaitable[Any]]]] = {
            "BulkAdd": (pb.TaskQueueBulkAddRequest, self.bulk_add),
            "Add": (pb.TaskQueueAddRequest, self.add),
            "QueryAndOwnTasks": (pb.TaskQueueQueryAndOwnTasksRequest, self.query_and_own_tasks),
            "ModifyTaskLease": (pb.TaskQueueModifyTaskLeaseRequest, self.modify_task_lease),
            "Delete": (pb.TaskQueueDeleteRequest, self.delete),
            "PurgeQueue": (pb.TaskQueuePurgeQueueRequest, self.purge_queue),
            "FetchQueueStats": (pb.TaskQueueFetchQueueStatsRequest, self.fetch_queue_stats),
        }

    async def _queue(self, queue_id: str) -> Queue:
        try:
            return await self._engine.queues.get(queue_id)
        except TaskqError as error:
            raise ServiceError(error_code(error), error.message) from None

    # Adding ---------------------------------------------------------------------------------

    async def bulk_add(self, request: pb.TaskQueueBulkAddRequest) -> pb.TaskQueueBulkAddResponse:
        response = pb.TaskQueueBulkAddResponse()
        if not request.add_request:
            return response
        queue_id = _queue_id(request.add_request[0].queue_name)
        queue = await self._queue(queue_id)
        items: list[NewTask | ServiceError] = []
        for add in request.add_request:
            try:
                if _queue_id(add.queue_name) != queue_id:
                    raise ServiceError(Errors.INVALID_REQUEST, "the tasks of one BulkAdd must share a queue")
                items.append(self._new_task(queue, add))
            except ServiceError as error:
                items.append(error)
            except InvalidArgument as error:
                items.append(ServiceError(error_code(error), error.message))
        results = response.taskresult
        if any(isinstance(item, ServiceError) for item in items):
            # App Engine adds none of them: the valid ones are SKIPPED.
            for item in items:
                results.add(result=item.code if isinstance(item, ServiceError) else Errors.SKIPPED)
            return response
        new = [item for item in items if isinstance(item, NewTask)]
        try:
            created = await self._engine.tasks.create(queue_id, list(new))
        except TaskqError as error:
            raise ServiceError(error_code(error), error.message) from None
        for item, outcome in zip(new, created):
            if isinstance(outcome, TaskqError):
                results.add(result=error_code(outcome))
            else:
                result = results.add(result=Errors.OK)
                if item.task_id is None:
                    result.chosen_task_name = outcome.task_id.encode()
        return response

    async def add(self, request: pb.TaskQueueAddRequest) -> pb.TaskQueueAddResponse:
        """The single add of older SDKs: a BulkAdd of one."""
        bulk = await self.bulk_add(pb.TaskQueueBulkAddRequest(add_request=[request]))
        result = bulk.taskresult[0]
        if result.result != Errors.OK:
            raise ServiceError(result.result)
        response = pb.TaskQueueAddResponse()
        if result.HasField("chosen_task_name"):
            response.chosen_task_name = result.chosen_task_name
        return response

    def _new_task(self, queue: Queue, add: pb.TaskQueueAddRequest) -> NewTask:
        if add.HasField("transaction") or add.HasField("datastore_transaction"):
            raise ServiceError(Errors.INVALID_REQUEST, "transactional tasks need App Engine's Datastore; add them "
                               "with transactional=False")
        if add.HasField("crontimetable") or add.HasField("payload"):
            raise ServiceError(Errors.INVALID_REQUEST, "cron tasks and MessageSet payloads are not served")
        pull = add.mode == pb.TaskQueueMode.PULL
        if pull != (queue.type is QueueType.PULL):
            kind = "pull" if queue.type is QueueType.PULL else "push"
            raise ServiceError(Errors.INVALID_QUEUE_MODE, f"queue {queue.queue_id} is a {kind} queue")
        task_id = None
        if add.task_name:
            task_id = _text(add.task_name, "the task name")
            if not limits.TASK_ID_RE.fullmatch(task_id):
                raise ServiceError(Errors.INVALID_TASK_NAME, f"{task_id[:120]!r} is not a task name")
        tag = _text(add.tag, "the tag") if add.HasField("tag") else ""
        if len(add.tag) > limits.MAX_TAG_BYTES:
            raise ServiceError(Errors.INVALID_TAG, f"the tag is longer than {limits.MAX_TAG_BYTES} bytes")
        http = None
        if not pull:
            http = self._http_request(queue, add)
        retry = _retry(add.retry_parameters) if add.HasField("retry_parameters") else None
        deadline_us = 0
        if add.HasField("dispatch_deadline_usec"):
            deadline_us = add.dispatch_deadline_usec
            if not limits.MIN_DISPATCH_DEADLINE_US <= deadline_us <= limits.MAX_DISPATCH_DEADLINE_US:
                raise ServiceError(Errors.INVALID_REQUEST, "the dispatch deadline must be from 15 seconds to 24 hours")
        new = NewTask(
            task_id=task_id, payload=add.body, tag=tag, schedule_time_us=add.eta_usec or None, retry=retry,
            dispatch_deadline_us=deadline_us, http=http,
        )
        size = len(add.body) + len(tag.encode()) + (http.size() if http is not None else 0)
        if size > self._engine.limits.max_task_bytes:
            raise ServiceError(Errors.TASK_TOO_LARGE, f"the task is {size} bytes; the limit is "
                               f"{self._engine.limits.max_task_bytes}")
        return new

    def _http_request(self, queue: Queue, add: pb.TaskQueueAddRequest) -> HttpRequest:
        url = _text(add.url, "the URL") or "/"
        if not url.startswith("/"):
            raise ServiceError(Errors.INVALID_URL, f"{url[:200]!r} must be a path starting with /")
        method = _METHODS.get(add.method)
        if method is None:
            raise ServiceError(Errors.INVALID_REQUEST, f"{add.method} is not a push task method")
        headers: dict[str, str] = {}
        host = ""
        for header in add.header:
            name, value = _text(header.key, "a header name"), _text(header.value, "a header value")
            lower = name.lower()
            if lower == "host":
                host = value
            if lower in _DROPPED_HEADERS or http_push.reserved(name):
                continue  # App Engine set (or stripped) these itself too
            headers[name] = value
        target = host.split(".", 1)[0].split(":", 1)[0] if host else ""
        if target in self._target_urls:  # taskqueue.add(target=...): that service's URL
            url = self._target_urls[target].rstrip("/") + url
        request = HttpRequest(url, method, headers)
        http_push.check_request(request, "task")
        return request

    # Pull queues ----------------------------------------------------------------------------

    async def query_and_own_tasks(self, request: pb.TaskQueueQueryAndOwnTasksRequest) -> pb.TaskQueueQueryAndOwnTasksResponse:
        queue_id = _queue_id(request.queue_name)
        lease_us = _lease_us(request.lease_seconds)
        if not 1 <= request.max_tasks <= limits.MAX_LEASE_TASKS:
            raise ServiceError(Errors.INVALID_REQUEST, f"max_tasks must be from 1 to {limits.MAX_LEASE_TASKS}")
        if request.HasField("tag") and not request.group_by_tag:
            raise ServiceError(Errors.INVALID_REQUEST, "a tag needs group_by_tag")
        tag = _text(request.tag, "the tag") if request.HasField("tag") else None
        oldest_tag = request.group_by_tag and tag is None
        try:
            leased = await self._engine.tasks.lease(queue_id, lease_us, request.max_tasks, tag, oldest_tag, 0)
        except TaskqError as error:
            raise ServiceError(error_code(error), error.message) from None
        response = pb.TaskQueueQueryAndOwnTasksResponse()
        for task in leased:
            item = response.task.add(
                task_name=task.task_id.encode(), eta_usec=task.lease_expire_us, retry_count=task.attempt_count,
                body=task.payload,
            )
            if task.tag:
                item.tag = task.tag.encode()
        return response

    async def modify_task_lease(self, request: pb.TaskQueueModifyTaskLeaseRequest) -> pb.TaskQueueModifyTaskLeaseResponse:
        queue_id = _queue_id(request.queue_name)
        task_id = _text(request.task_name, "the task name")
        lease_us = _lease_us(request.lease_seconds)
        await self._queue(queue_id)
        try:
            task = await self._engine.tasks.get(queue_id, task_id)
            if not task.lease_token or task.lease_expire_us != request.eta_usec:
                raise ServiceError(Errors.TASK_LEASE_EXPIRED, "the task's lease is not the one named by its ETA")
            renewed = await self._engine.tasks.modify_lease(queue_id, task_id, task.lease_token, lease_us)
        except TaskqError as error:
            raise ServiceError(error_code(error), error.message) from None
        expiry = renewed.lease_expire_us or self._engine.clock.now_us()
        return pb.TaskQueueModifyTaskLeaseResponse(updated_eta_usec=expiry)

    async def delete(self, request: pb.TaskQueueDeleteRequest) -> pb.TaskQueueDeleteResponse:
        queue_id = _queue_id(request.queue_name)
        await self._queue(queue_id)
        deletes: list[DeleteRequest | TaskqError] = []
        for name in request.task_name:
            task_id = _text(name, "a task name")
            if limits.TASK_ID_RE.fullmatch(task_id):
                deletes.append(DeleteRequest(task_id))
            else:
                deletes.append(InvalidArgument(f"{task_id[:120]!r} is not a task name", reason="INVALID_NAME"))
        try:
            outcomes = await self._engine.tasks.delete(queue_id, deletes)
        except TaskqError as error:
            raise ServiceError(error_code(error), error.message) from None
        return pb.TaskQueueDeleteResponse(result=[Errors.OK if e is None else error_code(e) for e in outcomes])

    # Queues ---------------------------------------------------------------------------------

    async def purge_queue(self, request: pb.TaskQueuePurgeQueueRequest) -> pb.TaskQueuePurgeQueueResponse:
        queue_id = _queue_id(request.queue_name)
        try:
            await self._engine.queues.purge(queue_id)
        except TaskqError as error:
            raise ServiceError(error_code(error), error.message) from None
        return pb.TaskQueuePurgeQueueResponse()

    async def fetch_queue_stats(self, request: pb.TaskQueueFetchQueueStatsRequest) -> pb.TaskQueueFetchQueueStatsResponse:
        response = pb.TaskQueueFetchQueueStatsResponse()
        for name in request.queue_name:
            queue_id = _queue_id(name)
            try:
                queue = await self._engine.queues.get(queue_id)
                stats = await self._engine.queues.stats(queue_id)
            except TaskqError as error:
                raise ServiceError(error_code(error), error.message) from None
            entry = response.queuestats.add(
                num_tasks=stats.tasks_count,
                oldest_eta_usec=stats.oldest_schedule_time_us if stats.oldest_schedule_time_us is not None else -1,
            )
            info = entry.scanner_info
            info.executed_last_minute = stats.executed_last_minute
            info.executed_last_hour = 0
            info.sampling_duration_seconds = 60.0
            info.requests_in_flight = stats.concurrent_dispatches
            if queue.max_dispatches_per_second is not None:
                info.enforced_rate = queue.max_dispatches_per_second
        return response


def _lease_us(seconds: float) -> int:
    if not math.isfinite(seconds) or seconds < 0 or seconds * US_PER_SECOND > limits.MAX_LEASE_DURATION_US:
        raise ServiceError(Errors.INVALID_REQUEST, "lease_seconds must be from 0 to one week")
    return round(seconds * US_PER_SECOND)


def _retry(params: pb.TaskQueueRetryParameters) -> RetryPolicy | None:
    """App Engine's per-task retry parameters (set fields only): a retry limit counts retries,
    taskq counts attempts."""
    policy = RetryPolicy()
    if params.HasField("retry_limit"):
        if not 0 <= params.retry_limit < limits.MAX_ATTEMPTS_LIMIT:
            raise ServiceError(Errors.INVALID_RETRY_PARAMETERS, "retry_limit is out of range")
        policy.max_attempts = params.retry_limit + 1
    if params.HasField("age_limit_sec"):
        if not 0 <= params.age_limit_sec * US_PER_SECOND <= limits.MAX_RETRY_DURATION_LIMIT_US:
            raise ServiceError(Errors.INVALID_RETRY_PARAMETERS, "age_limit_sec is out of range")
        policy.max_retry_duration_us = params.age_limit_sec * US_PER_SECOND
    for field, attribute in (("min_backoff_sec", "min_backoff_us"), ("max_backoff_sec", "max_backoff_us")):
        if params.HasField(field):
            value = getattr(params, field)
            if not math.isfinite(value) or not 0 <= value * US_PER_SECOND <= limits.MAX_BACKOFF_LIMIT_US:
                raise ServiceError(Errors.INVALID_RETRY_PARAMETERS, f"{field} is out of range")
            setattr(policy, attribute, math.ceil(value * US_PER_SECOND))
    if params.HasField("max_doublings"):
        if not 0 <= params.max_doublings <= limits.MAX_DOUBLINGS_LIMIT:
            raise ServiceError(Errors.INVALID_RETRY_PARAMETERS, "max_doublings is out of range")
        policy.max_doublings = params.max_doublings
    if (policy.min_backoff_us or 0) > (policy.max_backoff_us if policy.max_backoff_us is not None else 2**62):
        raise ServiceError(Errors.INVALID_RETRY_PARAMETERS, "min_backoff_sec exceeds max_backoff_sec")
    return None if policy.is_empty() else policy
