"""`PullWorker`: the lease → work → delete loop over a pull queue.

    def build_report(task):
        render(task.payload)

    PullWorker("127.0.0.1:50051", "reports", build_report, lease_duration=60).run()

The loop leases at most as many tasks as it has free handler slots (up to `batch_size` per
LeaseTasks, long-polling `wait` seconds when none is ready), runs the handler for each in a
pool of `concurrency` threads, and extends a task's lease while its handler runs (see
`taskq.client.leases`). A handler that returns has its task deleted; deletes made within a
few milliseconds of each other go in one BatchDeleteTasks.

A handler that raises has its task's lease **released at once** (ModifyLease to 0): the task
is ready for the next lease straight away, with one more attempt counted. Pull queues have no
backoff of their own, so a task that keeps failing is bounded only by the queue's
`max_attempts` (then it fails or moves to the dead-letter queue); raise `Retry(delay)` to have
the task leased again only after `delay` seconds (the lease is set to end then). Pull queues
have no permanent failure either: `PermanentError` is released like any other exception (set
`max_attempts`, or delete the task yourself).

Stopping (`stop()`, or SIGTERM/SIGINT when `run()` is on the main thread) ends the loop after
the current long poll (at most `wait` seconds); running handlers get `grace_period` seconds to
finish and their tasks are deleted; tasks leased meanwhile, and those whose handlers outlast
the grace period, are released at once for other workers.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import random
import threading
import time
from typing import Any

from taskq.client.batching import BatchSettings, ThreadBatcher
from taskq.client.client import Client
from taskq.client.errors import (
    Aborted,
    Cancelled,
    DeadlineExceeded,
    Internal,
    LeaseLost,
    QueuePaused,
    ResourceExhausted,
    TaskNotFound,
    TaskqError,
    Unavailable,
    UnknownError,
)
from taskq.client.failures import Retry
from taskq.client.leases import HeldLease
from taskq.client.names import queue_name
from taskq.client.stopping import stop_on_signals
from taskq.client.times import Seconds, seconds, to_duration
from taskq.client.tracing import traced
from taskq.client.worker import Handler, _is_coroutine_function
from taskq.v1 import task_pb2, task_service_pb2

log = logging.getLogger("taskq.pull")

#: LeaseTasks failures worth retrying after a pause; any other error ends run().
TRANSIENT_ERRORS = (Unavailable, DeadlineExceeded, ResourceExhausted, Internal, UnknownError, Aborted, Cancelled,
                    QueuePaused)
#: Seconds to pause after a failed LeaseTasks, doubling up to the maximum.
RETRY_INITIAL_BACKOFF = 0.1
RETRY_MAX_BACKOFF = 10.0


class PullWorker:
    """Runs `handler(task)` for every task of a pull queue.

    Args:
        client: a `Client`, or host:port of the server (the worker then opens its own).
        queue: the pull queue, an id or `queues/{id}`.
        handler: called with each leased Task message, in a thread; a coroutine function is
            run to completion with `asyncio.run` in that thread.
        lease_duration: seconds each lease lasts; extended while the handler runs.
        batch_size: most tasks per LeaseTasks call (1 to 1000).
        concurrency: handlers running at once.
        tag / oldest_tag: lease only tasks of this tag / of the oldest ready task's tag.
        wait: seconds a LeaseTasks call waits for a task when none is ready (at most 60);
            also the longest `stop()` waits for the loop to notice.
        grace_period: seconds running handlers get to finish when the worker stops.
        extension_interval: seconds between lease extensions; None extends at half the lease.
        ack_delay: seconds a delete waits for others to share its BatchDeleteTasks.
    """

    def __init__(
        self,
        client: Client | str,
        queue: str,
        handler: Handler,
        *,
        lease_duration: Seconds = 60,
        batch_size: int = 10,
        concurrency: int = 8,
        tag: str | None = None,
        oldest_tag: bool = False,
        wait: Seconds = 5,
        grace_period: float = 30.0,
        extension_interval: float | None = None,
        ack_delay: float = 0.005,
    ) -> None:
        if concurrency < 1 or not 1 <= batch_size <= 1000:
            raise ValueError("concurrency must be at least 1 and batch_size 1 to 1000")
        self._client_given = client
        self.queue = queue_name(queue)
        self._is_async = _is_coroutine_function(handler)
        # In a span continuing the task's trace when the application uses OpenTelemetry.
        self._handler = traced(handler, self.queue, self._is_async)
        self.lease_duration = seconds(to_duration(lease_duration))
        self.batch_size = batch_size
        self.concurrency = concurrency
        self.tag = tag
        self.oldest_tag = oldest_tag
        #: The long-poll wait, seconds (a timedelta is accepted and converted).
        self.wait = seconds(to_duration(wait))
        self.grace_period = grace_period
        self._extension_interval = extension_interval
        self._ack_delay = ack_delay
        self._stopping = threading.Event()
        self._hurry = threading.Event()
        self._grace: float | None = None
        self._changed = threading.Condition()
        #: Tasks leased and not yet done with, by name.
        self._held: dict[str, HeldLease] = {}

    def stop(self, grace_period: float | None = None) -> None:
        """Asks the loop to stop (from any thread or a handler); running handlers get
        `grace_period` seconds (default: the worker's) to finish."""
        if grace_period is not None:
            self._grace = grace_period
            if grace_period <= 0:
                self._hurry.set()
        self._stopping.set()
        with self._changed:
            self._changed.notify_all()

    def run(self, *, handle_signals: bool = True) -> None:
        """Runs the loop in this thread until stopped. Raises a TaskqError for a failure that
        retrying cannot cure (the queue does not exist, or is a push queue)."""
        if handle_signals:
            with stop_on_signals(self.stop):
                self._run()
        else:
            self._run()

    # The loop ------------------------------------------------------------------------------

    def _run(self) -> None:
        client = self._client_given if isinstance(self._client_given, Client) else Client(self._client_given)
        self._client = client
        pool = concurrent.futures.ThreadPoolExecutor(self.concurrency, thread_name_prefix="taskq-pull")
        self._deletes: ThreadBatcher[task_service_pb2.DeleteTaskRequest, None] = ThreadBatcher(
            self._send_deletes, BatchSettings(max_delay=self._ack_delay, max_items=1000), name="taskq-pull-delete")
        extender = threading.Thread(target=self._extend, name="taskq-pull-extend", daemon=True)
        extender.start()
        try:
            self._lease_until_stopped(pool)
        finally:
            self._stopping.set()
            self._let_handlers_finish()
            self._deletes.close()
            with self._changed:
                overdue, self._held = list(self._held.values()), {}
                self._changed.notify_all()
            self._release([lease.task for lease in overdue])
            extender.join()
            pool.shutdown(wait=False, cancel_futures=True)
            if client is not self._client_given:
                client.close()
            self._stopping.clear()
            self._hurry.clear()
            self._grace = None

    def _lease_until_stopped(self, pool: concurrent.futures.ThreadPoolExecutor) -> None:
        backoff = RETRY_INITIAL_BACKOFF
        while not self._stopping.is_set():
            with self._changed:
                while len(self._held) >= self.concurrency and not self._stopping.is_set():
                    self._changed.wait()
                free = self.concurrency - len(self._held)
            if self._stopping.is_set():
                return
            try:
                tasks = self._client.lease_tasks(
                    self.queue, lease_duration=self.lease_duration, max_tasks=min(self.batch_size, free),
                    tag=self.tag, oldest_tag=self.oldest_tag, wait=self.wait,
                )
            except TRANSIENT_ERRORS as error:
                delay = (self.wait if isinstance(error, QueuePaused) else backoff) * random.uniform(0.5, 1.0)
                log.warning("leasing from %s failed (%s); trying again in %.1f s", self.queue, error, delay)
                self._stopping.wait(delay)
                backoff = min(backoff * 2, RETRY_MAX_BACKOFF)
                continue
            backoff = RETRY_INITIAL_BACKOFF
            if self._stopping.is_set():
                self._release(tasks)  # leased during the last poll: someone else's now
                return
            with self._changed:
                for task in tasks:
                    self._held[task.name] = HeldLease.start(task, self.lease_duration, self._extension_interval)
                self._changed.notify_all()  # the extender may have new leases to look after
            for task in tasks:
                pool.submit(self._handle, task)

    def _handle(self, task: task_pb2.Task) -> None:
        failure: Exception | None = None
        try:
            outcome = self._handler(task)
            if self._is_async:
                # An async handler: its call made a coroutine, run here on this worker thread.
                asyncio.run(outcome)  # type: ignore[arg-type]
        except Exception as error:  # any failure of the handler is the task's
            failure = error
            if not isinstance(error, Retry):
                log.warning("%s failed: %r; releasing it", task.name, error, exc_info=error)
        try:
            with self._changed:
                held = self._held.get(task.name)
                # Not ours any more if the grace period ran out and the task was released.
                ours = held if held is not None and held.task.lease_token == task.lease_token else None
                if ours is not None and failure is not None:
                    ours.lost = True  # being released: no more extensions
                if ours is not None and failure is None:
                    # Queued before the slot is freed: stopping waits for the slots, then
                    # sends the queued deletes.
                    request = task_service_pb2.DeleteTaskRequest(name=task.name, lease_token=task.lease_token)
                    self._deletes.submit(self.queue, request).add_done_callback(
                        lambda done: _log_delete_failure(task.name, done))
            if ours is not None and isinstance(failure, Retry):
                log.info("%s will be leased again in %s s", task.name, failure.delay)
                self._modify(task, failure.delay)
            elif ours is not None and failure is not None:
                self._release([task])
        finally:
            self._forget(task)

    def _forget(self, task: task_pb2.Task) -> None:
        """Frees the task's slot."""
        with self._changed:
            held = self._held.get(task.name)
            if held is not None and held.task.lease_token == task.lease_token:
                del self._held[task.name]
            self._changed.notify_all()

    def _let_handlers_finish(self) -> None:
        grace = self._grace if self._grace is not None else self.grace_period
        deadline = time.monotonic() + grace
        with self._changed:
            while self._held and not self._hurry.is_set():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._changed.wait(min(remaining, 0.1))
        if self._held:
            log.warning("%d handlers still running after the grace period; releasing their tasks", len(self._held))

    # Leases --------------------------------------------------------------------------------

    def _extend(self) -> None:
        """Extends the lease of each held task when it is due, until the loop has ended."""
        while not (self._stopping.is_set() and not self._held):
            now = time.monotonic()
            with self._changed:
                due = [lease for lease in self._held.values() if lease.due <= now and not lease.lost]
                next_due = min((lease.due for lease in self._held.values()), default=now + 1.0)
            for lease in due:
                try:
                    self._client.modify_lease(lease.task, lease_duration=lease.length)
                    lease.extended(time.monotonic())
                except (LeaseLost, TaskNotFound) as error:
                    lease.lost = True
                    name = lease.task.name
                    if self._held.get(name) is lease:  # not merely finished meanwhile
                        log.warning("lost the lease of %s while its handler runs: %s", name, error)
                except TaskqError as error:
                    lease.extended(time.monotonic())  # try again at the next interval
                    log.warning("extending the lease of %s failed: %s", lease.task.name, error)
            with self._changed:
                if not due:
                    self._changed.wait(max(0.0, min(next_due - time.monotonic(), 1.0)))

    def _modify(self, task: task_pb2.Task, lease_duration: Seconds) -> None:
        try:
            self._client.modify_lease(task, lease_duration=lease_duration)
        except TaskqError as error:
            log.warning("could not release %s: %s", task.name, error)

    def _release(self, tasks: list[task_pb2.Task]) -> None:
        for task in tasks:
            self._modify(task, 0)

    def _send_deletes(self, queue: str, requests: list[task_service_pb2.DeleteTaskRequest]) -> list[Any]:
        return self._client.delete_tasks(queue, requests)


def _log_delete_failure(name: str, done: concurrent.futures.Future[None]) -> None:
    error = done.exception()
    if error is not None:
        log.warning("deleting %s after its handler returned failed: %s", name, error)


__all__ = ["PullWorker"]
