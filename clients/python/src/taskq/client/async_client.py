"""`AsyncClient`: the asyncio taskq client, the same methods as `Client`, awaited.

It shares everything but the transport with the sync client: requests are built by
`taskq.client.requests`, errors are the same `TaskqError` classes, the channel has the same
settings, and calls failing with UNAVAILABLE are retried the same way (see
`taskq.client.call_retry`). List methods are async generators. `create_task` calls made close
together, from any number of coroutines, share one BatchCreateTasks per queue.

    async with AsyncClient("127.0.0.1:50051") as client:
        tasks = await asyncio.gather(*(client.create_task("work", f"job {i}") for i in range(100)))

Create it inside a coroutine: its channel belongs to the running event loop.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from typing import Any, TypeVar, Unpack

import grpc

from taskq.client import requests
from taskq.client.batching import DEFAULT_BATCHING, AsyncBatcher, BatchSettings, create_outcomes, request_size
from taskq.client.bearer import bearer_token, check_transport
from taskq.client.call_retry import DEFAULT_CALL_RETRY, Backoff, CallRetry, may_resend
from taskq.client.channel import create_aio_channel, uses_tls
from taskq.client.client import DEFAULT_ADDRESS
from taskq.client.errors import TaskqError, from_rpc_error, from_status
from taskq.client.names import queue_name, task_name
from taskq.client.requests import BatchItem, HttpRequestLike, QueueSettings, RetrySettings, View
from taskq.client.times import Seconds, When, seconds, to_duration
from taskq.client.tls import TlsSettings
from taskq.v1 import (
    queue_pb2,
    queue_service_pb2,
    queue_service_pb2_grpc,
    task_pb2,
    task_service_pb2,
    task_service_pb2_grpc,
)

Response = TypeVar("Response")


class AsyncClient:
    """A connection to one taskq server, for asyncio code. Arguments as for `Client`, with
    `channel` a `grpc.aio.Channel`."""

    def __init__(
        self,
        address: str = DEFAULT_ADDRESS,
        *,
        timeout: float | None = 30,
        tls: TlsSettings | None = None,
        credentials: grpc.ChannelCredentials | None = None,
        channel: grpc.aio.Channel | None = None,
        batching: BatchSettings | None = DEFAULT_BATCHING,
        call_retry: CallRetry | None = DEFAULT_CALL_RETRY,
        token: str | None = None,
        token_file: str | None = None,
        allow_plaintext_token: bool = False,
    ) -> None:
        self.address = address
        self.timeout = timeout
        self.call_retry = call_retry
        #: The token sent with each call (None: none), also by a Worker sharing this client's channel.
        self.bearer = bearer_token(token, token_file)
        if self.bearer is not None and channel is None:
            check_transport(address, uses_tls(address, tls, credentials), allow_plaintext_token)
        # Set by close(): a call waiting to be retried gives up instead of using a closed channel.
        self._closed = False
        self.tls = tls
        self.credentials = credentials
        self._owns_channel = channel is None
        self._channel = channel if channel is not None else create_aio_channel(address, credentials=credentials, tls=tls)
        self._tasks = task_service_pb2_grpc.TaskServiceStub(self._channel)
        self._queues = queue_service_pb2_grpc.QueueServiceStub(self._channel)
        self._batcher: AsyncBatcher[task_service_pb2.CreateTaskRequest, task_pb2.Task] | None = None
        if batching is not None and batching.enabled:
            self._batcher = AsyncBatcher(self._send_creates, batching, size=request_size)

    @property
    def channel(self) -> grpc.aio.Channel:
        """The channel, for a Worker on the same event loop to share."""
        return self._channel

    async def flush(self) -> None:
        """Sends the creates waiting to be batched now, and waits for their answers."""
        if self._batcher is not None:
            await self._batcher.flush()

    async def close(self) -> None:
        """Sends the creates waiting to be batched, then closes the channel if this client
        opened it."""
        if self._batcher is not None:
            await self._batcher.close()
        self._closed = True
        if self._owns_channel:
            await self._channel.close()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def _call(self, method: Callable[..., Any], request: Any, *, extra_time: float = 0.0) -> Any:
        # As Client._call: one deadline for all the attempts, the same request on each.
        deadline = None if self.timeout is None else time.monotonic() + self.timeout + extra_time
        backoff = Backoff(self.call_retry, deadline) if self.call_retry and may_resend(request) else None
        failure: grpc.aio.AioRpcError | None = None  # the attempt being retried
        while True:
            timeout = None if deadline is None else max(deadline - time.monotonic(), 0.0)
            try:
                return await method(request, timeout=timeout, metadata=self.bearer.metadata() if self.bearer else None)
            except grpc.aio.AioRpcError as rpc_error:
                failure, error = rpc_error, from_rpc_error(rpc_error)
            except grpc.aio.UsageError:
                # The channel given to this client was closed by its owner: the failure being
                # retried is the answer, not this.
                if failure is None:
                    raise
                raise error from failure
            # Outside the except block, so that cancelling the caller's task during the wait
            # raises CancelledError alone, not chained to the failed attempt. The caller's own
            # cancellation raises CancelledError, never a CANCELLED status, so a CANCELLED is
            # retried unless this client was closed.
            wait = None if backoff is None else backoff.next_wait(error, cancelled_by_caller=self._closed)
            if wait is None:
                raise error from failure
            await asyncio.sleep(wait)
            if self._closed:
                raise error from failure

    async def _pages(self, method: Callable[..., Any], request: Any, field: str) -> AsyncIterator[Any]:
        # Only an empty next_page_token ends a listing: pages may be short, even empty.
        while True:
            response = await self._call(method, request)
            for item in getattr(response, field):
                yield item
            if not response.next_page_token:
                return
            request.page_token = response.next_page_token

    # Queues --------------------------------------------------------------------------------

    async def create_queue(self, queue: str | queue_pb2.Queue, *, type: str | int | None = None,
                           **settings: Unpack[QueueSettings]) -> queue_pb2.Queue:
        """See `Client.create_queue`."""
        request = requests.create_queue_request(queue, type=type, **settings)
        return (await self._call(self._queues.CreateQueue, request)).queue

    async def get_queue(self, queue: str) -> queue_pb2.Queue:
        request = queue_service_pb2.GetQueueRequest(name=queue_name(queue))
        return (await self._call(self._queues.GetQueue, request)).queue

    def list_queues(self, *, page_size: int | None = None) -> AsyncIterator[queue_pb2.Queue]:
        """Every queue, in name order: `async for queue in client.list_queues()`."""
        request = queue_service_pb2.ListQueuesRequest(page_size=page_size or 0)
        return self._pages(self._queues.ListQueues, request, "queues")

    async def update_queue(self, queue: str | queue_pb2.Queue, *, update_mask: Iterable[str] | None = None,
                           **settings: Unpack[QueueSettings]) -> queue_pb2.Queue:
        """See `Client.update_queue`."""
        request = requests.update_queue_request(queue, update_mask=update_mask, **settings)
        return (await self._call(self._queues.UpdateQueue, request)).queue

    async def delete_queue(self, queue: str) -> None:
        await self._call(self._queues.DeleteQueue, queue_service_pb2.DeleteQueueRequest(name=queue_name(queue)))

    async def pause_queue(self, queue: str) -> queue_pb2.Queue:
        request = queue_service_pb2.PauseQueueRequest(name=queue_name(queue))
        return (await self._call(self._queues.PauseQueue, request)).queue

    async def resume_queue(self, queue: str) -> queue_pb2.Queue:
        request = queue_service_pb2.ResumeQueueRequest(name=queue_name(queue))
        return (await self._call(self._queues.ResumeQueue, request)).queue

    async def purge_queue(self, queue: str) -> queue_service_pb2.PurgeQueueResponse:
        return await self._call(self._queues.PurgeQueue, queue_service_pb2.PurgeQueueRequest(name=queue_name(queue)))

    async def get_queue_stats(self, queue: str) -> queue_pb2.QueueStats:
        request = queue_service_pb2.GetQueueStatsRequest(name=queue_name(queue))
        return (await self._call(self._queues.GetQueueStats, request)).stats

    # Tasks ---------------------------------------------------------------------------------

    async def create_task(
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
        """See `Client.create_task`: concurrent calls share one BatchCreateTasks per queue;
        `batch=False` sends this create on its own."""
        request = requests.create_task_request(
            queue, payload, name=name, tag=tag, schedule_time=schedule_time, delay=delay, attributes=attributes,
            dispatch_deadline=dispatch_deadline, request_id=request_id, view=view, http_request=http_request,
            **retry,
        )
        if batch and self._batcher is not None:
            return await self._batcher.submit(request.parent, request)
        return (await self._call(self._tasks.CreateTask, request)).task

    async def _send_creates(self, parent: str, items: list[task_service_pb2.CreateTaskRequest]) -> list[Any]:
        request = task_service_pb2.BatchCreateTasksRequest(parent=parent, requests=items)
        return create_outcomes(await self._call(self._tasks.BatchCreateTasks, request))

    async def create_tasks(self, queue: str, tasks: Iterable[BatchItem]) -> list[task_pb2.Task | TaskqError]:
        """See `Client.create_tasks`: one result per item, errors returned, not raised."""
        request = requests.batch_create_tasks_request(queue, tasks)
        response = await self._call(self._tasks.BatchCreateTasks, request)
        return [result.task if result.HasField("task") else from_status(result.error) for result in response.results]

    async def get_task(self, task: str | task_pb2.Task, *, view: View = None) -> task_pb2.Task:
        request = task_service_pb2.GetTaskRequest(name=task_name(task), view=requests.view_value(view))
        return (await self._call(self._tasks.GetTask, request)).task

    def list_tasks(self, queue: str, *, state: str | int | Iterable[str | int] | None = None,
                   tag: str | None = None, filter: str | None = None, view: View = None,
                   page_size: int | None = None) -> AsyncIterator[task_pb2.Task]:
        """See `Client.list_tasks`: `async for task in client.list_tasks("q", state="ready")`."""
        request = requests.list_tasks_request(queue, filter=filter, state=state, tag=tag, view=view,
                                              page_size=page_size)
        return self._pages(self._tasks.ListTasks, request, "tasks")

    async def delete_task(self, task: str | task_pb2.Task, *, lease_token: str | None = None) -> None:
        """See `Client.delete_task`."""
        await self._call(self._tasks.DeleteTask, requests.delete_task_request(task, lease_token=lease_token))

    async def delete_tasks(self, queue: str,
                           tasks: Iterable[str | task_pb2.Task | task_service_pb2.DeleteTaskRequest]
                           ) -> list[TaskqError | None]:
        """See `Client.delete_tasks`."""
        request = requests.batch_delete_tasks_request(queue, tasks)
        response = await self._call(self._tasks.BatchDeleteTasks, request)
        return [None if status.code == 0 else from_status(status) for status in response.results]

    async def lease_tasks(self, queue: str, *, lease_duration: Seconds, max_tasks: int = 1, tag: str | None = None,
                          oldest_tag: bool = False, wait: Seconds | None = None,
                          view: View = None) -> list[task_pb2.Task]:
        """See `Client.lease_tasks`."""
        request = requests.lease_tasks_request(queue, lease_duration=lease_duration, max_tasks=max_tasks, tag=tag,
                                               oldest_tag=oldest_tag, wait=wait, view=view)
        extra = seconds(to_duration(wait)) if wait is not None else 0.0
        return list((await self._call(self._tasks.LeaseTasks, request, extra_time=extra)).tasks)

    async def modify_lease(self, task: str | task_pb2.Task, *, lease_duration: Seconds,
                           lease_token: str | None = None) -> task_pb2.Task:
        """See `Client.modify_lease`."""
        request = requests.modify_lease_request(task, lease_duration=lease_duration, lease_token=lease_token)
        return (await self._call(self._tasks.ModifyLease, request)).task

    async def run_task(self, task: str | task_pb2.Task) -> task_pb2.Task:
        request = task_service_pb2.RunTaskRequest(name=task_name(task))
        return (await self._call(self._tasks.RunTask, request)).task


__all__ = ["AsyncClient"]
