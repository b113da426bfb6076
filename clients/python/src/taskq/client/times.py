"""Durations and times between Python and protobuf.

Durations are given as seconds (int or float) or `timedelta`; times as timezone-aware
`datetime`s or epoch seconds. Naive datetimes are refused: whether one means UTC or local
time is a guess this client will not make for a task's schedule.
"""

from __future__ import annotations

import datetime
import math

from google.protobuf import duration_pb2, timestamp_pb2

Seconds = float | int | datetime.timedelta
When = datetime.datetime | float | int


def to_duration(value: Seconds) -> duration_pb2.Duration:
    """A Duration of `value` seconds (or a timedelta), to the nanosecond."""
    if isinstance(value, datetime.timedelta):
        value = value.total_seconds()
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"a duration is seconds or a timedelta, not {type(value).__name__}")
    if not math.isfinite(value):
        raise ValueError(f"a duration must be finite, not {value}")
    duration = duration_pb2.Duration()
    duration.FromNanoseconds(round(value * 1_000_000_000))
    return duration


def to_timestamp(value: When) -> timestamp_pb2.Timestamp:
    """A Timestamp of an aware datetime or of epoch seconds."""
    if isinstance(value, datetime.datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(
                "naive datetime: give a timezone, e.g. datetime.now(timezone.utc), or epoch seconds"
            )
        value = value.timestamp()
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"a time is an aware datetime or epoch seconds, not {type(value).__name__}")
    if not math.isfinite(value):
        raise ValueError(f"a time must be finite, not {value}")
    timestamp = timestamp_pb2.Timestamp()
    timestamp.FromNanoseconds(round(value * 1_000_000_000))
    return timestamp


def seconds(duration: duration_pb2.Duration) -> float:
    """A Duration in seconds."""
    return duration.ToNanoseconds() / 1_000_000_000


def to_datetime(timestamp: timestamp_pb2.Timestamp) -> datetime.datetime:
    """A Timestamp as an aware UTC datetime."""
    return timestamp.ToDatetime(tzinfo=datetime.UTC)


__all__ = ["Seconds", "When", "to_duration", "to_timestamp", "seconds", "to_datetime"]
