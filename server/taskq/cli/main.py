"""The `taskq` command: `taskq serve` runs the server; `taskq queue ...` and `taskq task ...`
talk to one; `taskq health` probes one; `taskq migrate` prepares a PostgreSQL database; `taskq backup` and
`taskq restore` copy a RocksDB database and bring it back."""

from __future__ import annotations

import argparse
import sys

from taskq.cli import backup_commands, health_command, migrate_command, queue_commands, serve, task_commands


class CommandParser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one line on stderr (exit status 2)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    # Subparsers are made with the class of their parent, so every command gets one-line errors.
    parser = CommandParser(prog="taskq", description="taskq: a task-queue service with a gRPC API.")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve.add_parser(subparsers)
    queue_commands.add_parser(subparsers)
    task_commands.add_parser(subparsers)
    health_command.add_parser(subparsers)
    migrate_command.add_parser(subparsers)
    backup_commands.add_parsers(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    arguments = build_parser().parse_args(argv)
    return arguments.run(arguments)


if __name__ == "__main__":
    sys.exit(main())
