"""`taskq health`: asks a server's gRPC health service, for scripts and container probes.

Exit status 0 when the service is SERVING, 1 when it is not or the server cannot be reached
(one line on stderr says which, or a JSON document with --json), 2 for a usage error. The
service is "" (the whole server) by default; "liveness", "taskq.v1.TaskService" and
"taskq.v1.QueueService" are the others. It takes the options every client command takes
(--server, --timeout, --json).
"""

from __future__ import annotations

import argparse
import json
import sys

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from taskq.cli import errors
from taskq.cli.connection import common_options, server_address, tls_settings
from taskq.client import InvalidAddress, InvalidTlsSettings, from_rpc_error
from taskq.client.channel import create_channel


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "health", help="check that a taskq server is serving", parents=[common_options()],
        description="Ask a taskq server's gRPC health service; exit 0 if it is SERVING.",
    )
    parser.add_argument("--service", default="",
                        help='the service to ask about: "" (default: the whole server), liveness, '
                             "taskq.v1.TaskService or taskq.v1.QueueService")
    parser.set_defaults(run=run)


def run(arguments: argparse.Namespace) -> int:
    address = server_address(arguments)
    try:
        # The API's address rules and TLS settings: a probe of a TLS server must speak TLS.
        channel = create_channel(address, tls=tls_settings(arguments))
    except (InvalidAddress, InvalidTlsSettings) as unusable:
        return errors.report_usage(str(unusable), json_errors=arguments.json)
    with channel:
        try:
            response = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=arguments.service), timeout=arguments.timeout
            )
        except grpc.RpcError as rpc_error:
            error = from_rpc_error(rpc_error)
            message = rpc_error.details() or error.code.name
            if error.code is grpc.StatusCode.NOT_FOUND:
                # The health protocol's answer for a service the server does not know.
                message = f"the server knows no service {arguments.service!r}"
            if arguments.json:
                return errors.report_call(error, f"{address}: {message}", json_errors=True)
            print(f"taskq health: {address}: {error.code.name}: {message}", file=sys.stderr)
            return errors.EXIT_FAILED
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)
    serving = response.status == health_pb2.HealthCheckResponse.SERVING
    if arguments.json:
        print(json.dumps({"server": address, "service": arguments.service, "status": status}, indent=2))
        return 0 if serving else errors.EXIT_FAILED
    service = arguments.service or "the server"
    if not serving:
        print(f"taskq health: {service} at {address} is {status}", file=sys.stderr)
        return errors.EXIT_FAILED
    print(f"{service} at {address} is {status}")
    return 0
