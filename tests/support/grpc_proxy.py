"""A real HTTP/2 proxy in front of taskq: Debian's nginx with `grpc_pass`, as an ingress or a
mesh sidecar would sit, on a free port with a configuration of its own in a temporary
directory. `make test` unpacks nginx into .venv/nginx (tools/install-nginx.sh); elsewhere
TASKQ_NGINX may name a binary. Without one, the tests that need it are skipped, unless
TASKQ_REQUIRE_PROXY is set (make test sets it: there, a missing nginx fails)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

REPOSITORY = Path(__file__).resolve().parents[2]
UNPACKED = REPOSITORY / ".venv" / "nginx" / "usr" / "sbin" / "nginx"

CONFIG = """\
daemon off;
worker_processes 1;
{user}
pid {home}/nginx.pid;
error_log {home}/error.log info;
events {{ worker_connections 512; }}
http {{
    # Debian's compiled-in paths live under /var: every path is this proxy's own.
    client_body_temp_path {home}/body;
    proxy_temp_path {home}/proxy;
    fastcgi_temp_path {home}/fastcgi;
    uwsgi_temp_path {home}/uwsgi;
    scgi_temp_path {home}/scgi;
    log_format calls '$request_uri $status $request_time';
    access_log {home}/access.log calls;
    server {{
        listen 127.0.0.1:{port} http2;
        # taskq's largest messages, and long polls and streams that stay open for minutes.
        client_max_body_size 64m;
        location / {{
            grpc_pass grpc://{upstream};
            grpc_read_timeout 600s;
            grpc_send_timeout 600s;
        }}
    }}
}}
"""


def nginx_binary() -> str:
    candidate = os.environ.get("TASKQ_NGINX") or str(UNPACKED)
    if os.access(candidate, os.X_OK):
        return candidate
    message = f"no nginx at {candidate}: run tools/install-nginx.sh (make test does)"
    if os.environ.get("TASKQ_REQUIRE_PROXY"):
        pytest.fail(message)
    pytest.skip(message)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class GrpcProxy:
    """nginx forwarding every gRPC call on `address` to `upstream` (host:port)."""

    def __init__(self, upstream: str, home: Path) -> None:
        self.home = home
        home.mkdir(parents=True, exist_ok=True)
        port = free_port()
        self.address = f"127.0.0.1:{port}"
        # As root, nginx's workers would switch to "nobody", who cannot write into home.
        user = "user root;" if os.geteuid() == 0 else ""
        (home / "nginx.conf").write_text(CONFIG.format(home=home, port=port, upstream=upstream, user=user))
        self.process = subprocess.Popen(
            [nginx_binary(), "-p", str(home), "-c", str(home / "nginx.conf"), "-e", str(home / "error.log")],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )
        deadline = time.monotonic() + 10
        while True:
            if self.process.poll() is not None:
                raise AssertionError(f"nginx did not start: {self.process.stderr.read()} {self.error_log()}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    self.close()
                    raise AssertionError(f"nginx did not listen on {self.address}: {self.error_log()}") from None
                time.sleep(0.02)

    def error_log(self) -> str:
        path = self.home / "error.log"
        return path.read_text() if path.exists() else ""

    def calls(self, method: str) -> list[str]:
        """The access log's lines of the calls of `method` that ended (path status seconds)."""
        path = self.home / "access.log"
        lines = path.read_text().splitlines() if path.exists() else []
        return [line for line in lines if line.startswith(method + " ")]

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)  # nginx's fast shutdown
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process.stderr is not None:
            self.process.stderr.close()
