"""A real HTTP worker service for HTTP push tests: a threading HTTP/1.1 server on a free
loopback port that records every request and answers as the test tells it to.

    worker = HttpWorker()                      # answers 200 to everything
    worker.answer("/fail", 503, headers={"Retry-After": "7"})
    worker.answer("/slow", 200, delay=30)      # hangs for 30 s
    ...
    worker.requests                            # Received(method, path, headers, body, at, connection)
    worker.close()
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclasses.dataclass
class Received:
    method: str
    #: The request target as sent (path and query).
    path: str
    headers: dict[str, str]
    body: bytes
    #: time.monotonic() when the request arrived.
    at: float
    #: Which TCP connection carried it (same number: a reused keep-alive connection).
    connection: int

    def header(self, name: str) -> str | None:
        for key, value in self.headers.items():
            if key.lower() == name.lower():
                return value
        return None


@dataclasses.dataclass
class Answer:
    status: int = 200
    headers: dict[str, str] = dataclasses.field(default_factory=dict)
    body: bytes = b""
    #: Seconds to wait before answering (a slow or hung handler).
    delay: float = 0.0


class HttpWorker:
    def __init__(self) -> None:
        self.requests: list[Received] = []
        self._answers: dict[str, Answer | Callable[[Received], Answer]] = {}
        self.default = Answer()
        self._lock = threading.Lock()
        self._connections = 0
        #: Requests being handled now, and the most there ever were at once.
        self.open = 0
        self.max_open = 0
        self._released = threading.Event()
        worker = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive

            def setup(self) -> None:
                super().setup()
                with worker._lock:
                    worker._connections += 1
                    self.connection_number = worker._connections

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                received = Received(self.command, self.path, dict(self.headers.items()), body, time.monotonic(),
                                    self.connection_number)
                with worker._lock:
                    worker.requests.append(received)
                    answer = worker._answers.get(self.path.split("?", 1)[0], worker.default)
                    worker.open += 1
                    worker.max_open = max(worker.max_open, worker.open)
                try:
                    if callable(answer):
                        answer = answer(received)
                    if answer.delay:
                        worker._released.wait(answer.delay)
                finally:
                    with worker._lock:
                        worker.open -= 1
                self.send_response(answer.status)
                for name, value in answer.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(answer.body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(answer.body)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _handle

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, name="http-worker", daemon=True)
        self._thread.start()

    def answer(self, path: str, status: int = 200, *, headers: dict[str, str] | None = None, body: bytes = b"",
               delay: float = 0.0) -> None:
        """How requests to `path` (without query) are answered from now on."""
        with self._lock:
            self._answers[path] = Answer(status, headers or {}, body, delay)

    def answer_with(self, path: str, answer: Callable[[Received], Answer]) -> None:
        with self._lock:
            self._answers[path] = answer

    def received(self, path: str | None = None) -> list[Received]:
        with self._lock:
            return [r for r in self.requests if path is None or r.path.split("?", 1)[0] == path]

    def close(self) -> None:
        self._released.set()  # hung handlers answer now
        self._server.shutdown()
        self._server.server_close()
