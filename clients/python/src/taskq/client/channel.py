"""gRPC channels to a taskq server: retries, keepalive and message-size limits.

`channel_options()` is the single list of settings; `create_channel` applies it to a sync
channel and `create_aio_channel` to an asyncio one.

Retries come from gRPC's own retry support, configured by a service config: calls that fail
with UNAVAILABLE (server unreachable, starting, or draining for shutdown) are retried with
exponential backoff, within the call's deadline. Only unary methods are listed, because a
retried stream would silently restart a worker's subscription. A retried call may have
reached the server the first time; `Client.create_task` therefore always sends a request_id,
which makes a repeated create return the first task instead of adding a second.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import grpc

from taskq.v1 import queue_service_pb2, task_service_pb2

#: Largest message sent or received, bytes; the server's default limit (32 MiB).
MAX_MESSAGE_BYTES = 32 * 1024 * 1024

#: Keepalive ping interval on a connection, ms. The server allows pings every 10 s even when
#: no call is active and answers faster ones with "too many pings" (GOAWAY), so stay above.
KEEPALIVE_TIME_MS = 30_000
#: How long to wait for a ping's answer before declaring the connection dead, ms.
KEEPALIVE_TIMEOUT_MS = 10_000

#: Retry policy for UNAVAILABLE: at most this many attempts in all (gRPC caps it at 5)...
RETRY_MAX_ATTEMPTS = 5
#: ...waiting a random time up to 0.2 s, 0.4 s, 0.8 s, 1.6 s between them (capped at 5 s).
RETRY_INITIAL_BACKOFF = "0.2s"
RETRY_MAX_BACKOFF = "5s"
RETRY_BACKOFF_MULTIPLIER = 2

#: Reconnection backoff of a channel whose server went away, ms: gRPC starts at 1 s and grows
#: to 120 s by default, made for fleets of servers; with one taskq server that would leave a
#: worker idle for minutes after a restart of a few seconds.
RECONNECT_INITIAL_BACKOFF_MS = 250
RECONNECT_MAX_BACKOFF_MS = 5_000

#: Requests up to this size are kept for a possible retry, bytes. gRPC's default (256 KiB)
#: would leave a create of a large task (up to 1 MiB by default) without retries.
RETRY_BUFFER_BYTES = 4 * 1024 * 1024

_SERVICES = (
    task_service_pb2.DESCRIPTOR.services_by_name["TaskService"],
    queue_service_pb2.DESCRIPTOR.services_by_name["QueueService"],
)


def unary_methods() -> list[tuple[str, str]]:
    """(full service name, method name) of every unary RPC of the taskq services."""
    return [
        (service.full_name, method.name)
        for service in _SERVICES
        for method in service.methods
        if not method.client_streaming and not method.server_streaming
    ]


def service_config() -> dict[str, Any]:
    """The gRPC service config: retry UNAVAILABLE on the unary methods, with backoff."""
    return {
        "methodConfig": [
            {
                "name": [{"service": service, "method": method} for service, method in unary_methods()],
                "retryPolicy": {
                    "maxAttempts": RETRY_MAX_ATTEMPTS,
                    "initialBackoff": RETRY_INITIAL_BACKOFF,
                    "maxBackoff": RETRY_MAX_BACKOFF,
                    "backoffMultiplier": RETRY_BACKOFF_MULTIPLIER,
                    "retryableStatusCodes": ["UNAVAILABLE"],
                },
            }
        ],
        # Stops retrying when most calls fail (a server down for good), instead of multiplying
        # the load on one that is struggling: see gRFC A6 "retry throttling".
        "retryThrottling": {"maxTokens": 10, "tokenRatio": 0.1},
    }


def channel_options(extra: Sequence[tuple[str, Any]] = ()) -> list[tuple[str, Any]]:
    """Channel arguments for a taskq channel; `extra` entries override these."""
    options: dict[str, Any] = {
        "grpc.enable_retries": 1,
        "grpc.service_config": json.dumps(service_config()),
        "grpc.per_rpc_retry_buffer_size": RETRY_BUFFER_BYTES,
        "grpc.max_send_message_length": MAX_MESSAGE_BYTES,
        "grpc.max_receive_message_length": MAX_MESSAGE_BYTES,
        "grpc.initial_reconnect_backoff_ms": RECONNECT_INITIAL_BACKOFF_MS,
        "grpc.max_reconnect_backoff_ms": RECONNECT_MAX_BACKOFF_MS,
        "grpc.keepalive_time_ms": KEEPALIVE_TIME_MS,
        "grpc.keepalive_timeout_ms": KEEPALIVE_TIMEOUT_MS,
        # Pings only while calls are active: an idle client has nothing to keep alive.
        "grpc.keepalive_permit_without_calls": 0,
        # By default gRPC stops pinging after 2 pings without data, which would leave a long
        # LeaseTasks wait or a quiet worker stream unprotected; the interval above is slow
        # enough for the server's ping policy.
        "grpc.http2.max_pings_without_data": 0,
        "grpc.primary_user_agent": "taskq-python",
    }
    options.update(dict(extra))
    return list(options.items())


def create_channel(
    address: str,
    *,
    credentials: grpc.ChannelCredentials | None = None,
    options: Sequence[tuple[str, Any]] = (),
) -> grpc.Channel:
    """A sync channel to `address` (host:port) with the taskq settings; TLS if `credentials`."""
    merged = channel_options(options)
    if credentials is None:
        return grpc.insecure_channel(address, options=merged)
    return grpc.secure_channel(address, credentials, options=merged)


def create_aio_channel(
    address: str,
    *,
    credentials: grpc.ChannelCredentials | None = None,
    options: Sequence[tuple[str, Any]] = (),
    interceptors: Sequence[grpc.aio.ClientInterceptor] | None = None,
) -> grpc.aio.Channel:
    """An asyncio channel to `address` with the taskq settings; TLS if `credentials`."""
    merged = channel_options(options)
    if credentials is None:
        return grpc.aio.insecure_channel(address, options=merged, interceptors=interceptors)
    return grpc.aio.secure_channel(address, credentials, options=merged, interceptors=interceptors)


__all__ = [
    "MAX_MESSAGE_BYTES", "channel_options", "create_aio_channel", "create_channel", "service_config", "unary_methods",
]
