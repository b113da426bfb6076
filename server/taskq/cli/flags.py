"""Which option set which request field, so that the server's complaint about a field names
the option and speaks in its units: the server says `lease_duration: must be between 0s and
604800s`, the command says `--lease: must be at most 7d, got 8d`.

Each command lists its `Flag`s; `naming_flags` wraps its handler so that an INVALID_ARGUMENT
about one of those fields is raised again with that message (code, reason and details
unchanged, so `--json` still shows what the server said in `details`).
"""

from __future__ import annotations

import argparse
import dataclasses
import re
from collections.abc import Callable, Sequence
from typing import Any

from taskq.cli import output
from taskq.client import Client, InvalidArgument

#: The range the server states for numbers and durations ("must be between 15s and 86400s").
_RANGE = re.compile(r"must be between (-?[\d.e+]+)(s?) and (-?[\d.e+]+)(s?)(?:, got .*)?")


@dataclasses.dataclass(frozen=True)
class Flag:
    """The option that sets a request field."""

    #: The field's path below the request message's own field (`rate_limits.max_burst_size`
    #: matches the server's `queue.rate_limits.max_burst_size`).
    field: str
    #: The option, as typed: `--lease`.
    name: str
    #: The attribute of the parsed arguments holding its value.
    dest: str
    #: Shows a value as the option takes it (`8d`, `5/s`); None: the message shows no value.
    show: Callable[[Any], str] | None = None


def duration(field: str, name: str, dest: str) -> Flag:
    """A Flag whose value is a duration in seconds (shown as `30s`, `2h`, `7d`)."""
    return Flag(field, name, dest, output.duration_text)


def number(field: str, name: str, dest: str) -> Flag:
    return Flag(field, name, dest, str)


Handler = Callable[[Client, argparse.Namespace], None]


def naming_flags(handler: Handler, flags: Sequence[Flag]) -> Handler:
    """`handler`, with its INVALID_ARGUMENT errors about `flags`' fields naming the options."""
    if not flags:
        return handler

    def run(client: Client, arguments: argparse.Namespace) -> None:
        try:
            handler(client, arguments)
        except InvalidArgument as error:
            renamed = rename(error, flags, arguments)
            if renamed is error:
                raise
            raise renamed from None

    return run


def rename(error: InvalidArgument, flags: Sequence[Flag], arguments: argparse.Namespace) -> InvalidArgument:
    """The error with its message about the option that set the field; the error itself when
    no given option set it."""
    for violation in error.field_violations:
        for flag in flags:
            value = getattr(arguments, flag.dest, None)
            if value is None or not _same_field(violation.field, flag.field):
                continue
            description = _other_fields_named(violation.description, flags)
            if flag.show is not None:
                description = _in_units(description, value, flag.show)
            message = f"{flag.name}: {description}"
            return type(error)(message, code=error.code, reason=error.reason, metadata=error.metadata,
                               field_violations=error.field_violations, retry_delay=error.retry_delay,
                               status=error.status)
    return error


def _same_field(path: str, field: str) -> bool:
    return path == field or path.endswith("." + field)


def _other_fields_named(description: str, flags: Sequence[Flag]) -> str:
    """`must not exceed max_backoff` -> `must not exceed --max-backoff` (field names with an
    underscore only: `name` or `tag` are English words too)."""
    for flag in flags:
        last = flag.field.rpartition(".")[2]
        if "_" in last:
            description = re.sub(rf"\b{re.escape(last)}\b", flag.name, description)
    return description


def _in_units(description: str, value: Any, show: Callable[[Any], str]) -> str:
    """The description with the value as given and, for a range, the bound it broke."""
    match = _RANGE.fullmatch(description)
    if match is None:
        if ", got " in description:
            return description
        # After the first clause: "must be ... at most 1e+06, got 2e+06/s; leave it unset ...".
        first, separator, rest = description.partition(";")
        return f"{first}, got {show(value)}{separator}{rest}"
    low, high = float(match.group(1)), float(match.group(3))

    def bound(number: float) -> str:
        if match.group(2):  # a duration in seconds
            return show(number)
        return str(int(number)) if number.is_integer() else f"{number:g}"

    if value > high:
        return f"must be at most {bound(high)}, got {show(value)}"
    if value < low:
        return f"must be at least {bound(low)}, got {show(value)}"
    return f"must be between {bound(low)} and {bound(high)}, got {show(value)}"
