"""When a failed task is tried again, and when taskq gives up: pure functions.

The backoff is App Engine's (taskqueue_stub `_ComputeBackoff`): retry n >= 1 waits
min_backoff * 2^e * max(n - e, 1), e = min(n - 1, max_doublings), capped at max_backoff.
"""

from __future__ import annotations

from taskq.core.model import Queue, RetryPolicy, Task


def effective_policy(queue: Queue, task: Task) -> RetryPolicy:
    """The queue's policy with the task's overrides applied."""
    if task.retry is None:
        return queue.retry
    return task.retry.over(queue.retry)


def backoff_us(policy: RetryPolicy, retry_number: int) -> int:
    """The delay before retry `retry_number` (1 for the retry after the first attempt)."""
    if retry_number < 1:
        raise ValueError(f"retry numbers start at 1, got {retry_number}")
    min_backoff = policy.min_backoff_us or 0
    max_backoff = policy.max_backoff_us if policy.max_backoff_us is not None else 0
    doublings = min(retry_number - 1, policy.max_doublings or 0)
    linear = retry_number - doublings
    # Integers, not floats: 2**64 microseconds is exact, and the cap keeps the result small.
    delay = min_backoff * (2**doublings) * max(linear, 1)
    return min(delay, max_backoff)


def exhausted(policy: RetryPolicy, attempt_count: int, first_attempt_us: int, now_us: int) -> bool:
    """Whether a task that just failed attempt `attempt_count` must not be tried again.

    With both limits set, only when both are exhausted (App Engine's rule); with one, when it
    is; with neither, never.
    """
    max_attempts = policy.max_attempts or 0
    max_duration = policy.max_retry_duration_us or 0
    attempts_out = max_attempts > 0 and attempt_count >= max_attempts
    duration_out = max_duration > 0 and first_attempt_us > 0 and now_us - first_attempt_us >= max_duration
    if max_attempts > 0 and max_duration > 0:
        return attempts_out and duration_out
    return attempts_out or duration_out
