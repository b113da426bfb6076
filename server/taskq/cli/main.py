"""The `taskq` command: `taskq serve` runs the server; `taskq queue ...` and `taskq task ...`
talk to one."""

from __future__ import annotations

import argparse
import sys

from taskq.cli import serve


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="taskq", description="taskq: a task-queue service with a gRPC API.")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve.add_parser(subparsers)
    try:
        from taskq.cli import commands
    except ImportError:  # the client commands are optional while they are being built
        commands = None
    if commands is not None:
        commands.add_parsers(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    arguments = build_parser().parse_args(argv)
    return arguments.run(arguments)


if __name__ == "__main__":
    sys.exit(main())
