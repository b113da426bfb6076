"""The ListTasks filter: a small, strict subset of AIP-160.

    filter := term ("AND" term)*
    term   := "state" "=" state | "state" "=" "(" state ("OR" state)* ")" | "tag" "=" string
    state  := SCHEDULED | READY | LEASED | FAILED, optionally prefixed TASK_STATE_
    string := a double-quoted string; \\" and \\\\ stand for " and \\

Keywords and state names are case-insensitive; anything else is refused with a message that
says where.
"""

from __future__ import annotations

import dataclasses
import re

from taskq.core.errors import InvalidArgument
from taskq.core.limits import MAX_FILTER_CHARS
from taskq.core.model import TaskState

_TOKEN = re.compile(r'\s*(?:(?P<string>"(?:[^"\\]|\\.)*")|(?P<word>[A-Za-z_]+)|(?P<symbol>[=()]))')


@dataclasses.dataclass(frozen=True, slots=True)
class TaskFilter:
    #: Allowed states; None means any.
    states: frozenset[TaskState] | None = None
    #: Required tag; None means any.
    tag: str | None = None

    def matches(self, state: TaskState, tag: str) -> bool:
        return (self.states is None or state in self.states) and (self.tag is None or self.tag == tag)


def _error(description: str) -> InvalidArgument:
    return InvalidArgument.field("filter", description, "INVALID_FILTER")


def _tokens(text: str) -> list[tuple[str, str, int]]:
    tokens = []
    position = 0
    while position < len(text):
        if text[position:].strip() == "":
            break
        match = _TOKEN.match(text, position)
        if match is None:
            raise _error(f"unexpected character at position {position + 1}: {text[position:position + 10]!r}")
        kind = match.lastgroup
        assert kind is not None  # every alternative of _TOKEN is a named group
        tokens.append((kind, match.group(kind), match.start(kind) + 1))
        position = match.end()
    return tokens


def _state(word: str, at: int) -> TaskState:
    name = word.upper().removeprefix("TASK_STATE_")
    try:
        return TaskState[name]
    except KeyError:
        raise _error(
            f"unknown state {word!r} at position {at}; use SCHEDULED, READY, LEASED or FAILED"
        ) from None


def parse(text: str) -> TaskFilter:
    """Parses a filter; the empty string matches every task."""
    if len(text) > MAX_FILTER_CHARS:
        raise _error(f"is {len(text)} characters long; at most {MAX_FILTER_CHARS} are allowed")
    tokens = _tokens(text)
    if not tokens:
        return TaskFilter()
    states: frozenset[TaskState] | None = None
    tag: str | None = None
    index = 0

    def take(expected_kind: str | None = None, expected: str | None = None) -> tuple[str, str, int]:
        nonlocal index
        if index >= len(tokens):
            raise _error(f"ends early; expected {expected or expected_kind}")
        kind, value, at = tokens[index]
        if expected_kind and kind != expected_kind or expected and value.upper() != expected:
            raise _error(f"expected {expected or expected_kind} at position {at}, found {value!r}")
        index += 1
        return kind, value, at

    while True:
        _, field, at = take("word")
        take("symbol", "=")
        if field.lower() == "state":
            if states is not None:
                raise _error(f"state is given twice (position {at})")
            if index < len(tokens) and tokens[index][1] == "(":
                take("symbol", "(")
                chosen = {_state(take("word")[1], tokens[index - 1][2])}
                while index < len(tokens) and tokens[index][1].upper() == "OR":
                    take("word", "OR")
                    chosen.add(_state(take("word")[1], tokens[index - 1][2]))
                take("symbol", ")")
            else:
                chosen = {_state(take("word")[1], tokens[index - 1][2])}
            states = frozenset(chosen)
        elif field.lower() == "tag":
            if tag is not None:
                raise _error(f"tag is given twice (position {at})")
            _, quoted, _ = take("string")
            tag = re.sub(r"\\(.)", r"\1", quoted[1:-1])
        else:
            raise _error(f"unknown field {field!r} at position {at}; filter by state or tag")
        if index == len(tokens):
            return TaskFilter(states, tag)
        take("word", "AND")
