"""gRPC channels to a taskq server: reconnection, keepalive and message-size limits.

`channel_options()` is the single list of settings; `create_channel` applies it to a sync
channel and `create_aio_channel` to an asyncio one. Both read the address by the rules of
`taskq.client.address` and connect with TLS when the address is https:// or when TLS
settings or credentials are given.

The channel has no retry policy (service config) of its own: `Client` and `AsyncClient` retry
calls failing with UNAVAILABLE themselves, for long enough to cover a restart of the server
(see `taskq.client.call_retry`, which says why gRPC's policy is not enough). gRPC's
transparent retries stay on: they resend only requests that never reached the server.
Streams are never retried; the workers subscribe again on their own.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import grpc

from taskq.client.address import InvalidAddress, parse_address
from taskq.client.tls import TlsSettings

#: Largest message sent or received, bytes; the server's default limit (32 MiB).
MAX_MESSAGE_BYTES = 32 * 1024 * 1024

#: Keepalive ping interval on a connection, ms. The server allows pings every 10 s even when
#: no call is active and answers faster ones with "too many pings" (GOAWAY), so stay above.
KEEPALIVE_TIME_MS = 30_000
#: How long to wait for a ping's answer before declaring the connection dead, ms.
KEEPALIVE_TIMEOUT_MS = 10_000

#: Reconnection backoff of a channel whose server went away, ms: gRPC starts at 1 s and grows
#: to 120 s by default, made for fleets of servers; with one taskq server that would leave a
#: worker idle for minutes after a restart of a few seconds. A channel waiting to reconnect
#: fails calls at once, so the maximum stays at the calls' own longest retry wait (2 s by
#: default): a call retrying across a restart finds the channel connected soon after the
#: server is back, well within its retry budget.
RECONNECT_INITIAL_BACKOFF_MS = 250
RECONNECT_MAX_BACKOFF_MS = 2_000

#: Requests up to this size are kept for a possible transparent retry, bytes. gRPC's default
#: (256 KiB) would leave a create of a large task (up to 1 MiB by default) without one.
RETRY_BUFFER_BYTES = 4 * 1024 * 1024


def channel_options(extra: Sequence[tuple[str, Any]] = ()) -> list[tuple[str, Any]]:
    """Channel arguments for a taskq channel; `extra` entries override these."""
    options: dict[str, Any] = {
        # Transparent retries only (no service config): see the module comment.
        "grpc.enable_retries": 1,
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


def resolve(
    address: str, credentials: grpc.ChannelCredentials | None, tls: TlsSettings | None,
) -> tuple[str, grpc.ChannelCredentials | None, list[tuple[str, Any]]]:
    """The gRPC target of `address`, the credentials to connect with (None: plain text) and
    the channel arguments TLS needs. Raises InvalidAddress or InvalidTlsSettings."""
    parsed = parse_address(address)
    wants_tls = credentials is not None or tls is not None
    if parsed.tls is False and wants_tls:
        raise InvalidAddress(f"invalid server address {address!r}: http:// means plain text, "
                             "but TLS settings were given (use https:// or host:port)")
    if credentials is None and (wants_tls or parsed.tls):
        credentials = (tls or TlsSettings()).credentials()
    return parsed.target, credentials, tls.channel_options() if tls else []


def uses_tls(address: str, tls: TlsSettings | None, credentials: grpc.ChannelCredentials | None) -> bool:
    """Whether a channel to `address` with these settings is encrypted."""
    return credentials is not None or tls is not None or parse_address(address).tls is True


def create_channel(
    address: str,
    *,
    credentials: grpc.ChannelCredentials | None = None,
    tls: TlsSettings | None = None,
    options: Sequence[tuple[str, Any]] = (),
) -> grpc.Channel:
    """A sync channel to `address` with the taskq settings; TLS if the address is https://,
    or if `tls` or `credentials` are given (credentials take the place of tls's files)."""
    target, credentials, tls_options = resolve(address, credentials, tls)
    merged = channel_options([*tls_options, *options])
    if credentials is None:
        return grpc.insecure_channel(target, options=merged)
    return grpc.secure_channel(target, credentials, options=merged)


def create_aio_channel(
    address: str,
    *,
    credentials: grpc.ChannelCredentials | None = None,
    tls: TlsSettings | None = None,
    options: Sequence[tuple[str, Any]] = (),
    interceptors: Sequence[grpc.aio.ClientInterceptor] | None = None,
) -> grpc.aio.Channel:
    """An asyncio channel to `address` with the taskq settings; TLS as for `create_channel`."""
    target, credentials, tls_options = resolve(address, credentials, tls)
    merged = channel_options([*tls_options, *options])
    if credentials is None:
        return grpc.aio.insecure_channel(target, options=merged, interceptors=interceptors)
    return grpc.aio.secure_channel(target, credentials, options=merged, interceptors=interceptors)


__all__ = ["MAX_MESSAGE_BYTES", "channel_options", "create_aio_channel", "create_channel", "uses_tls"]
