"""`taskq version` (and `taskq --version`): the version of this taskq command.

Only the command's own: the taskq distribution that provides it, the taskq-client it talks
through, and the Python it runs on. A server's version is not shown, because the API has no
call that tells it.
"""

from __future__ import annotations

import argparse
import json
import platform
from importlib import metadata

#: Shown for a distribution that is not installed (the code runs from a bare checkout).
UNKNOWN = "unknown"


def versions() -> dict[str, str]:
    """The versions of the taskq and taskq-client distributions and of Python."""
    found = {}
    for distribution in ("taskq", "taskq-client"):
        try:
            found[distribution] = metadata.version(distribution)
        except metadata.PackageNotFoundError:
            found[distribution] = UNKNOWN
    found["python"] = platform.python_version()
    return found


def text() -> str:
    found = versions()
    return f"taskq {found['taskq']} (this command; taskq-client {found['taskq-client']}, Python {found['python']})"


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("version", help="show the version of this taskq command",
                                   description="Show the version of this taskq command (not the server's: the API "
                                               "does not report it).")
    parser.add_argument("--json", action="store_true", help="print one JSON document instead of text")
    parser.set_defaults(run=run)


def run(arguments: argparse.Namespace) -> int:
    if arguments.json:
        print(json.dumps(versions(), indent=2))
    else:
        print(text())
    return 0
