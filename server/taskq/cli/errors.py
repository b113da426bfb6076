"""How the `taskq` command reports a failure: one line on stderr, or, with `--json`, one JSON
document on stderr, and the exit status.

The JSON document has the same keys for every failure, so that a script can always read them:

    {"code": "NOT_FOUND", "reason": "QUEUE_NOT_FOUND", "message": "queue queues/nope does not exist",
     "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "QUEUE_NOT_FOUND", ...}]}

`code` is the gRPC status code's name; `reason` the server's stable ErrorInfo reason ("" when
the failure came from the transport or the client's deadline, "USAGE" for a usage error of the
command); `details` the google.rpc.Status details as protobuf's JSON mapping (empty when there
are none). The exit status is the same with or without `--json`:

    0    done
    1    the server refused the call or could not be reached; or a confirmation was declined
         (CANCELLED NOT_CONFIRMED, see cli/confirmation.py)
    2    a usage error
    130  interrupted (Ctrl-C)
    141  stdout closed before the output was written (`| head`; see cli/main.py), quietly
"""

from __future__ import annotations

import json
import sys
from typing import Any

import grpc
from google.protobuf import json_format

from taskq.client import TaskqError

#: The server refused the call, or could not be reached.
EXIT_FAILED = 1
#: A usage error: argparse's own, or a value only checked after parsing.
EXIT_USAGE = 2
#: Interrupted by Ctrl-C, as a shell reports a SIGINT death.
EXIT_INTERRUPTED = 130

#: The `reason` of usage errors in JSON: they come from the command, not from the server.
USAGE_REASON = "USAGE"


class UsageError(Exception):
    """An argument that parsed but cannot be used; reported like argparse's errors (exit 2)."""


def describe(error: TaskqError, address: str, timeout: float) -> str:
    """The message of a failed call, without its code and reason."""
    # Without an ErrorInfo reason, the error came from the transport or the client's own
    # deadline rather than from taskq: say what that means for the user.
    if not error.reason and error.code is grpc.StatusCode.UNAVAILABLE:
        return f"cannot reach the taskq server at {address}: {error.message}"
    if not error.reason and error.code is grpc.StatusCode.DEADLINE_EXCEEDED:
        return (f"no answer from the taskq server at {address} within {timeout:g}s "
                f"(is it reachable? --timeout waits longer)")
    return error.message


def report_call(error: TaskqError, message: str, *, json_errors: bool) -> int:
    """Prints a failed call (its `message` as `describe` or a command made it); returns 1."""
    if json_errors:
        details = [] if error.status is None else [_detail(detail) for detail in error.status.details]
        _print_json(error.code.name, error.reason, message, details)
    else:
        label = f"{error.code.name} {error.reason}" if error.reason else error.code.name
        print(f"taskq: {label}: {message}", file=sys.stderr)
    return EXIT_FAILED


def report_usage(message: str, *, json_errors: bool, prefix: str = "taskq") -> int:
    """Prints a usage error (`prefix: message`, or JSON); returns 2."""
    if json_errors:
        _print_json(grpc.StatusCode.INVALID_ARGUMENT.name, USAGE_REASON, message, [])
    else:
        print(f"{prefix}: {message}", file=sys.stderr)
    return EXIT_USAGE


def _detail(detail: Any) -> dict[str, Any]:
    try:
        return json_format.MessageToDict(detail, preserving_proto_field_name=True)
    except (TypeError, KeyError):
        # A detail type this client does not know: its type URL is still worth showing.
        return {"@type": detail.type_url}


def _print_json(code: str, reason: str, message: str, details: list[dict[str, Any]]) -> None:
    document = {"code": code, "reason": reason, "message": message, "details": details}
    json.dump(document, sys.stderr, ensure_ascii=False)
    sys.stderr.write("\n")
