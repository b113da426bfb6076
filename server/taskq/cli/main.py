"""The `taskq` command: `taskq serve` runs the server; `taskq queue ...` and `taskq task ...`
talk to one; `taskq health` probes one; `taskq migrate` prepares a PostgreSQL database; `taskq backup` and
`taskq restore` copy a RocksDB database and bring it back; `taskq token create` makes a bearer
token for a server's tokens file; `taskq version` says which taskq this is; `taskq completion`
prints a shell completion script.

The options of the client commands (`--server`, `--json`, `--timeout`, ...) go anywhere on the
line: `taskq --json queue list` is `taskq queue list --json`. Output cut short by its reader
(`taskq task list q | head -1`) ends the command quietly with status 141, as SIGPIPE ends
other commands.
"""

from __future__ import annotations

import argparse
import os
import sys

from taskq.cli import (
    backup_commands,
    command_tree,
    completion,
    connection,
    errors,
    health_command,
    migrate_command,
    queue_commands,
    serve,
    task_commands,
    token_command,
    version_command,
)

#: The exit status of a command whose output pipe was closed early: 128 + SIGPIPE, what a shell
#: reports for a command SIGPIPE ended.
EXIT_BROKEN_PIPE = 141


class CommandLineError(Exception):
    """A usage error found by argparse, raised instead of exiting so that main reports it."""

    def __init__(self, prog: str, message: str) -> None:
        super().__init__(message)
        self.prog = prog
        self.message = message


class CommandParser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one line on stderr (exit status 2)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise CommandLineError(self.prog, message)


def build_parser() -> argparse.ArgumentParser:
    # Subparsers are made with the class of their parent, so every command gets one-line errors.
    parser = CommandParser(prog="taskq", description="taskq: a task-queue service with a gRPC API.",
                           parents=[connection.common_options()])
    parser.add_argument("--version", action="version", version=version_command.text(),
                        help="show the version of this command and exit")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve.add_parser(subparsers)
    queue_commands.add_parser(subparsers)
    task_commands.add_parser(subparsers)
    health_command.add_parser(subparsers)
    migrate_command.add_parser(subparsers)
    backup_commands.add_parsers(subparsers)
    token_command.add_parser(subparsers)
    version_command.add_parser(subparsers)
    completion.add_parser(subparsers, parser)
    _accept_options_anywhere(parser)
    return parser


def _accept_options_anywhere(parser: argparse.ArgumentParser) -> None:
    """Lets the options the top-level parser shares with commands come before or after the
    command. argparse copies a command's defaults over what the top level parsed, so the
    commands' copies of these options get no default: a value given either side survives, and
    the top level's defaults apply otherwise."""
    shared = {action.dest for action in parser._actions if action.option_strings and action.dest != "help"}
    for command in command_tree.walk(parser):
        if command.parser is parser:
            continue
        for action in command.parser._actions:
            if action.option_strings and action.dest in shared:
                action.default = argparse.SUPPRESS


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        status = _run(argv)
        # Output still buffered meets a closed pipe here, not at exit where Python would complain.
        sys.stdout.flush()
    except BrokenPipeError:
        _discard_stdout()
        return EXIT_BROKEN_PIPE
    return status


def _run(argv: list[str]) -> int:
    try:
        arguments = build_parser().parse_args(argv)
    except CommandLineError as error:
        message = f"{error.message} (see {error.prog} --help)"
        if "--json" in argv:
            return errors.report_usage(message, json_errors=True)
        return errors.report_usage(f"error: {message}", json_errors=False, prefix=error.prog)
    return arguments.run(arguments)


def _discard_stdout() -> None:
    """Points stdout at /dev/null, so that nothing written later (Python flushes it at exit)
    meets the closed pipe again."""
    try:
        descriptor = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):
        return  # not a file (tests capture it): nothing is left to flush anywhere
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, descriptor)
    os.close(null)


if __name__ == "__main__":
    sys.exit(main())
