"""`Client`: the synchronous taskq client, one method per unary RPC.

Each method builds its request with `taskq.client.requests`, calls the generated stub with
the client's deadline, and returns the generated message (a Queue, a Task, ...). A call that
fails with UNAVAILABLE (a restart of the server) is made again with the same request, within
a retry budget (see `taskq.client.call_retry`). A failed call raises a `TaskqError` subclass
(see `taskq.client.errors`); list methods are generators that follow page tokens to the end.
`create_task` calls made close together, from several threads, share one BatchCreateTasks
call per queue (see `taskq.client.batching`).

    with Client("127.0.0.1:50051") as client:
        client.create_queue("work", type="pull")
        client.create_task("work", b"hello")
        [task] = client.lease_tasks("work", lease_duration=60)
        client.delete_task(task)  # acknowledges: the Task carries its lease token
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, TypeVar, Unpack

import grpc

from taskq.client import requests
from taskq.client.batching import DEFAULT_BATCHING, BatchSettings, ThreadBatcher, create_outcomes, request_size
from taskq.client.bearer import bearer_token, check_transport
from taskq.client.call_retry import DEFAULT_CALL_RETRY, Backoff, CallRetry, may_resend
from taskq.client.channel import create_channel, uses_tls
from taskq.client.errors import TaskqError, from_rpc_error, from_status
from taskq.client.names import queue_name, task_name
from taskq.client.requests import BatchItem, HttpRequestLike, QueueSettings, RetrySettings, View
from taskq.client.times import Seconds, When, seconds, to_duration
from taskq.client.tls import TlsSettings
from taskq.v1 import (
    admin_service_pb2,
    admin_service_pb2_grpc,
    queue_pb2,
    queue_service_pb2,
    queue_service_pb2_grpc,
    task_pb2,
    task_service_pb2,
    task_service_pb2_grpc,
)

Response = TypeVar("Response")

#: The address `taskq serve` listens on by default.
DEFAULT_ADDRESS = "127.0.0.1:50051"


class Client:
    """A connection to one taskq server.

    Args:
        address: the server: host:port, https://host[:port] (TLS), and the other forms of
            `taskq.client.address`; a host without a port means port 50051, never 443.
        timeout: the deadline of each call, in seconds, its retries included; None waits
            indefinitely. LeaseTasks calls get their `wait` on top of it.
        tls: TLS settings (CA file, client certificate, server name); given, the connection
            uses TLS. None: TLS only if the address is https://, with gRPC's default CAs.
        credentials: gRPC channel credentials, instead of the files of `tls`.
        channel: an existing channel to use instead of opening one (it is not closed by
            `close()`); `address`, `tls` and `credentials` are then ignored.
        batching: how `create_task` calls made close together (from several threads) are
            coalesced into one BatchCreateTasks per queue; `BatchSettings(max_delay=0)` or None
            sends each create on its own.
        call_retry: how calls failing with UNAVAILABLE, or with a CANCELLED the caller did not
            cause, are retried (by default for up to 15 s, see `taskq.client.call_retry`); None
            turns retries off.
        token: a bearer token, sent with every call (`authorization: Bearer ...`) to a server
            that checks callers; `token_file`: a file holding one, read again when it changes.
            Neither: $TASKQ_TOKEN, else $TASKQ_TOKEN_FILE, else no token. A token is refused
            over plain text to another machine (PlaintextToken) unless
            `allow_plaintext_token` (see `taskq.client.bearer`).
    """

    def __init__(
        self,
        address: str = DEFAULT_ADDRESS,
        *,
        timeout: float | None = 30,
        tls: TlsSettings | None = None,
        credentials: grpc.ChannelCredentials | None = None,
        channel: grpc.Channel | None = None,
        batching: BatchSettings | None = DEFAULT_BATCHING,
        call_retry: CallRetry | None = DEFAULT_CALL_RETRY,
        token: str | None = None,
        token_file: str | None = None,
        allow_plaintext_token: bool = False,
    ) -> None:
        self.address = address
        self.timeout = timeout
        self.call_retry = call_retry
        #: The token sent with each call (None: none), kept for a Worker given this client.
        self.bearer = bearer_token(token, token_file)
        self.allow_plaintext_token = allow_plaintext_token
        if self.bearer is not None and channel is None:
            check_transport(address, uses_tls(address, tls, credentials), allow_plaintext_token)
        # Set by close(): a call waiting to be retried gives up at once instead of sleeping on.
        self._closed = threading.Event()
        #: TLS settings, kept so that a Worker given this client can open its own channel.
        self.tls = tls
        self.credentials = credentials
        self._owns_channel = channel is None
        self._channel = channel if channel is not None else create_channel(address, credentials=credentials, tls=tls)
        self._tasks = task_service_pb2_grpc.TaskServiceStub(self._channel)
        self._queues = queue_service_pb2_grpc.QueueServiceStub(self._channel)
        self._admin = admin_service_pb2_grpc.AdminServiceStub(self._channel)
        self._batcher: ThreadBatcher[task_service_pb2.CreateTaskRequest, task_pb2.Task] | None = None
        if batching is not None and batching.enabled:
            self._batcher = ThreadBatcher(self._send_creates, batching, size=request_size, name="taskq-create")

    @property
    def owns_channel(self) -> bool:
        """Whether this client opened its channel from `address` (rather than being given one)."""
        return self._owns_channel

    def flush(self) -> None:
        """Sends the creates waiting to be batched now, and waits for their answers."""
        if self._batcher is not None:
            self._batcher.flush()

    def close(self) -> None:
        """Sends the creates waiting to be batched, then closes the channel if this client
        opened it; other calls in progress are cancelled."""
        if self._batcher is not None:
            self._batcher.close()
        self._closed.set()
        if self._owns_channel:
            self._channel.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _call(self, method: Callable[..., Response], request: Any, *, extra_time: float = 0.0) -> Response:
        # One deadline for all the attempts: the caller's timeout bounds the call, retries included.
        deadline = None if self.timeout is None else time.monotonic() + self.timeout + extra_time
        backoff = Backoff(self.call_retry, deadline) if self.call_retry and may_resend(request) else None
        failed: tuple[TaskqError, grpc.RpcError] | None = None  # the attempt being retried
        while True:
            timeout = None if deadline is None else max(deadline - time.monotonic(), 0.0)
            try:
                # The same request object on every attempt: a create keeps its request_id.
                return method(request, timeout=timeout, metadata=self.bearer.metadata() if self.bearer else None)
            except grpc.RpcError as rpc_error:
                error = from_rpc_error(rpc_error)
                # A blocking call cannot be cancelled locally: only close() (or closing the
                # channel, below) cancels it.
                wait = None if backoff is None else backoff.next_wait(
                    error, cancelled_by_caller=self._closed.is_set())
                if wait is None or self._closed.wait(wait):
                    raise error from rpc_error
                failed = (error, rpc_error)
            except ValueError:
                # The channel given to this client was closed by its owner (which cancels the
                # calls in progress): the failure being retried is the answer, not this.
                if failed is None:
                    raise
                raise failed[0] from failed[1]

    def _pages(self, method: Callable[..., Any], request: Any, field: str) -> Iterator[Any]:
        # A page may be short or even empty while more remain (the server bounds each scan),
        # so only an empty next_page_token ends the listing.
        while True:
            response = self._call(method, request)
            yield from getattr(response, field)
            if not response.next_page_token:
                return
            request.page_token = response.next_page_token

    # Queues --------------------------------------------------------------------------------

    def create_queue(self, queue: str | queue_pb2.Queue, *, type: str | int | None = None,
                     **settings: Unpack[QueueSettings]) -> queue_pb2.Queue:
        """Creates a queue (`type` "push", the default, or "pull") with the given settings, or
        from a Queue message. Raises QueueAlreadyExists if the name is taken.

        A push queue with `http_target` delivers its tasks as HTTP requests instead of streaming
        them to workers: `http_target={"uri": "https://worker.example.com/tasks",
        "http_method": "PUT", "headers": {"X-Env": "prod"}}` (or an HttpTarget message, or the
        URI alone)."""
        request = requests.create_queue_request(queue, type=type, **settings)
        return self._call(self._queues.CreateQueue, request).queue

    def get_queue(self, queue: str) -> queue_pb2.Queue:
        """The queue with its effective settings. Raises QueueNotFound."""
        request = queue_service_pb2.GetQueueRequest(name=queue_name(queue))
        return self._call(self._queues.GetQueue, request).queue

    def list_queues(self, *, page_size: int | None = None) -> Iterator[queue_pb2.Queue]:
        """Every queue, in name order, fetched `page_size` at a time."""
        request = queue_service_pb2.ListQueuesRequest(page_size=page_size or 0)
        return self._pages(self._queues.ListQueues, request, "queues")

    def update_queue(self, queue: str | queue_pb2.Queue, *, update_mask: Iterable[str] | None = None,
                     **settings: Unpack[QueueSettings]) -> queue_pb2.Queue:
        """Changes exactly the given settings (None resets one to its default); or, with a Queue
        message, the fields named by `update_mask`. `http_target` replaces the whole target;
        `http_target=None` removes it."""
        request = requests.update_queue_request(queue, update_mask=update_mask, **settings)
        return self._call(self._queues.UpdateQueue, request).queue

    def delete_queue(self, queue: str) -> None:
        """Deletes the queue and every task in it."""
        self._call(self._queues.DeleteQueue, queue_service_pb2.DeleteQueueRequest(name=queue_name(queue)))

    def pause_queue(self, queue: str) -> queue_pb2.Queue:
        """Stops the queue handing out tasks; it still accepts new ones."""
        return self._call(self._queues.PauseQueue, queue_service_pb2.PauseQueueRequest(name=queue_name(queue))).queue

    def resume_queue(self, queue: str) -> queue_pb2.Queue:
        """Lets a paused queue hand out tasks again."""
        request = queue_service_pb2.ResumeQueueRequest(name=queue_name(queue))
        return self._call(self._queues.ResumeQueue, request).queue

    def purge_queue(self, queue: str) -> queue_service_pb2.PurgeQueueResponse:
        """Deletes every task created before the call; the response has the queue and `purged_count`.

        Not retried on UNAVAILABLE: a second purge would also delete tasks created since the
        first, whose answer may only have been lost."""
        return self._call(self._queues.PurgeQueue, queue_service_pb2.PurgeQueueRequest(name=queue_name(queue)))

    def get_queue_stats(self, queue: str) -> queue_pb2.QueueStats:
        """The queue's counts and rates."""
        request = queue_service_pb2.GetQueueStatsRequest(name=queue_name(queue))
        return self._call(self._queues.GetQueueStats, request).stats

    # Administration ------------------------------------------------------------------------

    def backup(self, destination: str) -> admin_service_pb2.BackupResponse:
        """Has the server write a consistent copy of its database into `destination`, a new
        directory given as an absolute path on the server's machine, while it keeps serving
        (AdminService.Backup; RocksDB only). Not retried: a copy may already be written."""
        return self._call(self._admin.Backup, admin_service_pb2.BackupRequest(destination=destination))

    # Tasks ---------------------------------------------------------------------------------

    def create_task(
        self,
        queue: str,
        payload: bytes | str = b"",
        *,
        name: str | None = None,
        tag: str | None = None,
        schedule_time: When | None = None,
        delay: Seconds | None = None,
        attributes: Mapping[str, str] | None = None,
        dispatch_deadline: Seconds | None = None,
        request_id: str | None = None,
        view: View = None,
        http_request: HttpRequestLike | None = None,
        batch: bool = True,
        **retry: Unpack[RetrySettings],
    ) -> task_pb2.Task:
        """Adds a task and returns it (without its payload unless `view="full"`).

        `name` (an id or full name) de-duplicates: an existing one raises TaskAlreadyExists, a
        recently finished one TaskTombstoned. `schedule_time` (aware datetime or epoch seconds)
        or `delay` (seconds from now) sets the ETA. Retry settings (`max_attempts`, ...)
        override the queue's for this task. On a queue with an HTTP target, `http_request` is the
        request this task becomes, e.g. `{"url": "/path?x=1", "http_method": "POST", "headers":
        {"Content-Type": "application/json"}}` (an HttpRequest message, or the URL or path
        alone); its body is the payload. A random `request_id` is sent unless one is given,
        the same on every automatic retry, so those retries cannot add the task twice. An
        application that retries a create itself (after this call raised) must pass its own
        `request_id`, the same on each of its attempts; `request_id=""` sends none and turns
        the automatic retries of this create off.

        Calls made close together (from several threads) share one BatchCreateTasks call (see
        `batching`); each still returns its own task or raises its own error, exactly as an
        unbatched call would. `batch=False` sends this one create on its own, at once.
        """
        request = requests.create_task_request(
            queue, payload, name=name, tag=tag, schedule_time=schedule_time, delay=delay, attributes=attributes,
            dispatch_deadline=dispatch_deadline, request_id=request_id, view=view, http_request=http_request,
            **retry,
        )
        if batch and self._batcher is not None:
            return self._batcher.submit(request.parent, request).result()
        return self._call(self._tasks.CreateTask, request).task

    def _send_creates(self, parent: str, items: list[task_service_pb2.CreateTaskRequest]) -> list[Any]:
        """The batcher's call: one BatchCreateTasks; a per-item error is returned, not raised."""
        request = task_service_pb2.BatchCreateTasksRequest(parent=parent, requests=items)
        return create_outcomes(self._call(self._tasks.BatchCreateTasks, request))

    def create_tasks(self, queue: str, tasks: Iterable[BatchItem]) -> list[task_pb2.Task | TaskqError]:
        """Adds up to 1000 tasks in one commit; one result per item, in order: the created Task,
        or the TaskqError (not raised) that refused that item.

        Items are Task messages, CreateTaskRequests, or mappings of `create_task` keyword
        arguments, e.g. `{"payload": b"...", "name": "t1"}`. A whole-call failure (an unknown
        queue, too many items) is raised.
        """
        request = requests.batch_create_tasks_request(queue, tasks)
        response = self._call(self._tasks.BatchCreateTasks, request)
        return [result.task if result.HasField("task") else from_status(result.error) for result in response.results]

    def get_task(self, task: str | task_pb2.Task, *, view: View = None) -> task_pb2.Task:
        """The task (with its payload unless `view="basic"`). Raises TaskNotFound."""
        request = task_service_pb2.GetTaskRequest(name=task_name(task), view=requests.view_value(view))
        return self._call(self._tasks.GetTask, request).task

    def list_tasks(self, queue: str, *, state: str | int | Iterable[str | int] | None = None,
                   tag: str | None = None, filter: str | None = None, view: View = None,
                   page_size: int | None = None) -> Iterator[task_pb2.Task]:
        """Every task of the queue matching all the given conditions, in task id order.

        `state` is one state or several ("ready", "leased", ...); `filter` is the raw filter
        syntax of ListTasks. Payloads are left out unless `view="full"`.
        """
        request = requests.list_tasks_request(queue, filter=filter, state=state, tag=tag, view=view,
                                              page_size=page_size)
        return self._pages(self._tasks.ListTasks, request, "tasks")

    def delete_task(self, task: str | task_pb2.Task, *, lease_token: str | None = None) -> None:
        """With a lease token, acknowledges the leased task (raises LeaseLost if the lease is no
        longer held); without, deletes the task whatever its state. A leased Task message
        passed here carries its own token."""
        self._call(self._tasks.DeleteTask, requests.delete_task_request(task, lease_token=lease_token))

    def delete_tasks(self, queue: str, tasks: Iterable[str | task_pb2.Task | task_service_pb2.DeleteTaskRequest]
                     ) -> list[TaskqError | None]:
        """Deletes or acknowledges up to 1000 tasks of one queue in one commit; one result per
        item, in order: None when done, else the TaskqError (not raised) for that item."""
        response = self._call(self._tasks.BatchDeleteTasks, requests.batch_delete_tasks_request(queue, tasks))
        return [None if status.code == 0 else from_status(status) for status in response.results]

    def lease_tasks(self, queue: str, *, lease_duration: Seconds, max_tasks: int = 1, tag: str | None = None,
                    oldest_tag: bool = False, wait: Seconds | None = None, view: View = None) -> list[task_pb2.Task]:
        """Leases up to `max_tasks` ready tasks of a pull queue for `lease_duration` seconds.

        `tag` leases only tasks of that tag; `oldest_tag=True` only those sharing the oldest
        ready task's tag. `wait` (seconds, at most 60) waits for a task when none is ready.
        Each returned Task carries its `lease_token`. Raises QueuePaused or WrongQueueType.
        When an attempt's answer is lost and the call retried, the tasks that attempt leased
        come back (ready, the attempt counted) when their lease expires.
        """
        request = requests.lease_tasks_request(queue, lease_duration=lease_duration, max_tasks=max_tasks, tag=tag,
                                               oldest_tag=oldest_tag, wait=wait, view=view)
        # The server may hold the call for the whole wait; the deadline must outlast it.
        extra = seconds(to_duration(wait)) if wait is not None else 0.0
        return list(self._call(self._tasks.LeaseTasks, request, extra_time=extra).tasks)

    def modify_lease(self, task: str | task_pb2.Task, *, lease_duration: Seconds,
                     lease_token: str | None = None) -> task_pb2.Task:
        """Sets the lease to end `lease_duration` seconds from now; 0 releases the task at once.
        A leased Task message carries its own token. Raises LeaseLost."""
        request = requests.modify_lease_request(task, lease_duration=lease_duration, lease_token=lease_token)
        return self._call(self._tasks.ModifyLease, request).task

    def run_task(self, task: str | task_pb2.Task) -> task_pb2.Task:
        """Makes a scheduled or failed task ready now. Raises TaskLeased for a leased task."""
        return self._call(self._tasks.RunTask, task_service_pb2.RunTaskRequest(name=task_name(task))).task


__all__ = ["Client", "DEFAULT_ADDRESS"]
