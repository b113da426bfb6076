"""What every client command shares: the `--server`, `--json` and `--timeout` options, the
TLS options, the token options (`--token`, `--token-file`), opening a Client, and turning a
failure into an exit status (reported by `taskq.cli.errors`).

Exit status: 0 done; 1 the server refused the call or could not be reached; 2 a usage error
(argparse's own, or a value only checked after parsing, such as an unreadable payload file, a
malformed --server or an unreadable --ca-file).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable

from taskq.cli import errors, values
from taskq.cli.errors import UsageError
from taskq.client import (
    DEFAULT_ADDRESS,
    CallRetry,
    Client,
    InvalidAddress,
    InvalidTlsSettings,
    InvalidToken,
    PlaintextToken,
    TaskqError,
    TlsSettings,
)

#: Environment variable naming the server when --server is not given.
SERVER_ENV = "TASKQ_SERVER"
#: The TLS options, and the environment variable each falls back to.
TLS_OPTIONS = {"ca_file": "TASKQ_CA_FILE", "cert_file": "TASKQ_CERT_FILE", "key_file": "TASKQ_KEY_FILE",
               "server_name": "TASKQ_SERVER_NAME"}
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
                       help="host[:port] of the taskq server (port 50051 if none), or https://host[:port] for TLS "
                       f"(port 443 if none) (default: ${SERVER_ENV}, else {DEFAULT_ADDRESS})")
    group.add_argument("--json", action="store_true", help="print one JSON document instead of text")
    group.add_argument("--timeout", type=values.positive_duration, default=DEFAULT_TIMEOUT_SECONDS, metavar="DURATION",
                       help=f"give up on a call after this long (default {DEFAULT_TIMEOUT_SECONDS:g}s)")
    tls = parser.add_argument_group("TLS (any of these means TLS; see docs/security.md)")
    tls.add_argument("--ca-file", metavar="FILE", help="CA certificates (PEM) that sign the server's certificate "
                     "(default: $TASKQ_CA_FILE, else the system's)")
    tls.add_argument("--cert-file", metavar="FILE",
                     help="client certificate (PEM) for a server that requires one (default: $TASKQ_CERT_FILE)")
    tls.add_argument("--key-file", metavar="FILE", help="the client certificate's key (default: $TASKQ_KEY_FILE)")
    tls.add_argument("--server-name", metavar="NAME", help="the name the server's certificate must hold, when not "
                     "the address's host (default: $TASKQ_SERVER_NAME)")
    auth = parser.add_argument_group("authentication (docs/security.md)")
    auth.add_argument("--token", metavar="TOKEN", help="bearer token sent with each call (default: $TASKQ_TOKEN; "
                      "prefer --token-file: a command line is visible to other users)")
    auth.add_argument("--token-file", metavar="FILE", help="file holding the bearer token (default: $TASKQ_TOKEN_FILE)")
    auth.add_argument("--allow-plaintext-token", action="store_true", default=None,
                      help="send the token even without TLS to another machine (a network protected otherwise)")
    return parser


def server_address(arguments: argparse.Namespace) -> str:
    return arguments.server or os.environ.get(SERVER_ENV) or DEFAULT_ADDRESS


def tls_settings(arguments: argparse.Namespace) -> TlsSettings | None:
    """The TLS options (or their environment variables); None when none is given."""
    given = {name: getattr(arguments, name, None) or os.environ.get(variable) or None
             for name, variable in TLS_OPTIONS.items()}
    if not any(given.values()):
        return None
    if (given["cert_file"] is None) != (given["key_file"] is None):
        raise InvalidTlsSettings("--cert-file and --key-file go together: give both, or neither")
    return TlsSettings(**given)


Handler = Callable[[Client, argparse.Namespace], None]


def command(handler: Handler) -> Callable[[argparse.Namespace], int]:
    """Wraps a handler(client, arguments) into a parser's `run`, returning the exit status."""

    def run(arguments: argparse.Namespace) -> int:
        address = server_address(arguments)
        try:
            with Client(address, timeout=arguments.timeout, call_retry=CLI_CALL_RETRY, tls=tls_settings(arguments),
                        token=getattr(arguments, "token", None), token_file=getattr(arguments, "token_file", None),
                        allow_plaintext_token=bool(getattr(arguments, "allow_plaintext_token", False))) as client:
                handler(client, arguments)
        except (UsageError, InvalidAddress, InvalidTlsSettings, InvalidToken, PlaintextToken) as error:
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
