"""`taskq serve` run as a real process, for tests that kill it, signal it or fence it in."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Sequence

import grpc

SERVE = [sys.executable, "-m", "taskq.cli.main", "serve"]


class ServerProcess:
    """A server on 127.0.0.1 with a free port, started with `prefix` before its command (e.g.
    to run it inside another namespace)."""

    def __init__(
        self, data_dir, *extra: str, env: dict | None = None, prefix: Sequence[str] = (), log_path=None
    ) -> None:
        # A server that runs for long logs more than a pipe holds: `log_path` sends its log
        # (stderr) to that file instead, so that nobody has to read it while it runs.
        log_file = open(log_path, "a") if log_path is not None else None
        try:
            self.process = subprocess.Popen(
                [*prefix, *SERVE, "--listen", "127.0.0.1:0", "--data-dir", str(data_dir), *extra],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE if log_file is None else log_file,
                text=True,
                env={**os.environ, **(env or {})},
            )
        finally:
            if log_file is not None:
                log_file.close()  # the child has its own copy
        line = self.process.stdout.readline()
        match = re.search(r"listening on ([\d.]+:\d+)", line)
        if match is None:
            self.process.kill()
            self.process.wait()
            log = self.process.stderr.read() if log_file is None else open(log_path).read()
            raise AssertionError(f"no address printed: {line!r} {log}")
        self.address = match.group(1)
        self.channel = grpc.insecure_channel(self.address)

    def stop(self, sig: int = signal.SIGTERM) -> int:
        self.channel.close()
        self.process.send_signal(sig)
        return self.process.wait(timeout=30)
