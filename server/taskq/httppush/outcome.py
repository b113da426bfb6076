"""What an HTTP answer means for the task: success, or a failed attempt with the
google.rpc.Code its status maps to, and how long a Retry-After asks the retry to wait."""

from __future__ import annotations

import email.utils
import math

from taskq.core.errors import Code
from taskq.core.limits import MAX_RETRY_DELAY_US
from taskq.core.model import US_PER_SECOND

#: The mapping google.rpc.Code documents between HTTP statuses and codes.
_CODES = {
    400: Code.INVALID_ARGUMENT,
    401: Code.UNAUTHENTICATED,
    403: Code.PERMISSION_DENIED,
    404: Code.NOT_FOUND,
    409: Code.ABORTED,
    412: Code.FAILED_PRECONDITION,
    416: Code.OUT_OF_RANGE,
    429: Code.RESOURCE_EXHAUSTED,
    499: Code.CANCELLED,
    500: Code.INTERNAL,
    501: Code.UNIMPLEMENTED,
    503: Code.UNAVAILABLE,
    504: Code.DEADLINE_EXCEEDED,
}
#: Statuses whose Retry-After the retry honours (as Cloud Tasks does).
RETRY_AFTER_STATUSES = (429, 503)


def succeeded(status: int) -> bool:
    return 200 <= status < 300


def code_of(status: int) -> Code:
    if status in _CODES:
        return _CODES[status]
    if 400 <= status < 500:
        return Code.FAILED_PRECONDITION
    if 500 <= status < 600:
        return Code.INTERNAL
    return Code.UNKNOWN  # 1xx, 3xx (redirects are not followed), nonsense


def retry_after_us(value: str | None, now_s: float) -> int:
    """The delay a Retry-After header asks for (seconds, or an HTTP date), in microseconds,
    at most the longest retry delay; 0 when absent or unreadable."""
    if not value:
        return 0
    value = value.strip()
    seconds: float
    if value.isdigit():
        seconds = int(value)
    else:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return 0
        if when is None or when.tzinfo is None:
            return 0
        seconds = when.timestamp() - now_s
    if not math.isfinite(seconds) or seconds <= 0:
        return 0
    return min(int(seconds * US_PER_SECOND), MAX_RETRY_DELAY_US)
