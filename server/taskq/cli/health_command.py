"""`taskq health`: asks a server's gRPC health service, for scripts and container probes.

Exit status 0 when the service is SERVING, 1 when it is not or the server cannot be reached
(one line on stderr says which), 2 for a usage error. The service is "" (the whole server) by
default; "liveness", "taskq.v1.TaskService" and "taskq.v1.QueueService" are the others.
"""

from __future__ import annotations

import argparse
import os
import sys

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from taskq.cli.connection import SERVER_ENV
from taskq.client import DEFAULT_ADDRESS


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "health", help="check that a taskq server is serving",
        description="Ask a taskq server's gRPC health service; exit 0 if it is SERVING.",
    )
    parser.add_argument("--server", metavar="ADDRESS",
                        help=f"host:port of the server (default: ${SERVER_ENV}, else {DEFAULT_ADDRESS})")
    parser.add_argument("--service", default="",
                        help='the service to ask about: "" (default: the whole server), liveness, '
                             "taskq.v1.TaskService or taskq.v1.QueueService")
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds to wait for the answer (default 5)")
    parser.set_defaults(run=run)


def run(arguments: argparse.Namespace) -> int:
    address = arguments.server or os.environ.get(SERVER_ENV) or DEFAULT_ADDRESS
    with grpc.insecure_channel(address) as channel:
        try:
            response = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=arguments.service), timeout=arguments.timeout
            )
        except grpc.RpcError as error:
            print(f"taskq health: {address}: {error.code().name}: {error.details()}", file=sys.stderr)
            return 1
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)
    service = arguments.service or "the server"
    if response.status != health_pb2.HealthCheckResponse.SERVING:
        print(f"taskq health: {service} at {address} is {status}", file=sys.stderr)
        return 1
    print(f"{service} at {address} is {status}")
    return 0
