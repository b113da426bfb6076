"""The tree of the `taskq` command's parsers, as data: each command's path (`taskq queue
create`), the words that may follow it (subcommands, or a positional's fixed choices) and its
options. Shell completion scripts are written from it, and the options the top level shares
with commands are found through it.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Callable, Iterator
from typing import Any

from taskq.cli import values
from taskq.client.requests import HTTP_METHODS, TASK_STATES

#: The values offered for options parsed by these functions (argparse knows no choices for them).
TYPE_CHOICES: dict[Callable[[str], Any], tuple[str, ...]] = {
    values.queue_type: ("push", "pull"),
    values.http_method: tuple(HTTP_METHODS),
    values.states: tuple(TASK_STATES),
}


@dataclasses.dataclass(frozen=True)
class Option:
    """One option of a command, by its long names."""

    names: tuple[str, ...]
    #: Whether the option takes a value (`--lease 30s`) or is a flag (`--json`).
    takes_value: bool
    #: The values worth offering; empty for any value (completion then offers file names).
    choices: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class Command:
    """One parser of the tree: `taskq`, `taskq queue`, `taskq queue create`, ..."""

    path: str
    parser: argparse.ArgumentParser
    #: The words that may follow: subcommand names and the fixed choices of positionals.
    words: tuple[str, ...]
    options: tuple[Option, ...]


def walk(parser: argparse.ArgumentParser, path: str = "taskq") -> Iterator[Command]:
    """Every command of the tree under `parser` (itself first), parents before their children."""
    words: list[str] = []
    children: list[tuple[str, argparse.ArgumentParser]] = []
    options = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            children += action.choices.items()
            words += action.choices
        elif not action.option_strings:
            words += [str(choice) for choice in action.choices or ()]
        elif names := tuple(name for name in action.option_strings if name.startswith("--")):
            options.append(Option(names, action.nargs != 0, _choices(action)))
    yield Command(path, parser, tuple(words), tuple(options))
    for name, child in children:
        yield from walk(child, f"{path} {name}")


def _choices(action: argparse.Action) -> tuple[str, ...]:
    if action.choices is not None:
        return tuple(str(choice) for choice in action.choices)
    return TYPE_CHOICES.get(action.type, ()) if callable(action.type) else ()
