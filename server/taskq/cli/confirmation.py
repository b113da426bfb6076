"""Asking before a command that destroys what cannot be brought back (`queue purge`, `queue
delete`): a question on a terminal, answered y or yes; without a terminal to ask on, a
refusal that names `--yes`, so that a script never deletes by accident and never hangs on a
question nobody sees.
"""

from __future__ import annotations

import argparse
import sys

from taskq.cli.errors import UsageError
from taskq.client import Cancelled

#: The reason reported when the answer was no (code CANCELLED, exit status 1).
NOT_CONFIRMED = "NOT_CONFIRMED"


class NotConfirmed(Cancelled):
    """The person at the terminal answered no (or nothing): nothing was done. A Cancelled
    error, so that it is reported as a failed call is: `CANCELLED NOT_CONFIRMED`, status 1."""

    def __init__(self, message: str) -> None:
        super().__init__(message, reason=NOT_CONFIRMED)


def add_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--yes", "-y", action="store_true",
                        help="do it without asking (needed when stdin is not a terminal)")


def confirm(arguments: argparse.Namespace, question: str, command: str) -> None:
    """Returns when the command may go ahead: --yes was given, or the person at the terminal
    answered yes to `question`. Raises UsageError without a terminal, NotConfirmed on no."""
    if arguments.yes:
        return
    if not sys.stdin.isatty():
        raise UsageError(f"{command}: give --yes to confirm (stdin is not a terminal to ask on)")
    # The question goes to stderr, so that stdout holds only the command's result.
    print(f"{question} [y/N] ", end="", file=sys.stderr, flush=True)
    answer = sys.stdin.readline()
    if answer.strip().lower() not in ("y", "yes"):
        raise NotConfirmed(f"{command}: not confirmed; nothing was done")
