"""App Engine's backoff and give-up rules, as pure functions."""

import pytest

from taskq.core.model import RetryPolicy
from taskq.core.retry import backoff_us, exhausted

S = 1_000_000


def policy(**fields):
    base = dict(max_attempts=0, max_retry_duration_us=0, min_backoff_us=10 * S, max_backoff_us=300 * S, max_doublings=3)
    base.update(fields)
    return RetryPolicy(**base)


def test_backoff_doubles_max_doublings_times_then_grows_linearly_up_to_max():
    # The example of App Engine's queue.yaml reference: 10, 20, 40, 80, 160, 240, 300, 300.
    delays = [backoff_us(policy(), n) // S for n in range(1, 9)]
    assert delays == [10, 20, 40, 80, 160, 240, 300, 300]


def test_backoff_without_doublings_is_linear():
    assert [backoff_us(policy(max_doublings=0), n) // S for n in range(1, 5)] == [10, 20, 30, 40]


def test_backoff_with_default_limits_starts_at_a_tenth_of_a_second():
    defaults = RetryPolicy(0, 0, 100_000, 3600 * S, 16)
    assert [backoff_us(defaults, n) for n in (1, 2, 3)] == [100_000, 200_000, 400_000]
    assert backoff_us(defaults, 40) == 3600 * S


def test_backoff_rejects_retry_number_zero():
    with pytest.raises(ValueError):
        backoff_us(policy(), 0)


def test_with_neither_limit_retries_never_stop():
    assert not exhausted(policy(), attempt_count=10_000, first_attempt_us=1, now_us=10**15)


def test_max_attempts_alone_decides_when_it_is_the_only_limit():
    assert not exhausted(policy(max_attempts=3), 2, 1, 10**15)
    assert exhausted(policy(max_attempts=3), 3, 1, 10**15)


def test_max_retry_duration_alone_decides_when_it_is_the_only_limit():
    limited = policy(max_retry_duration_us=60 * S)
    assert not exhausted(limited, 50, first_attempt_us=0 + 1, now_us=59 * S)
    assert exhausted(limited, 1, first_attempt_us=1, now_us=61 * S)


def test_with_both_limits_retrying_stops_only_when_both_are_exhausted():
    both = policy(max_attempts=3, max_retry_duration_us=60 * S)
    assert not exhausted(both, 5, first_attempt_us=1, now_us=30 * S)  # attempts out, time left
    assert not exhausted(both, 1, first_attempt_us=1, now_us=90 * S)  # time out, attempts left
    assert exhausted(both, 3, first_attempt_us=1, now_us=90 * S)
