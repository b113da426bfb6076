"""How a worker's handler says that a task failed, and what the server is told.

A handler that returns has done its task. One that raises has failed it:

- any exception: the task is retried after the queue's backoff (push) or at once (pull),
  and its text is recorded as the task's `last_attempt.error`;
- `Retry(delay)`: retried after `delay` seconds instead of the backoff;
- `PermanentError`: never retried; the task moves to the dead-letter queue, or to
  TASK_STATE_FAILED (push queues; see `PullWorker` for pull queues).

Every failure still counts as an attempt against the queue's `max_attempts`.
"""

from __future__ import annotations

from google.rpc import code_pb2, status_pb2

from taskq.client.times import Seconds

#: The longest error message the server keeps (bytes of UTF-8); longer ones are cut here.
MAX_ERROR_MESSAGE_BYTES = 4096


class PermanentError(Exception):
    """Raised by a handler for a task that can never succeed (a malformed payload, a deleted
    record): the task is not retried."""


class Retry(Exception):
    """Raised by a handler to have the task tried again after `delay` seconds (or a
    timedelta), instead of after the queue's backoff."""

    def __init__(self, delay: Seconds, message: str = "") -> None:
        super().__init__(message or f"retry in {delay} s")
        self.delay = delay


def describe(error: BaseException) -> str:
    """`Type: text`, cut to what the server keeps, for the task's recorded error."""
    text = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
    return text.encode()[:MAX_ERROR_MESSAGE_BYTES].decode(errors="ignore")


def failure_status(error: BaseException) -> status_pb2.Status:
    """The google.rpc.Status a nack carries for a handler's exception. UNKNOWN: the server
    cannot know what the failure means, only that the handler raised."""
    return status_pb2.Status(code=code_pb2.UNKNOWN, message=describe(error))


__all__ = ["PermanentError", "Retry", "describe", "failure_status", "MAX_ERROR_MESSAGE_BYTES"]
