"""`Worker`: runs a handler for each task of a push queue, delivered over StreamTasks.

    def send_email(task):           # or: async def send_email(task)
        deliver(json.loads(task.payload))

    Worker("127.0.0.1:50051", "emails", send_email, concurrency=8).run()

The worker subscribes to the queue and runs the handler on each task it receives, at most
`concurrency` at once: a sync handler in a pool of that many threads, an async one on the
event loop. While a handler runs, the task's lease is extended (see `taskq.client.leases`).
A handler that returns acks its task; one that raises nacks it with the exception's text
(see `taskq.client.failures` for `Retry` and `PermanentError`). Answers made within a few
milliseconds of each other share one stream message.

When the stream fails (the server restarts, the network drops) the worker subscribes again
with exponential backoff. The server has released the old stream's tasks by then, so handlers
still running for them finish, but their answers are dropped: each such task runs again
elsewhere (delivery is at least once; make handlers idempotent).

Stopping (`stop()`, or SIGTERM/SIGINT when `run()` is on the main thread): no new task is
started; running handlers get `grace_period` seconds to finish and their answers are sent;
then the stream ends and the server releases the tasks received but not started, at once,
for other workers (each such release counts as an attempt, so on a queue with a small
`max_attempts` prefer `max_outstanding=concurrency`, which holds none in reserve). A second
signal stops without waiting. An async handler still running after the grace period is cancelled; a sync one
cannot be, and keeps its thread until it returns, its answer dropped.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import inspect
import logging
import random
import threading
from collections.abc import Awaitable, Callable
from typing import Any

import grpc

from taskq.client.address import parse_address
from taskq.client.async_client import AsyncClient
from taskq.client.bearer import bearer_token, check_transport
from taskq.client.channel import create_aio_channel, uses_tls
from taskq.client.client import Client
from taskq.client.errors import from_rpc_error
from taskq.client.failures import PermanentError, Retry, failure_status
from taskq.client.leases import HeldLease
from taskq.client.names import queue_name
from taskq.client.push_stream import StreamSession
from taskq.client.stopping import stop_on_signals
from taskq.client.times import to_duration
from taskq.client.tls import TlsSettings
from taskq.client.tracing import traced
from taskq.v1 import task_pb2, task_service_pb2, task_service_pb2_grpc

log = logging.getLogger("taskq.worker")

Handler = Callable[[task_pb2.Task], Any] | Callable[[task_pb2.Task], Awaitable[Any]]

#: Seconds the worker waits before its first re-subscription, doubling up to the maximum.
RECONNECT_INITIAL_BACKOFF = 0.1
RECONNECT_MAX_BACKOFF = 5.0

#: Stream failures that no retry can cure: the worker stops and run() raises.
FATAL_CODES = frozenset({
    grpc.StatusCode.NOT_FOUND, grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.UNIMPLEMENTED,
})


class Worker:
    """Runs `handler(task)` for every task of a push queue.

    Args:
        client_or_address: the server's address (as for `Client`), a `Client` (its address and
            TLS settings are used for a channel of the worker's own), or an `AsyncClient` (its channel is
            shared; then use `run_async()` on that client's event loop).
        queue: the push queue, an id or `queues/{id}`.
        handler: called with each Task message (name, payload, attributes, attempt_count,
            lease_token, ...); a plain function runs in a thread, a coroutine function on the
            event loop.
        concurrency: handlers running at once.
        max_outstanding: tasks the server may send ahead of the answers (running plus
            waiting to start); default twice `concurrency`, so a freed slot never waits for
            a round trip.
        grace_period: seconds running handlers get to finish when the worker stops.
        extension_interval: seconds between lease extensions of a held task; None extends
            when half of the lease is left.
        answer_delay: seconds an answer waits for others to share its stream message.
        tls: TLS settings, when `client_or_address` is an address (as for `Client`).
        credentials: gRPC channel credentials instead of `tls`'s files, likewise.
        token, token_file, allow_plaintext_token: the bearer token, likewise (a Client's or
            AsyncClient's own token is used with it).
    """

    def __init__(
        self,
        client_or_address: str | Client | AsyncClient,
        queue: str,
        handler: Handler,
        *,
        concurrency: int = 8,
        max_outstanding: int | None = None,
        grace_period: float = 30.0,
        extension_interval: float | None = None,
        answer_delay: float = 0.005,
        tls: TlsSettings | None = None,
        credentials: grpc.ChannelCredentials | None = None,
        token: str | None = None,
        token_file: str | None = None,
        allow_plaintext_token: bool = False,
    ) -> None:
        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, not {concurrency}")
        if isinstance(client_or_address, Client) and not client_or_address.owns_channel:
            raise ValueError("this Client was given a channel; give the Worker the server's address instead")
        if isinstance(client_or_address, str):
            parse_address(client_or_address)  # a malformed address fails here, not when run
        self._target = client_or_address
        if isinstance(client_or_address, str):
            self._bearer = bearer_token(token, token_file)
            if self._bearer is not None:
                check_transport(client_or_address, uses_tls(client_or_address, tls, credentials), allow_plaintext_token)
        else:
            self._bearer = client_or_address.bearer
        self._tls = tls
        self._credentials = credentials
        self.queue = queue_name(queue)
        self._is_async = _is_coroutine_function(handler)
        # In a span continuing the task's trace when the application uses OpenTelemetry.
        self._handler = traced(handler, self.queue, self._is_async)
        self.concurrency = concurrency
        self.max_outstanding = max_outstanding or 2 * concurrency
        self.grace_period = grace_period
        self._extension_interval = extension_interval
        self._answer_delay = answer_delay
        # stop() may come from any thread, before or during a run, or from a signal handler
        # interrupting this very thread (hence reentrant).
        self._stop_lock = threading.RLock()
        self._stop_requested = False
        self._stop_grace: float | None = None
        #: The loop of the current run; None while not running.
        self._loop: asyncio.AbstractEventLoop | None = None
        # Each run replaces these with fresh ones: an asyncio.Event belongs to the loop that
        # first waits on it, and a stopped worker may run again on another loop.
        self._stopping = asyncio.Event()
        self._hurry = asyncio.Event()

    # Public API ----------------------------------------------------------------------------

    def run(self, *, handle_signals: bool = True) -> None:
        """Runs until stopped, on an event loop of its own. On the main thread, SIGTERM and
        SIGINT stop it gracefully (unless `handle_signals` is False)."""
        if isinstance(self._target, AsyncClient):
            raise TypeError("a Worker on an AsyncClient's channel runs with `await worker.run_async()`")
        if handle_signals:
            with stop_on_signals(self._stop_from_signal):
                asyncio.run(self.run_async())
        else:
            asyncio.run(self.run_async())

    async def run_async(self) -> None:
        """Runs on the current event loop until stopped. Raises a TaskqError if the stream
        fails in a way retrying cannot cure (the queue does not exist or is a pull queue)."""
        if self._loop is not None:
            raise RuntimeError("this Worker is already running")
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        self._hurry = asyncio.Event()
        with self._stop_lock:
            if self._stop_requested:
                self._stopping.set()
        channel, owned = self._channel()
        self._slots = asyncio.Semaphore(self.concurrency)
        self._running: set[asyncio.Task[None]] = set()
        self._pool = None if self._is_async else concurrent.futures.ThreadPoolExecutor(
            self.concurrency, thread_name_prefix="taskq-handler")
        try:
            await self._subscribe_until_stopped(task_service_pb2_grpc.TaskServiceStub(channel))
        finally:
            await self._let_handlers_finish()
            if self._pool is not None:
                self._pool.shutdown(wait=False, cancel_futures=True)
            if owned:
                await channel.close()
            with self._stop_lock:
                # A stopped worker may be run again.
                self._loop = None
                self._stop_requested = False
                self._stop_grace = None

    def stop(self, grace_period: float | None = None) -> None:
        """Asks the worker to stop (from any thread, or a handler): no new task starts;
        running handlers get `grace_period` seconds (default: the worker's) to finish."""
        with self._stop_lock:
            self._stop_requested = True
            if grace_period is not None:
                self._stop_grace = grace_period
            loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._stop_on_loop)

    # Subscribing ---------------------------------------------------------------------------

    def _channel(self) -> tuple[grpc.aio.Channel, bool]:
        if isinstance(self._target, AsyncClient):
            return self._target.channel, False
        if isinstance(self._target, Client):
            client = self._target
            return create_aio_channel(client.address, credentials=client.credentials, tls=client.tls), True
        return create_aio_channel(self._target, credentials=self._credentials, tls=self._tls), True

    async def _subscribe_until_stopped(self, stub: task_service_pb2_grpc.TaskServiceStub) -> None:
        backoff = RECONNECT_INITIAL_BACKOFF
        while not self._stopping.is_set():
            session = StreamSession(
                stub.StreamTasks(metadata=self._bearer.metadata() if self._bearer else None), self.queue,
                self.max_outstanding, start=self._start,
                answer_delay=self._answer_delay, extension_interval=self._extension_interval,
            )
            if await session.serve(self._stopping):
                await self._let_handlers_finish()
                await session.drain()
                return
            error = session.failure
            if error is not None and error.code() in FATAL_CODES:
                raise from_rpc_error(error) from error
            if session.heard_from_server:
                backoff = RECONNECT_INITIAL_BACKOFF
            reason = f"{error.code().name}: {error.details()}" if error is not None else "the server closed it"
            delay = backoff * random.uniform(0.5, 1.0)
            log.warning("stream on %s ended (%s); subscribing again in %.1f s", self.queue, reason, delay)
            try:
                await asyncio.wait_for(self._stopping.wait(), delay)
            except TimeoutError:
                pass
            backoff = min(backoff * 2, RECONNECT_MAX_BACKOFF)

    # Handlers ------------------------------------------------------------------------------

    async def _start(self, session: StreamSession, lease: HeldLease) -> None:
        """Starts the task's handler once a slot is free (the backlog's starter calls it)."""
        await self._slots.acquire()
        running = asyncio.create_task(self._handle(session, lease.task))
        self._running.add(running)
        running.add_done_callback(self._running.discard)

    async def _handle(self, session: StreamSession, task: task_pb2.Task) -> None:
        try:
            if self._is_async:
                await self._handler(task)
            else:
                loop = asyncio.get_running_loop()
                await loop.run_in_executor(self._pool, functools.partial(self._handler, task))
        except asyncio.CancelledError:
            raise  # the grace period ran out: no answer, the stream's end releases the task
        except Exception as error:  # any failure of the handler is the task's
            session.answer(nack=_nack(task, error))
        else:
            session.answer(ack=task_service_pb2.TaskAck(name=task.name, lease_token=task.lease_token))
        finally:
            self._slots.release()
        if not session.open:
            log.info("%s finished after its stream ended; the server has already released it", task.name)

    async def _let_handlers_finish(self) -> None:
        """Waits for running handlers up to the grace period, then cancels async ones."""
        grace = self._stop_grace if self._stop_grace is not None else self.grace_period
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        while self._running and not self._hurry.is_set():
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            hurry = asyncio.create_task(self._hurry.wait())
            await asyncio.wait({*self._running, hurry}, timeout=remaining, return_when=asyncio.FIRST_COMPLETED)
            hurry.cancel()
        if self._running:
            log.warning("%d handlers still running after the grace period; their tasks are released",
                        len(self._running))
            for running in list(self._running):
                running.cancel()

    def _stop_on_loop(self) -> None:
        self._stopping.set()
        if self._stop_grace is not None and self._stop_grace <= 0:
            self._hurry.set()

    def _stop_from_signal(self, grace_period: float | None) -> None:
        log.info("stopping: %s", "now" if grace_period == 0 else "letting running handlers finish")
        self.stop(grace_period)


def _nack(task: task_pb2.Task, error: Exception) -> task_service_pb2.TaskNack:
    nack = task_service_pb2.TaskNack(name=task.name, lease_token=task.lease_token, error=failure_status(error))
    if isinstance(error, Retry):
        nack.retry_delay.CopyFrom(to_duration(error.delay))
        log.info("%s will be retried in %s s", task.name, error.delay)
    elif isinstance(error, PermanentError):
        nack.permanent = True
        log.warning("%s failed permanently: %s", task.name, error)
    else:
        log.warning("%s failed: %r", task.name, error, exc_info=error)
    return nack


def _is_coroutine_function(handler: Any) -> bool:
    # A callable object counts by its __call__ method.
    return inspect.iscoroutinefunction(handler) or inspect.iscoroutinefunction(type(handler).__call__)


__all__ = ["Worker", "Handler", "PermanentError", "Retry"]
