"""Helpers for the client tests: counting the RPCs a client makes, and waiting for a condition."""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable

import grpc

from taskq.client.channel import channel_options, create_aio_channel


class _Counts:
    """Unary calls made through a channel, by method name (`BatchCreateTasks`), and how many
    items each batch call carried."""

    def __init__(self) -> None:
        self.calls: collections.Counter[str] = collections.Counter()
        self.batch_sizes: list[int] = []
        self._lock = threading.Lock()

    def _count(self, details, request) -> None:
        method = details.method.decode() if isinstance(details.method, bytes) else details.method
        with self._lock:
            self.calls[method.rsplit("/", 1)[-1]] += 1
            if hasattr(request, "requests"):
                self.batch_sizes.append(len(request.requests))


class RpcCounter(_Counts, grpc.UnaryUnaryClientInterceptor):
    def intercept_unary_unary(self, continuation, client_call_details, request):
        self._count(client_call_details, request)
        return continuation(client_call_details, request)


class AsyncRpcCounter(_Counts, grpc.aio.UnaryUnaryClientInterceptor):
    async def intercept_unary_unary(self, continuation, client_call_details, request):
        self._count(client_call_details, request)
        return await continuation(client_call_details, request)


def counted_channel(address: str) -> tuple[grpc.Channel, RpcCounter]:
    """A sync channel with the client's settings whose unary calls are counted."""
    counter = RpcCounter()
    channel = grpc.intercept_channel(grpc.insecure_channel(address, options=channel_options()), counter)
    return channel, counter


def counted_aio_channel(address: str) -> tuple[grpc.aio.Channel, AsyncRpcCounter]:
    """The same for asyncio; create it inside the coroutine that uses it."""
    counter = AsyncRpcCounter()
    return create_aio_channel(address, interceptors=[counter]), counter


def eventually(condition: Callable[[], object], timeout: float = 10, message: str = "") -> object:
    """Polls `condition` until it returns something true; fails after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(message or "the condition did not become true in time")
        time.sleep(0.02)


__all__ = ["RpcCounter", "AsyncRpcCounter", "counted_channel", "counted_aio_channel", "eventually"]
