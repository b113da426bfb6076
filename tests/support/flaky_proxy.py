"""A TCP proxy between a gRPC client and a taskq server that loses answers on purpose.

    python tests/support/flaky_proxy.py --target 127.0.0.1:50051 --drop-responses 1

The clients' tests (Python, Go, TypeScript, Java) run it as a subprocess to lose the answer to
a call *after* the server has done the work, which no mock can fake convincingly: the server
really commits the create, and the client really sees its connection break.

It listens on 127.0.0.1 (a free port unless --listen-port is given), prints one line

    flaky_proxy listening on 127.0.0.1:PORT

once it accepts connections, and forwards every connection to --target, byte for byte. The
server-to-client direction is read as HTTP/2 frames: while drops remain, the first HEADERS frame
the server sends on a stream (the start of its answer to a call, which a gRPC server sends only
once the handler has finished) is forwarded, and then the connection is closed on both sides
before anything more. The client thus holds the response headers but neither the message nor
the status: its call fails with UNAVAILABLE after it was "committed", so gRPC's own retry
policy would not resend it; only a retry above gRPC can. Each drop prints

    dropped response on stream N

before the connection is closed, so a test can check that the answer really was lost. A line
"drop N" on stdin adds N drops. The proxy exits when stdin reaches its end (so it never
outlives the test that started it with a pipe) or on SIGTERM.

Only the standard library is used: any Python 3.11+ runs it.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import threading

#: Bytes of an HTTP/2 frame header: length (3), type (1), flags (1), stream id (4).
FRAME_HEADER_BYTES = 9
#: The HTTP/2 frame type that starts a response (and carries trailers).
HEADERS_FRAME = 0x1
#: Bytes read from a socket at a time.
READ_BYTES = 64 * 1024


class Drops:
    """How many answers are still to be lost; shared by every connection."""

    def __init__(self, count: int) -> None:
        self.remaining = count

    def take(self) -> bool:
        if self.remaining <= 0:
            return False
        self.remaining -= 1
        return True


class Dropped(Exception):
    """The connection is to be closed now: an answer was lost on purpose."""


async def forward_bytes(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Client to server: copied unchanged."""
    while chunk := await reader.read(READ_BYTES):
        writer.write(chunk)
        await writer.drain()


async def forward_frames(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, drops: Drops) -> None:
    """Server to client: whole frames are forwarded; raises Dropped after forwarding a
    response's HEADERS frame that is to be lost."""
    pending = b""
    while chunk := await reader.read(READ_BYTES):
        pending += chunk
        ready = bytearray()
        while len(pending) >= FRAME_HEADER_BYTES:
            length = int.from_bytes(pending[0:3], "big")
            end = FRAME_HEADER_BYTES + length
            if len(pending) < end:
                break
            frame_type = pending[3]
            stream_id = int.from_bytes(pending[5:9], "big") & 0x7FFF_FFFF
            ready += pending[:end]
            pending = pending[end:]
            if frame_type == HEADERS_FRAME and stream_id != 0 and drops.take():
                writer.write(bytes(ready))
                await writer.drain()
                print(f"dropped response on stream {stream_id}", flush=True)
                raise Dropped
        if ready:
            writer.write(bytes(ready))
            await writer.drain()


async def serve_connection(client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter,
                           target: tuple[str, int], drops: Drops) -> None:
    try:
        server_reader, server_writer = await asyncio.open_connection(*target)
    except OSError:
        client_writer.transport.abort()  # the server is down: the client sees a refused call
        return
    directions = [
        asyncio.create_task(forward_bytes(client_reader, server_writer)),
        asyncio.create_task(forward_frames(server_reader, client_writer, drops)),
    ]
    try:
        await asyncio.wait(directions, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for direction in directions:
            direction.cancel()
        # abort() rather than close(): the peer must see the connection end at once, not after
        # buffered data, exactly as when a server process or a network path dies.
        client_writer.transport.abort()
        server_writer.transport.abort()
        await asyncio.gather(*directions, return_exceptions=True)


def read_commands(loop: asyncio.AbstractEventLoop, drops: Drops) -> None:
    """Stdin, in a thread: "drop N" adds drops; the end of input stops the proxy."""
    for line in sys.stdin:
        words = line.split()
        if len(words) == 2 and words[0] == "drop" and words[1].isdigit():
            count = int(words[1])
            loop.call_soon_threadsafe(lambda count=count: setattr(drops, "remaining", drops.remaining + count))
    # At once, connections and all, as a proxy that dies would: nothing is left to finish.
    sys.stdout.flush()
    os._exit(0)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--target", required=True, help="host:port of the server")
    parser.add_argument("--listen-port", type=int, default=0, help="port on 127.0.0.1 (default: a free one)")
    parser.add_argument("--drop-responses", type=int, default=0, metavar="N",
                        help="lose the first N answers (default 0; stdin 'drop N' adds more)")
    arguments = parser.parse_args()
    host, _, port = arguments.target.rpartition(":")
    target = (host, int(port))
    drops = Drops(arguments.drop_responses)

    server = await asyncio.start_server(
        lambda reader, writer: serve_connection(reader, writer, target, drops), "127.0.0.1", arguments.listen_port)
    listening_port = server.sockets[0].getsockname()[1]
    print(f"flaky_proxy listening on 127.0.0.1:{listening_port}", flush=True)
    threading.Thread(target=read_commands, args=(asyncio.get_running_loop(), drops), daemon=True).start()
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
