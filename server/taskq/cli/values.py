"""Option values as people type them: durations (`30s`, `1h30m`), rates (`5/s`), times,
`key=value` pairs. Each function is an argparse `type=`: a bad value raises
ArgumentTypeError, which the parser reports in one line with exit status 2.
"""

from __future__ import annotations

import argparse
import datetime
import math
import re

from taskq.client.requests import HTTP_METHODS, TASK_STATES

#: Seconds per duration unit, App Engine style (`retry_parameters`, `task_age_limit`).
DURATION_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
#: Seconds per rate unit of `N/s`, `N/m`, `N/h`, `N/d` (App Engine queue.yaml `rate`).
RATE_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}

_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ms|s|m|h|d)")
_RATE = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(?:/(s|m|h|d))?")
#: Words meaning "no rate limit", for `--rate` on update.
UNLIMITED = ("unlimited", "none")


def duration(text: str) -> float:
    """Seconds from `90`, `0.1s`, `10m`, `2h`, `31d`, `1h30m` or `250ms`."""
    cleaned = text.strip().lower()
    try:
        value = float(cleaned)
    except ValueError:
        value = _duration_with_units(cleaned, text)
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"invalid duration {text!r}: must be a non-negative number of seconds")
    return value


def positive_duration(text: str) -> float:
    """Seconds, as `duration`, but more than zero."""
    value = duration(text)
    if value == 0:
        raise argparse.ArgumentTypeError(f"invalid duration {text!r}: must be more than 0")
    return value


def _duration_with_units(cleaned: str, original: str) -> float:
    position = 0
    total = 0.0
    while position < len(cleaned):
        match = _DURATION_PART.match(cleaned, position)
        if match is None:
            raise argparse.ArgumentTypeError(
                f"invalid duration {original!r}: use seconds or a number with a unit ms, s, m, h or d (e.g. 30s, 1h30m)"
            )
        total += float(match.group(1)) * DURATION_UNITS[match.group(2)]
        position = match.end()
    if not cleaned:
        raise argparse.ArgumentTypeError("invalid duration '': it is empty")
    return total


def rate(text: str) -> float | None:
    """Tasks per second from `5/s`, `100/m`, `10/h`, `1/d` or a plain `2.5` (per second);
    None for `unlimited`."""
    cleaned = text.strip().lower()
    if cleaned in UNLIMITED:
        return None
    match = _RATE.fullmatch(cleaned)
    if match is None:
        raise argparse.ArgumentTypeError(f"invalid rate {text!r}: use N/s, N/m, N/h, N/d, a number per second, "
                                         "or 'unlimited'")
    per_second = float(match.group(1)) / RATE_UNITS[match.group(2) or "s"]
    if per_second <= 0:
        raise argparse.ArgumentTypeError(f"invalid rate {text!r}: must be more than 0 (or 'unlimited')")
    return per_second


def count(text: str) -> int:
    """A non-negative integer."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid number {text!r}: must be a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"invalid number {text!r}: must not be negative")
    return value


def positive_count(text: str) -> int:
    value = count(text)
    if value == 0:
        raise argparse.ArgumentTypeError(f"invalid number {text!r}: must be at least 1")
    return value


def time(text: str) -> datetime.datetime:
    """An aware datetime from ISO 8601 (`2030-01-31T09:00:00Z`); without a zone, local time."""
    try:
        value = datetime.datetime.fromisoformat(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid time {text!r}: use ISO 8601, e.g. 2030-01-31T09:00:00Z") from None
    # A person typing a time without a zone means their own clock's.
    return value if value.tzinfo is not None else value.astimezone()


def attribute(text: str) -> tuple[str, str]:
    """(key, value) from `key=value`; the value may be empty or contain `=`."""
    key, separator, value = text.partition("=")
    if not separator or not key:
        raise argparse.ArgumentTypeError(f"invalid attribute {text!r}: use KEY=VALUE")
    return key, value


def header(text: str) -> tuple[str, str]:
    """(name, value) of an HTTP header from `NAME=VALUE`; the value may be empty or contain `=`."""
    name, separator, value = text.partition("=")
    name = name.strip()
    if not separator or not name or any(character.isspace() or character == ":" for character in name):
        raise argparse.ArgumentTypeError(f"invalid header {text!r}: use NAME=VALUE, e.g. Content-Type=application/json")
    return name, value


def http_method(text: str) -> str:
    """An HTTP method's upper-case name from `post`, `GET`, ... (case-insensitive)."""
    cleaned = text.strip().upper()
    if cleaned not in HTTP_METHODS:
        raise argparse.ArgumentTypeError(f"invalid HTTP method {text!r}: use {', '.join(HTTP_METHODS)}")
    return cleaned


def states(text: str) -> list[str]:
    """Task states from `ready` or `ready,leased` (case-insensitive, TASK_STATE_ prefix optional)."""
    names = [name.strip().lower().removeprefix("task_state_") for name in text.split(",")]
    unknown = [name for name in names if name not in TASK_STATES]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"invalid state {text!r}: use {', '.join(TASK_STATES)} (several separated by commas)"
        )
    return names


def queue_type(text: str) -> str:
    cleaned = text.strip().lower()
    if cleaned not in ("push", "pull"):
        raise argparse.ArgumentTypeError(f"invalid queue type {text!r}: use push or pull")
    return cleaned
