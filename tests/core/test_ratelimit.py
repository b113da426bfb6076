"""The token bucket, on a clock the test moves."""

from taskq.core.ratelimit import UNLIMITED, TokenBucket

S = 1_000_000


def test_an_idle_bucket_allows_a_burst_then_the_rate():
    bucket = TokenBucket(rate=10, burst=5, now_us=0)
    assert bucket.available(0) == 5
    bucket.take(5, 0)
    assert bucket.available(0) == 0
    assert bucket.available(S // 10) == 1
    assert bucket.available(S) == 5  # never more than the burst


def test_next_token_time_is_exact():
    bucket = TokenBucket(rate=4, burst=1, now_us=0)
    bucket.take(1, 0)
    assert bucket.next_token_us(0) == S // 4
    assert bucket.next_token_us(S // 8) == S // 4


def test_over_a_long_run_dispatches_equal_the_rate_plus_the_burst():
    bucket = TokenBucket(rate=200, burst=40, now_us=0)
    taken = 0
    for step in range(0, 20 * S + 1, S // 1000):
        available = bucket.available(step)
        bucket.take(available, step)
        taken += available
    assert taken == 40 + 200 * 20


def test_an_unlimited_bucket_never_runs_out():
    bucket = TokenBucket(rate=None, burst=5, now_us=0)
    bucket.take(10_000, 0)
    assert bucket.available(0) == UNLIMITED


def test_reconfiguring_keeps_tokens_up_to_the_new_burst():
    bucket = TokenBucket(rate=1, burst=100, now_us=0)
    bucket.configure(rate=1, burst=10, now_us=0)
    assert bucket.available(0) == 10
    bucket.take(10, 0)
    bucket.configure(rate=1000, burst=10, now_us=0)
    assert bucket.available(S // 100) == 10
