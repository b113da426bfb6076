"""The token bucket of a push queue, driven by the clock it is given (no threads, no timers).

The bucket holds up to `burst` tokens and refills continuously at `rate` per second; every
dispatch takes one. An idle queue therefore dispatches `burst` tasks at once, then `rate` per
second (App Engine's and Cloud Tasks' rule). A rate of None means unlimited.

Its state lives in the store (core.model.TokenState), read and written in the transaction
that leases the tasks it pays for: a bucket made from the stored state continues where the
last dispatch left it, whichever dispatcher (or server) made that one, so neither a restart
nor a reconnecting worker gets a fresh burst. A queue that never dispatched starts full.
"""

from __future__ import annotations

import math

from taskq.core.model import US_PER_SECOND, TokenState

#: An unlimited bucket reports this many tokens.
UNLIMITED = 2**31


class TokenBucket:
    def __init__(self, rate: float | None, burst: int, now_us: int, state: TokenState | None = None) -> None:
        self.rate = rate
        self.burst = burst
        if state is None:
            self._tokens = float(burst)
            self._updated_us = now_us
        else:
            # Limits may have changed since it was stored: never more than the bucket holds now.
            self._tokens = min(state.tokens, float(burst))
            self._updated_us = state.updated_us

    def state(self) -> TokenState:
        """What to store so that the next dispatch continues from here."""
        return TokenState(self._tokens, self._updated_us)

    def configure(self, rate: float | None, burst: int, now_us: int) -> None:
        """Applies new limits to a live bucket, keeping the tokens it has (up to the new size)."""
        if rate == self.rate and burst == self.burst:
            return
        self._refill(now_us)
        self.rate = rate
        self.burst = burst
        self._tokens = min(self._tokens, float(burst))

    def _refill(self, now_us: int) -> None:
        if self.rate is not None and now_us > self._updated_us:
            self._tokens = min(float(self.burst), self._tokens + (now_us - self._updated_us) * self.rate / US_PER_SECOND)
        self._updated_us = max(self._updated_us, now_us)

    def available(self, now_us: int) -> int:
        """Whole tokens available now."""
        if self.rate is None:
            return UNLIMITED
        self._refill(now_us)
        return int(self._tokens + 1e-9)

    def take(self, count: int, now_us: int) -> None:
        if self.rate is None:
            return
        self._refill(now_us)
        self._tokens -= count

    def next_token_us(self, now_us: int) -> int:
        """When the next whole token will be there (now if one is)."""
        if self.rate is None:
            return now_us
        self._refill(now_us)
        missing = 1.0 - self._tokens
        if missing <= 1e-9:
            return now_us
        return now_us + math.ceil(missing * US_PER_SECOND / self.rate)
