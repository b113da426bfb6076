"""Retrying unary calls that fail with UNAVAILABLE, across a restart of the server.

UNAVAILABLE means the server could not be reached, is starting, or is stopping: a restart
shows it for a few seconds. `Client` and `AsyncClient` therefore make every unary call again,
after a wait, until it gets another answer or the retry budget is spent:

- waits are exponential with full jitter: a random time between 0 and a ceiling that starts
  at `initial_backoff` and doubles up to `max_backoff`, so that many clients coming back
  after a restart spread out; a `RetryInfo` the server sends (it asks for 1 s while starting)
  is honoured: the wait is at least that long;
- a call stops retrying `budget` seconds (default 15) after its first UNAVAILABLE (or
  CANCELLED the caller did not cause, see below), and never waits past its own deadline (the
  client's `timeout`), which covers every attempt; the last UNAVAILABLE is raised then;
- every attempt resends the same request message, so a create carries the same `request_id`
  on every attempt: the request id is chosen once, when the request is built, before the
  first attempt.

A CANCELLED the caller did not cause is retried exactly like UNAVAILABLE: a server that stops
gracefully cancels the calls it has received but not yet handed to its application, so a
restart shows it too. The caller's own cancellations are not retried: a blocking call of
`Client` cannot be cancelled locally (only `Client.close()`, or closing the channel given to
it, cancels it, and neither is retried), and cancelling an `AsyncClient` call raises
asyncio.CancelledError, not a status.

Only these are retried. DEADLINE_EXCEEDED is not: the deadline covers all attempts, so
once an attempt hits it the call has no time left. Streams (StreamTasks) are not retried here:
the workers subscribe again on their own.

Why this and not gRPC's retry policy (a service config), which the client used before: gRPC
caps a call at 5 attempts, so with jitter the budget was often under a second or two, shorter
than a restart; its retry throttling switches retries off after a burst of failures, which is
exactly what a restart produces; it never resends a call once response headers have arrived,
even when the connection breaks before the answer; and it ignores RetryInfo. The channel keeps
only gRPC's transparent retries, of requests that never reached the server, which are always
safe.

An attempt that failed with UNAVAILABLE may still have reached the server, which may have
done the work and lost only the answer. Each call is safe to resend:

- creates (CreateTask, each item of BatchCreateTasks) carry a request id, so the server
  answers a repeat with the task the first attempt created; a create sent without one (the
  caller passed `request_id=""`) is not retried, since a repeat could add a second task;
- reads (Get*, List*, GetQueueStats) change nothing;
- DeleteTask / BatchDeleteTasks with a lease token (acknowledgements): the server answers a
  repeated acknowledgement with the same token as it answered the first (a server without
  that fix answers LeaseLost, though the task was acknowledged); a delete without a token
  that was done the first time answers TaskNotFound;
- ModifyLease sets the lease to end a duration from now: a repeat sets it again (a release
  repeated answers LeaseLost, the task having been released once);
- LeaseTasks: tasks leased by an attempt whose answer was lost are held by nobody until their
  lease expires; then they are ready again (the attempt counts);
- RunTask, UpdateQueue, PauseQueue and ResumeQueue set a state: repeating sets it again;
  CreateQueue and DeleteQueue repeated answer QueueAlreadyExists / QueueNotFound;
- PurgeQueue is NOT retried: a second purge would also delete the tasks created since the
  first one.
"""

from __future__ import annotations

import dataclasses
import random
import time
from collections.abc import Callable

from google.protobuf.message import Message

from taskq.client.errors import Cancelled, TaskqError, Unavailable
from taskq.v1 import admin_service_pb2, queue_service_pb2, task_service_pb2

#: Each wait's ceiling is this many times the previous one (until `max_backoff`).
BACKOFF_MULTIPLIER = 2.0


@dataclasses.dataclass(frozen=True)
class CallRetry:
    """How a client retries unary calls that fail with UNAVAILABLE (see the module comment).

    Attributes:
        budget: seconds a call keeps retrying after its first UNAVAILABLE; the call's own
            deadline (the client's `timeout`) stops it sooner. 0 turns retries off.
        initial_backoff: seconds; the ceiling of the first wait (each wait is random between 0
            and its ceiling).
        max_backoff: seconds; the largest ceiling a wait grows to.
    """

    budget: float = 15.0
    initial_backoff: float = 0.1
    max_backoff: float = 2.0

    def __post_init__(self) -> None:
        if self.budget < 0:
            raise ValueError(f"budget must be 0 or more seconds, not {self.budget}")
        if not 0 < self.initial_backoff <= self.max_backoff:
            raise ValueError("initial_backoff must be positive and at most max_backoff, not "
                             f"{self.initial_backoff} and {self.max_backoff}")

    @property
    def enabled(self) -> bool:
        return self.budget > 0


#: The clients' default: retry for up to 15 s, waiting up to 0.1 s, 0.2 s, ... 2 s between attempts.
DEFAULT_CALL_RETRY = CallRetry()


def may_resend(request: Message) -> bool:
    """Whether `request` may be sent again after an attempt that may have reached the server."""
    if isinstance(request, task_service_pb2.CreateTaskRequest):
        return bool(request.request_id)
    if isinstance(request, task_service_pb2.BatchCreateTasksRequest):
        return all(item.request_id for item in request.requests)
    # A purge or a backup that reached the server must not run twice (a second backup would
    # find its destination written and fail with ALREADY_EXISTS).
    return not isinstance(request, (queue_service_pb2.PurgeQueueRequest, admin_service_pb2.BackupRequest))


def is_retried(error: TaskqError, *, cancelled_by_caller: bool = False) -> bool:
    """Whether a failed attempt is made again: UNAVAILABLE, or a CANCELLED the caller did not
    cause (a server stopping gracefully cancels the calls it has not yet handled)."""
    if isinstance(error, Unavailable):
        return True
    return isinstance(error, Cancelled) and not cancelled_by_caller


class Backoff:
    """The waits between the attempts of one call.

    `deadline` is the call's deadline on `clock` (None for none).
    """

    def __init__(self, policy: CallRetry, deadline: float | None, *,
                 clock: Callable[[], float] = time.monotonic, rand: Callable[[], float] = random.random) -> None:
        self._policy = policy
        self._deadline = deadline
        self._clock = clock
        self._rand = rand
        self._ceiling = policy.initial_backoff
        self._give_up_at: float | None = None

    def next_wait(self, error: TaskqError, *, cancelled_by_caller: bool = False) -> float | None:
        """Seconds to wait before the next attempt, after `error`; None when the error is not
        retried or no attempt fits in the budget any more: then raise it.

        `cancelled_by_caller` says that the caller ended the call (its client was closed): a
        CANCELLED is then not retried."""
        if not is_retried(error, cancelled_by_caller=cancelled_by_caller) or not self._policy.enabled:
            return None
        now = self._clock()
        if self._give_up_at is None:
            self._give_up_at = now + self._policy.budget
            if self._deadline is not None:
                self._give_up_at = min(self._give_up_at, self._deadline)
        wait = self._rand() * self._ceiling
        self._ceiling = min(self._ceiling * BACKOFF_MULTIPLIER, self._policy.max_backoff)
        if error.retry_delay is not None:
            wait = max(wait, error.retry_delay)
        # An attempt that could only start at the deadline would fail with DEADLINE_EXCEEDED
        # and hide the UNAVAILABLE (or CANCELLED) that says what is wrong.
        if now + wait >= self._give_up_at:
            return None
        return wait


__all__ = ["BACKOFF_MULTIPLIER", "DEFAULT_CALL_RETRY", "Backoff", "CallRetry", "is_retried", "may_resend"]
