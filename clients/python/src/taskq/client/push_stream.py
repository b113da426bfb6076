"""One StreamTasks stream of a push `Worker`, from subscription to its end.

The session subscribes, then runs three loops on the stream while it lasts:

- the reader takes the server's messages: tasks go to the backlog (received, not started),
  refused answers are logged, heartbeats only prove the stream alive;
- the starter hands backlog tasks to the worker as handler slots free up;
- the extender extends the lease of every task still held (waiting or running) when it is due.

Answers (acks, nacks, extensions) produced within `answer_delay` of each other go out in one
StreamTasksRequest. Ending the session on purpose (`drain`) sends the answers still pending and
half-closes the stream; the server then releases whatever this stream still holds (the
backlog) at once, and closes its side.

The server releases a stream's tasks when the stream ends, so a task belongs to the session
that received it: answers for a task of a session that has ended are dropped (its lease is
gone), and a new session starts with an empty backlog.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

import grpc

from taskq.client.leases import HeldLease, lease_seconds
from taskq.client.times import to_duration
from taskq.v1 import task_pb2, task_service_pb2

log = logging.getLogger("taskq.worker")

#: After asking the server to end the stream, how long to wait for it to close, seconds.
END_OF_STREAM_TIMEOUT = 10.0


class StreamSession:
    """One subscription; see the module docstring."""

    def __init__(
        self,
        call: grpc.aio.StreamStreamCall,
        queue: str,
        max_outstanding: int,
        *,
        start: Callable[[StreamSession, HeldLease], Awaitable[None]],
        answer_delay: float,
        extension_interval: float | None,
    ) -> None:
        self._call = call
        self._queue = queue
        self._max_outstanding = max_outstanding
        self._start = start
        self._answer_delay = answer_delay
        self._extension_interval = extension_interval
        self._backlog: asyncio.Queue[HeldLease] = asyncio.Queue()
        #: Every task received and not yet answered, by (name, lease token).
        self.held: dict[tuple[str, str], HeldLease] = {}
        self.open = True
        #: Whether the server sent anything: the stream worked, whatever ends it later.
        self.heard_from_server = False
        self._acks: list[task_service_pb2.TaskAck] = []
        self._nacks: list[task_service_pb2.TaskNack] = []
        self._extensions: list[task_service_pb2.LeaseExtension] = []
        self._flush_timer: asyncio.TimerHandle | None = None
        self._flushing: set[asyncio.Task[None]] = set()
        self._write_lock = asyncio.Lock()
        self._new_lease = asyncio.Event()
        self._reader: asyncio.Task[None] | None = None
        self._extender: asyncio.Task[None] | None = None
        #: The error the stream ended with; None while open or if the server closed it cleanly.
        self.failure: grpc.aio.AioRpcError | None = None

    # Running -------------------------------------------------------------------------------

    async def serve(self, stopping: asyncio.Event) -> bool:
        """Runs the stream until `stopping` is set (returns True: the stream is still open, to
        be drained) or the stream ends (returns False; `failure` says how)."""
        self._reader = asyncio.create_task(self._read(), name="taskq-worker-read")
        starter = asyncio.create_task(self._start_from_backlog(), name="taskq-worker-start")
        # Extensions go on while handlers finish during a drain; close() stops them.
        self._extender = asyncio.create_task(self._extend(), name="taskq-worker-extend")
        stop_wait = asyncio.create_task(stopping.wait())
        try:
            done, _ = await asyncio.wait({self._reader, stop_wait}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop_wait.cancel()
            starter.cancel()
        if self._reader in done:
            self.close()
            return False
        return True

    async def drain(self) -> None:
        """Ends the stream on purpose: sends the pending answers, half-closes, and waits for the
        server to release what is left and close. Call once no handler of it runs any more."""
        try:
            await self.flush()
            async with self._write_lock:  # after any write still in progress
                await self._call.done_writing()
            if self._reader is not None:
                await asyncio.wait_for(asyncio.shield(self._reader), END_OF_STREAM_TIMEOUT)
        except (TimeoutError, grpc.RpcError, asyncio.InvalidStateError) as error:
            log.warning("the stream did not end cleanly: %s", error)
        finally:
            self.close()

    def close(self) -> None:
        """Drops the stream at once (the server releases every task it held)."""
        self.open = False
        if self._flush_timer is not None:
            self._flush_timer.cancel()
        if self._extender is not None:
            self._extender.cancel()
        self._call.cancel()

    # The three loops -----------------------------------------------------------------------

    async def _read(self) -> None:
        subscription = task_service_pb2.StreamSubscription(queue=self._queue, max_outstanding=self._max_outstanding)
        try:
            try:
                async with self._write_lock:
                    await self._call.write(task_service_pb2.StreamTasksRequest(subscription=subscription))
            except asyncio.InvalidStateError:
                pass  # the call has already ended: reading reports how
            while True:
                response = await self._call.read()
                if response is grpc.aio.EOF:
                    return
                self.heard_from_server = True
                for task in response.tasks:
                    self._received(task)
                for error in response.errors:
                    self._refused(error)
        except grpc.aio.AioRpcError as error:
            self.failure = error

    def _received(self, task: task_pb2.Task) -> None:
        lease = HeldLease.start(task, lease_seconds(task), self._extension_interval)
        self.held[(task.name, task.lease_token)] = lease
        self._backlog.put_nowait(lease)
        self._new_lease.set()

    def _refused(self, error: task_service_pb2.StreamError) -> None:
        lease = self.held.get((error.name, error.lease_token))
        if lease is not None and error.status.code == grpc.StatusCode.FAILED_PRECONDITION.value[0]:
            lease.lost = True  # LEASE_LOST: extending it further is pointless
        log.warning("the server refused an answer for %s: %s", error.name or "the stream", error.status.message)

    async def _start_from_backlog(self) -> None:
        while True:
            lease = await self._backlog.get()
            if lease.lost:
                self.held.pop((lease.task.name, lease.task.lease_token), None)
            else:
                await self._start(self, lease)

    async def _extend(self) -> None:
        while True:
            now = time.monotonic()
            next_due = None
            for lease in list(self.held.values()):
                if lease.lost:
                    continue
                if lease.due <= now:
                    self.answer(extension=task_service_pb2.LeaseExtension(
                        name=lease.task.name, lease_token=lease.task.lease_token,
                        lease_duration=to_duration(lease.length)))
                    lease.extended(now)
                next_due = lease.due if next_due is None else min(next_due, lease.due)
            self._new_lease.clear()
            timeout = None if next_due is None else max(0.0, next_due - time.monotonic())
            try:
                await asyncio.wait_for(self._new_lease.wait(), timeout)
            except TimeoutError:
                pass

    # Answers -------------------------------------------------------------------------------

    def answer(
        self,
        *,
        ack: task_service_pb2.TaskAck | None = None,
        nack: task_service_pb2.TaskNack | None = None,
        extension: task_service_pb2.LeaseExtension | None = None,
    ) -> None:
        """Queues an answer; it goes out with those of the next `answer_delay` seconds."""
        if not self.open:
            return
        done = ack if ack is not None else nack
        if done is not None:
            self.held.pop((done.name, done.lease_token), None)
            # An extension still queued for it would be refused once the answer is applied.
            self._extensions = [queued for queued in self._extensions if queued.name != done.name]
        if ack is not None:
            self._acks.append(ack)
        if nack is not None:
            self._nacks.append(nack)
        if extension is not None:
            self._extensions.append(extension)
        if self._flush_timer is None:
            self._flush_timer = asyncio.get_running_loop().call_later(self._answer_delay, self._flush_soon)

    def _flush_soon(self) -> None:
        flushing = asyncio.get_running_loop().create_task(self.flush())
        # The loop keeps only weak references to tasks: hold this one until it is done.
        self._flushing.add(flushing)
        flushing.add_done_callback(self._flushing.discard)

    async def flush(self) -> None:
        """Sends the queued answers now, in one message."""
        if self._flush_timer is not None:
            self._flush_timer.cancel()
            self._flush_timer = None
        if not (self._acks or self._nacks or self._extensions) or not self.open:
            return
        request = task_service_pb2.StreamTasksRequest(
            acks=self._acks, nacks=self._nacks, lease_extensions=self._extensions
        )
        self._acks, self._nacks, self._extensions = [], [], []
        try:
            async with self._write_lock:
                await self._call.write(request)
        except (grpc.RpcError, asyncio.InvalidStateError) as error:
            # The stream broke: the reader sees it too, and the worker reconnects. The server
            # releases this stream's tasks, so these answers are moot.
            log.debug("answers not sent, the stream ended: %s", error)


__all__ = ["StreamSession"]
