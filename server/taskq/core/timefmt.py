"""Microsecond timestamps as text, for messages and logs (RFC 3339, UTC)."""

from __future__ import annotations

import datetime

from taskq.core.model import US_PER_SECOND


def format_us(time_us: int) -> str:
    moment = datetime.datetime.fromtimestamp(time_us / US_PER_SECOND, tz=datetime.UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
