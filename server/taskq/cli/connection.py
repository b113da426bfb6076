"""What every client command shares: the `--server`, `--json` and `--timeout` options,
opening a Client, and turning a failure into an exit status (reported by `taskq.cli.errors`).

Exit status: 0 done; 1 the server refused the call or could not be reached; 2 a usage error
(argparse's own, or a value only checked after parsing, such as an unreadable payload file).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable

from taskq.cli import errors, values
from taskq.cli.errors import UsageError
from taskq.client import DEFAULT_ADDRESS, CallRetry, Client, TaskqError

#: Environment variable naming the server when --server is not given.
SERVER_ENV = "TASKQ_SERVER"
#: Deadline of each call, seconds: short, so an unreachable server fails fast instead of
#: hanging. LeaseTasks gets its --wait on top.
DEFAULT_TIMEOUT_SECONDS = 10.0
#: A person at a terminal wants to hear soon that the server is down, not after the client
#: library's 15 s; 3 s still rides out a quick restart.
CLI_CALL_RETRY = CallRetry(budget=3.0)


def common_options() -> argparse.ArgumentParser:
    """A parent parser with the options every client command takes."""
    parser = argparse.ArgumentParser(add_help=False)
    group = parser.add_argument_group("server and output")
    group.add_argument("--server", metavar="ADDRESS",
                       help=f"host:port of the taskq server (default: ${SERVER_ENV}, else {DEFAULT_ADDRESS})")
    group.add_argument("--json", action="store_true", help="print one JSON document instead of text")
    group.add_argument("--timeout", type=values.positive_duration, default=DEFAULT_TIMEOUT_SECONDS, metavar="DURATION",
                       help=f"give up on a call after this long (default {DEFAULT_TIMEOUT_SECONDS:g}s)")
    return parser


def server_address(arguments: argparse.Namespace) -> str:
    return arguments.server or os.environ.get(SERVER_ENV) or DEFAULT_ADDRESS


Handler = Callable[[Client, argparse.Namespace], None]


def command(handler: Handler) -> Callable[[argparse.Namespace], int]:
    """Wraps a handler(client, arguments) into a parser's `run`, returning the exit status."""

    def run(arguments: argparse.Namespace) -> int:
        address = server_address(arguments)
        try:
            with Client(address, timeout=arguments.timeout, call_retry=CLI_CALL_RETRY) as client:
                handler(client, arguments)
        except UsageError as error:
            return errors.report_usage(str(error), json_errors=arguments.json)
        except TaskqError as error:
            message = errors.describe(error, address, arguments.timeout)
            return errors.report_call(error, message, json_errors=arguments.json)
        except KeyboardInterrupt:
            # Ctrl-C during a long `task lease --wait` is a normal way to stop, not a crash.
            print("taskq: interrupted", file=sys.stderr)
            return errors.EXIT_INTERRUPTED
        return 0

    return run
