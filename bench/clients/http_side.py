"""The worker service of HTTP push (scenario i), run inside a client process: a minimal
HTTP/1.1 server on 127.0.0.1 that answers `200` to every request and records its arrival.

- `serve`: a raw asyncio Protocol (no HTTP framework: keep-alive, Content-Length bodies,
  pipelining tolerated), so that the worker costs a few tens of µs per request and is never
  what limits the run. Several worker processes share one port with SO_REUSEPORT (the kernel
  spreads the server's connections over them), as P stream workers share one queue.

Each request is recorded on arrival (the whole body read): its payload's create stamp gives
create -> handler receipt, as the stream workers' handler entry does (bench.common), and its
`X-AppEngine-TaskName` header counts deliveries of a task seen before (redeliveries). The
answer is written right after, in the same callback. The producers are taskq's own
(bench.clients.taskq_side.produce): only the delivery differs.
"""

from __future__ import annotations

import asyncio
import time

from bench.common import Recorder, keep_running

RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
_LENGTH = b"\r\ncontent-length:"
_TASK_NAME = b"\r\nX-AppEngine-TaskName: "
#: Request heads longer than this close the connection (a client that is not taskq).
MAX_HEAD = 256 * 1024


class _Stats:
    def __init__(self) -> None:
        self.recorder = Recorder()
        self.names: set[bytes] = set()
        self.repeated = 0
        #: Requests without a stamped payload (shorter than 16 bytes): not taskq's tasks.
        self.unstamped = 0
        self.connections = 0
        self.closed_bad = 0


class _Connection(asyncio.Protocol):
    __slots__ = ("_buffer", "_on_request", "_stats", "_transport")

    def __init__(self, stats: _Stats, on_request) -> None:
        self._stats = stats
        self._on_request = on_request
        self._buffer = bytearray()
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport) -> None:
        self._transport = transport
        self._stats.connections += 1

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        answers = self._requests()
        if answers and self._transport is not None:
            self._transport.write(RESPONSE if answers == 1 else RESPONSE * answers)

    def _requests(self) -> int:
        """Takes the complete requests out of the buffer; returns how many (0 after a bad one,
        whose connection is closed)."""
        buffer = self._buffer
        answers = 0
        while buffer:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(buffer) > MAX_HEAD:
                    self._bad()
                    return 0
                break
            head = bytes(buffer[:end])
            length = 0
            at = head.lower().find(_LENGTH)
            if at >= 0:
                stop = head.find(b"\r\n", at + 2)
                try:
                    length = int(head[at + len(_LENGTH):stop if stop >= 0 else len(head)])
                except ValueError:
                    self._bad()
                    return 0
            total = end + 4 + length
            if len(buffer) < total:
                break
            body = bytes(buffer[end + 4:total])
            del buffer[:total]
            self._on_request(head, body)
            answers += 1
        return answers

    def _bad(self) -> None:
        self._stats.closed_bad += 1
        if self._transport is not None:
            self._transport.close()


def serve(spec: dict, control) -> dict:
    """Listens on 127.0.0.1:spec["port"] (SO_REUSEPORT) until the run ends; with
    spec["drain_s"], until the harness asks (every task created was received)."""
    stats = _Stats()
    gate = control.gate()
    record = stats.recorder.record

    def on_request(head: bytes, body: bytes) -> None:
        if len(body) < 16:
            stats.unstamped += 1
            return
        record(body)
        gate.consumed()
        at = head.find(_TASK_NAME)
        if at >= 0:
            stop = head.find(b"\r\n", at + 2)
            name = head[at + len(_TASK_NAME):stop if stop >= 0 else len(head)]
            if name in stats.names:
                stats.repeated += 1
            else:
                stats.names.add(name)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(lambda: _Connection(stats, on_request), spec.get("host", "127.0.0.1"),
                                          spec["port"], reuse_port=True, backlog=4096)
        control.ready()
        t0 = await asyncio.to_thread(control.wait_go)
        end = t0 + spec["run_for"]
        while keep_running(spec, control, end, gate):
            await asyncio.sleep(0.02)
        server.close()
        gate.flush()

    asyncio.run(main())
    return {**stats.recorder.result(), "received": len(stats.recorder), "repeated": stats.repeated,
            "unstamped": stats.unstamped, "connections": stats.connections, "closed_bad": stats.closed_bad,
            "finished": time.time()}
