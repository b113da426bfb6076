"""Coalescing: calls made close together become one batch RPC.

Every RPC costs the server about as much CPU as a hundred items of a batch (see the
performance notes), so the clients gather `create_task` calls made within a couple of
milliseconds into one `BatchCreateTasks` per queue, as Pub/Sub's publisher does. Each caller
still gets its own result or its own exception.

A batcher knows nothing about tasks: it is given `send(key, items)`, which makes one call for
the items of one key (a queue) and returns one outcome per item, a result or an exception
instance for an item that was refused. An exception *raised* by `send` fails every item of
that batch. A batch goes out when the first of these happens:

- `max_delay` seconds have passed since its first item, and no earlier batch of the same key
  is still waiting for its answer (while one is, calls keep joining the next batch: under
  load batches grow instead of multiplying, as a database's group commit does),
- it holds `max_items` items, or the next item would take it past `max_bytes`,
- the batcher is flushed or closed.

`ThreadBatcher` serves the sync client (a background thread keeps time, a small pool sends;
callers wait on a `concurrent.futures.Future`); `AsyncBatcher` serves the asyncio client
(timers on the event loop; callers await an `asyncio.Future`).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import copy
import dataclasses
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Generic, TypeVar

from taskq.client.errors import TaskqError, from_status

Item = TypeVar("Item")
Result = TypeVar("Result")

#: The most items the server takes in one batch call.
MAX_BATCH_ITEMS = 1000

#: Batches of one batcher being sent at once (sync client). More overlap gains little on a
#: server that commits batches in groups anyway, and each one holds a thread.
MAX_IN_FLIGHT = 4


@dataclasses.dataclass(frozen=True)
class BatchSettings:
    """How create calls are coalesced into batch calls.

    Attributes:
        max_delay: seconds a call waits for others to share its batch, counted from the
            batch's first call; 0 turns coalescing off (each call is its own RPC).
        max_items: items per batch, 1 to 1000.
        max_bytes: encoded request bytes per batch; the server refuses messages above 32 MiB.
            A single larger item still goes, alone.
    """

    max_delay: float = 0.002
    max_items: int = 500
    max_bytes: int = 16 * 1024 * 1024

    def __post_init__(self) -> None:
        if not 0 <= self.max_delay <= 10:
            raise ValueError(f"max_delay is 0 to 10 seconds, not {self.max_delay}")
        if not 1 <= self.max_items <= MAX_BATCH_ITEMS:
            raise ValueError(f"max_items is 1 to {MAX_BATCH_ITEMS}, not {self.max_items}")
        if self.max_bytes < 1:
            raise ValueError(f"max_bytes must be positive, not {self.max_bytes}")

    @property
    def enabled(self) -> bool:
        return self.max_delay > 0


#: The clients' default: coalesce calls made within 2 ms, up to 500 items or 16 MiB.
DEFAULT_BATCHING = BatchSettings()


class _Batch:
    """The items of one key gathered so far, and the futures of their callers."""

    __slots__ = ("deadline", "futures", "items", "key", "size", "timer")

    def __init__(self, key: str, deadline: float) -> None:
        self.key = key
        self.items: list[Any] = []
        self.futures: list[Any] = []
        self.size = 0
        self.deadline = deadline
        self.timer: asyncio.TimerHandle | None = None

    def fits(self, size: int, settings: BatchSettings) -> bool:
        return not self.items or (len(self.items) < settings.max_items and self.size + size <= settings.max_bytes)

    def add(self, item: Any, future: Any, size: int) -> None:
        self.items.append(item)
        self.futures.append(future)
        self.size += size

    def full(self, settings: BatchSettings) -> bool:
        return len(self.items) >= settings.max_items or self.size >= settings.max_bytes


def _settle(futures: Sequence[Any], outcomes: Sequence[Any] | BaseException) -> None:
    """Gives each caller its outcome: one per item, or one failure for all of them."""
    if isinstance(outcomes, BaseException):
        # Each caller raises its own copy: callers in different threads must not share one
        # exception object, whose traceback grows with every raise.
        outcomes = [_copy_error(outcomes) for _ in futures]
    elif len(outcomes) != len(futures):
        outcomes = [TaskqError(f"the server answered {len(outcomes)} results for {len(futures)} items")
                    for _ in futures]
    for future, outcome in zip(futures, outcomes):
        if future.done():  # an asyncio caller that was cancelled meanwhile
            continue
        if isinstance(outcome, BaseException):
            future.set_exception(outcome)
        else:
            future.set_result(outcome)


def _copy_error(error: BaseException) -> BaseException:
    try:
        clone = copy.copy(error)
    except Exception:  # an exception type that cannot be rebuilt from its args
        return error
    clone.__cause__ = error.__cause__
    return clone


def _size_of_nothing(item: Any) -> int:
    return 0


class ThreadBatcher(Generic[Item, Result]):
    """Coalesces items submitted from any thread; `send` runs on a small pool of threads."""

    def __init__(
        self,
        send: Callable[[str, list[Item]], Sequence[Result | BaseException]],
        settings: BatchSettings,
        *,
        size: Callable[[Item], int] = _size_of_nothing,
        name: str = "taskq-batcher",
    ) -> None:
        self._send = send
        self._settings = settings
        self._size = size
        self._name = name
        self._lock = threading.Condition()
        self._pending: dict[str, _Batch] = {}
        self._ready: list[_Batch] = []
        self._in_flight: set[concurrent.futures.Future[None]] = set()
        #: Keys with a batch being sent: their next batch waits for its answer (or to be full).
        self._busy: set[str] = set()
        self._closed = False
        self._thread: threading.Thread | None = None
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None

    def submit(self, key: str, item: Item) -> concurrent.futures.Future[Result]:
        """Adds an item to its key's batch; the future ends with its outcome."""
        future: concurrent.futures.Future[Result] = concurrent.futures.Future()
        size = self._size(item)
        with self._lock:
            if self._closed:
                raise RuntimeError("the client is closed")
            if self._thread is None:
                # Started on first use: a client that never creates tasks keeps no threads.
                self._pool = concurrent.futures.ThreadPoolExecutor(MAX_IN_FLIGHT, thread_name_prefix=self._name)
                self._thread = threading.Thread(target=self._run, args=(self._pool,), name=self._name, daemon=True)
                self._thread.start()
            batch = self._pending.get(key)
            if batch is not None and not batch.fits(size, self._settings):
                self._ready.append(self._pending.pop(key))
                batch = None
            if batch is None:
                batch = self._pending[key] = _Batch(key, time.monotonic() + self._settings.max_delay)
                self._lock.notify()  # a new deadline for the timekeeper
            batch.add(item, future, size)
            if batch.full(self._settings):
                self._ready.append(self._pending.pop(key))
                self._lock.notify()
        return future

    def flush(self) -> None:
        """Sends every pending batch now and waits until all batches sent so far are answered."""
        with self._lock:
            self._ready.extend(self._pending.values())
            self._pending.clear()
            self._lock.notify()
            while self._ready:
                self._lock.wait(0.05)
            in_flight = list(self._in_flight)
        concurrent.futures.wait(in_flight)

    def close(self) -> None:
        """Sends what is pending, waits for every answer, and stops the threads."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._lock.notify()
        if self._thread is not None:
            self._thread.join()
        if self._pool is not None:
            self._pool.shutdown(wait=True)

    def _run(self, pool: concurrent.futures.ThreadPoolExecutor) -> None:
        """The timekeeper: hands each batch to the pool when it is due."""
        while True:
            with self._lock:
                while True:
                    now = time.monotonic()
                    for key, batch in list(self._pending.items()):
                        if self._closed or (batch.deadline <= now and key not in self._busy):
                            self._ready.append(self._pending.pop(key))
                    if self._ready or self._closed:
                        break
                    waiting = [b.deadline for k, b in self._pending.items() if k not in self._busy]
                    next_deadline = min(waiting, default=None)
                    self._lock.wait(None if next_deadline is None else max(0.0, next_deadline - now))
                due, self._ready = self._ready, []
                stop = self._closed
                for batch in due:
                    self._busy.add(batch.key)
                    sending = pool.submit(self._deliver, batch)
                    self._in_flight.add(sending)
                    sending.add_done_callback(self._in_flight.discard)
                self._lock.notify_all()  # flush() waits for the ready list to empty
            if stop:
                return

    def _deliver(self, batch: _Batch) -> None:
        try:
            outcomes: Sequence[Any] | BaseException = self._send(batch.key, batch.items)
        except Exception as error:  # every caller must hear of it
            outcomes = error
        finally:
            with self._lock:
                self._busy.discard(batch.key)
                self._lock.notify_all()  # the key's next batch may go now
        _settle(batch.futures, outcomes)


class AsyncBatcher(Generic[Item, Result]):
    """Coalesces items submitted on one event loop; `send` is a coroutine function."""

    def __init__(
        self,
        send: Callable[[str, list[Item]], Awaitable[Sequence[Result | BaseException]]],
        settings: BatchSettings,
        *,
        size: Callable[[Item], int] = _size_of_nothing,
    ) -> None:
        self._send = send
        self._settings = settings
        self._size = size
        self._pending: dict[str, _Batch] = {}
        self._in_flight: set[asyncio.Task[None]] = set()
        #: Keys with a batch being sent, and keys whose next batch is due but waits for it.
        self._busy: set[str] = set()
        self._overdue: set[str] = set()
        self._closed = False

    def submit(self, key: str, item: Item) -> asyncio.Future[Result]:
        """Adds an item to its key's batch; await the future for its outcome."""
        if self._closed:
            raise RuntimeError("the client is closed")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Result] = loop.create_future()
        size = self._size(item)
        batch = self._pending.get(key)
        if batch is not None and not batch.fits(size, self._settings):
            self._dispatch(batch)
            batch = None
        if batch is None:
            batch = self._pending[key] = _Batch(key, loop.time() + self._settings.max_delay)
            batch.timer = loop.call_later(self._settings.max_delay, self._due, batch)
        batch.add(item, future, size)
        if batch.full(self._settings):
            self._dispatch(batch)
        return future

    def _due(self, batch: _Batch) -> None:
        """The batch's delay is over: it goes now, or when the key's batch in flight returns."""
        if batch.key in self._busy:
            self._overdue.add(batch.key)
        else:
            self._dispatch(batch)

    async def flush(self) -> None:
        """Sends every pending batch now and waits for every answer."""
        for batch in list(self._pending.values()):
            self._dispatch(batch)
        if self._in_flight:
            await asyncio.gather(*self._in_flight, return_exceptions=True)

    async def close(self) -> None:
        self._closed = True
        await self.flush()

    def _dispatch(self, batch: _Batch) -> None:
        if self._pending.get(batch.key) is not batch:
            return  # already sent (its timer fired after it filled up)
        del self._pending[batch.key]
        if batch.timer is not None:
            batch.timer.cancel()
        self._overdue.discard(batch.key)
        self._busy.add(batch.key)
        sending = asyncio.get_running_loop().create_task(self._deliver(batch))
        self._in_flight.add(sending)
        sending.add_done_callback(self._in_flight.discard)

    async def _deliver(self, batch: _Batch) -> None:
        try:
            outcomes: Sequence[Any] | BaseException = await self._send(batch.key, batch.items)
        except asyncio.CancelledError:
            for future in batch.futures:
                future.cancel()
            raise
        except Exception as error:  # every caller must hear of it
            outcomes = error
        finally:
            self._busy.discard(batch.key)
            waiting = self._pending.get(batch.key)
            if waiting is not None and batch.key in self._overdue:
                self._dispatch(waiting)
        _settle(batch.futures, outcomes)


# BatchCreateTasks ---------------------------------------------------------------------------


def request_size(request: Any) -> int:
    """An item's share of the batch message: its encoding plus the field's tag and length."""
    return request.ByteSize() + 6


def create_outcomes(response: Any) -> list[Any]:
    """The Task or TaskqError of each item of a BatchCreateTasksResponse.

    The server names an invalid field by its path in the batch (`requests[3].task.name`); the
    caller made a single create, so the error names it as CreateTask would (`task.name`).
    """
    outcomes: list[Any] = []
    for index, result in enumerate(response.results):
        if result.HasField("task"):
            outcomes.append(result.task)
            continue
        error = from_status(result.error)
        prefix = f"requests[{index}]."
        error.field_violations = [
            violation._replace(field=violation.field.removeprefix(prefix)) for violation in error.field_violations
        ]
        error.message = error.message.replace(prefix, "")
        error.args = (error.message,)
        outcomes.append(error)
    return outcomes


__all__ = ["BatchSettings", "DEFAULT_BATCHING", "ThreadBatcher", "AsyncBatcher", "MAX_BATCH_ITEMS", "create_outcomes", "request_size"]
