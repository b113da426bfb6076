"""The servers under test, each a subprocess on 127.0.0.1 with its own temporary data directory.

- `TaskqServer`: `taskq serve --listen 127.0.0.1:0` from this checkout's virtualenv; ready
  when it prints `taskq listening on HOST:PORT`.
- `Beanstalkd`: `beanstalkd -l 127.0.0.1 -p PORT -b DIR [-f MS]`; ready when it accepts.
- `NatsServer`: `nats-server -c FILE` with JetStream file storage; ready when it accepts.

`ensure_installed()` installs beanstalkd and nats-server from Debian packages when they are
missing (as root, with apt-get). Every server is stopped with SIGTERM (then SIGKILL) and its
directory removed; `stop_all()` stops whatever is still running, e.g. after Ctrl-C.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Self

HOST = "127.0.0.1"
ROOT = Path(__file__).resolve().parent.parent
_RUNNING: list[ServerProcess] = []


class PeerUnavailable(RuntimeError):
    pass


def ensure_installed(binaries: dict[str, str], *, log=print) -> None:
    """Installs the Debian packages of missing binaries ({binary: package})."""
    missing = {binary: package for binary, package in binaries.items() if not find_binary(binary)}
    if not missing:
        return
    packages = sorted(set(missing.values()))
    if shutil.which("apt-get") is None or os.geteuid() != 0:
        raise PeerUnavailable(f"{', '.join(missing)} missing; install the Debian packages {' '.join(packages)}")
    log(f"installing {' '.join(packages)} with apt-get")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    command = ["apt-get", "install", "-y", "--no-install-recommends", *packages]
    if subprocess.run(command, env=env, stdout=subprocess.DEVNULL, check=False).returncode != 0:
        subprocess.run(["apt-get", "update"], env=env, stdout=subprocess.DEVNULL, check=True)
        subprocess.run(command, env=env, stdout=subprocess.DEVNULL, check=True)
    still = [binary for binary in missing if not find_binary(binary)]
    if still:
        raise PeerUnavailable(f"{', '.join(still)} still missing after apt-get install")


def find_binary(name: str) -> str | None:
    # Debian puts nats-server in /usr/sbin, which is not on every user's PATH.
    return shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/local/sbin:/sbin")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def _wait_accepting(port: int, process: subprocess.Popen, timeout: float) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if process.poll() is not None:
            raise PeerUnavailable(f"exited with {process.returncode} during start-up")
        with contextlib.suppress(OSError), socket.create_connection((HOST, port), timeout=0.2):
            return
        time.sleep(0.005)
    raise PeerUnavailable(f"not accepting on port {port} after {timeout} s")


def _wait_answering(port: int, process: subprocess.Popen, command: bytes, expect: bytes, timeout: float) -> None:
    """Waits until the server answers `command` (a TCP connect alone is not enough: the
    kernel accepts connections while the server is still replaying its log)."""
    deadline = time.time() + timeout
    _wait_accepting(port, process, timeout)
    with socket.create_connection((HOST, port), timeout=max(0.1, deadline - time.time())) as sock:
        sock.sendall(command)
        answer = b""
        while not answer.endswith(b"\r\n"):
            chunk = sock.recv(4096)
            if not chunk:
                break
            answer += chunk
    if not answer.startswith(expect):
        raise PeerUnavailable(f"answered {answer[:80]!r} to {command!r}")


class ServerProcess:
    """One server subprocess and its data directory."""

    kind = "server"

    def __init__(self, label: str, data_dir: str | None = None) -> None:
        self.label = label
        self._own_dir = data_dir is None
        self.data_dir = data_dir or tempfile.mkdtemp(prefix=f"taskq-bench-{self.kind}-")
        self.process: subprocess.Popen | None = None
        self.port: int | None = None
        self.startup_s: float | None = None
        self._log_path = os.path.join(tempfile.gettempdir(), f"taskq-bench-{self.kind}-{os.getpid()}-{id(self)}.log")

    @property
    def address(self) -> str:
        return f"{HOST}:{self.port}"

    @property
    def pid(self) -> int:
        return self.process.pid

    def start(self) -> ServerProcess:
        raise NotImplementedError

    def _spawn(self, argv: list[str], **kwargs) -> float:
        self._log = open(self._log_path, "ab")  # noqa: SIM115 (closed in stop)
        started = time.monotonic()
        self.process = subprocess.Popen(argv, stderr=self._log, stdin=subprocess.DEVNULL, **kwargs)
        _RUNNING.append(self)
        return started

    def memory(self) -> dict:
        """VmRSS and VmHWM (peak) of the server process, in MiB."""
        fields = {}
        with open(f"/proc/{self.pid}/status") as status:
            for line in status:
                if line.startswith(("VmRSS:", "VmHWM:")):
                    name, value, _unit = line.split()
                    fields[name.rstrip(":")] = round(int(value) / 1024, 1)
        return {"rss_mib": fields.get("VmRSS"), "peak_rss_mib": fields.get("VmHWM")}

    def cpu_seconds(self) -> float:
        """User + system CPU time of the server process (its threads included)."""
        with open(f"/proc/{self.pid}/stat") as stat:
            fields = stat.read().rpartition(")")[2].split()
        ticks = os.sysconf("SC_CLK_TCK")
        return (int(fields[11]) + int(fields[12])) / ticks

    def disk_mib(self) -> float:
        total = 0
        for path in Path(self.data_dir).rglob("*"):
            with contextlib.suppress(OSError):
                if path.is_file():
                    total += path.stat().st_size
        return round(total / 2**20, 1)

    def log_tail(self, lines: int = 20) -> str:
        with contextlib.suppress(OSError), open(self._log_path, errors="replace") as log:
            return "".join(log.readlines()[-lines:])
        return ""

    def stop(self, *, keep_data: bool = False, timeout: float = 30.0) -> None:
        """SIGTERM, then SIGKILL after `timeout`; removes the data directory unless kept."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self in _RUNNING:
            _RUNNING.remove(self)
        if getattr(self, "_log", None) is not None:
            self._log.close()
            self._log = None
        if not keep_data and self._own_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)
        with contextlib.suppress(OSError):
            os.unlink(self._log_path)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def taskq_command() -> list[str]:
    """The `taskq` console script of the virtualenv running the harness (TASKQ_BIN overrides)."""
    if os.environ.get("TASKQ_BIN"):
        return [os.environ["TASKQ_BIN"]]
    script = Path(sys.executable).parent / "taskq"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "taskq.cli.main"]


class TaskqServer(ServerProcess):
    kind = "taskq"

    def __init__(self, label: str = "taskq", *, durability: str = "fsync", data_dir: str | None = None,
                 extra_args: list[str] | None = None) -> None:
        super().__init__(label, data_dir)
        self.durability = durability
        self.extra_args = extra_args or []

    def start(self) -> TaskqServer:
        argv = [*taskq_command(), "serve", "--listen", f"{HOST}:0", "--data-dir", self.data_dir,
                "--durability", self.durability, "--log-level", "warning", *self.extra_args]
        started = self._spawn(argv, stdout=subprocess.PIPE, text=True)
        line = self._read_listening_line(timeout=120)
        self.startup_s = time.monotonic() - started
        match = re.match(r"taskq listening on (.+):(\d+)$", line.strip())
        if not match:
            self.stop()
            raise PeerUnavailable(f"taskq printed {line!r}, not its listening line")
        self.port = int(match.group(2))
        # Keep draining stdout so the server never blocks writing to a full pipe.
        threading.Thread(target=self.process.stdout.read, daemon=True).start()
        return self

    def _read_listening_line(self, timeout: float) -> str:
        lines: list[str] = []
        reader = threading.Thread(target=lambda: lines.append(self.process.stdout.readline()), daemon=True)
        reader.start()
        reader.join(timeout)
        if not lines or not lines[0]:
            tail = self.log_tail()
            self.stop()
            raise PeerUnavailable(f"taskq did not start:\n{tail}")
        return lines[0]


class Beanstalkd(ServerProcess):
    kind = "beanstalkd"

    def __init__(self, label: str, *, fsync_ms: int | None = None, binlog: bool = True,
                 data_dir: str | None = None) -> None:
        super().__init__(label, data_dir)
        self.fsync_ms = fsync_ms
        self.binlog = binlog

    def start(self) -> Beanstalkd:
        self.port = free_port()
        argv = [find_binary("beanstalkd") or "beanstalkd", "-l", HOST, "-p", str(self.port),
                "-z", str(1 << 20)]
        if self.binlog:
            argv += ["-b", self.data_dir]
        if self.fsync_ms is not None:
            argv += [f"-f{self.fsync_ms}"]
        started = self._spawn(argv, stdout=subprocess.DEVNULL)
        try:
            # Ready once it answers: it replays its binlog before serving.
            _wait_answering(self.port, self.process, b"list-tubes\r\n", b"OK ", timeout=600)
        except PeerUnavailable as error:
            tail = self.log_tail()
            self.stop()
            raise PeerUnavailable(f"beanstalkd {error}:\n{tail}") from None
        self.startup_s = time.monotonic() - started
        return self


def beanstalkd_version() -> str | None:
    binary = find_binary("beanstalkd")
    if not binary:
        return None
    out = subprocess.run([binary, "-v"], capture_output=True, text=True, check=False)
    return (out.stdout or out.stderr).strip().removeprefix("beanstalkd ")


class NatsServer(ServerProcess):
    kind = "nats"

    def __init__(self, label: str, *, sync_always: bool = False, data_dir: str | None = None) -> None:
        super().__init__(label, data_dir)
        self.sync_always = sync_always

    def config(self) -> str:
        sync = "  sync_interval: always\n" if self.sync_always else ""
        return (f"listen: {HOST}:{self.port}\nmax_payload: 1048576\n"
                f"jetstream {{\n  store_dir: \"{self.data_dir}\"\n{sync}}}\n")

    def start(self) -> NatsServer:
        self.port = free_port()
        config = os.path.join(self.data_dir, "nats.conf")
        with open(config, "w") as out:
            out.write(self.config())
        started = self._spawn([find_binary("nats-server") or "nats-server", "-c", config], stdout=subprocess.DEVNULL)
        try:
            _wait_accepting(self.port, self.process, timeout=60)
        except PeerUnavailable as error:
            tail = self.log_tail()
            self.stop()
            raise PeerUnavailable(f"nats-server {error}:\n{tail}") from None
        self.startup_s = time.monotonic() - started
        return self


def nats_version() -> str | None:
    binary = find_binary("nats-server")
    if not binary:
        return None
    out = subprocess.run([binary, "--version"], capture_output=True, text=True, check=False)
    return out.stdout.strip().removeprefix("nats-server: ").removeprefix("v")


def nats_supports_sync_always() -> tuple[bool, str]:
    """Whether the installed nats-server accepts `jetstream { sync_interval: always }`
    (checked with `nats-server -t`); with the reason when it does not."""
    binary = find_binary("nats-server")
    if not binary:
        return False, "nats-server is not installed"
    with tempfile.TemporaryDirectory(prefix="taskq-bench-natscheck-") as directory:
        config = os.path.join(directory, "check.conf")
        with open(config, "w") as out:
            out.write(f"listen: {HOST}:0\njetstream {{\n  store_dir: \"{directory}\"\n  sync_interval: always\n}}\n")
        out = subprocess.run([binary, "-t", "-c", config], capture_output=True, text=True, check=False)
    if out.returncode == 0:
        return True, ""
    message = (out.stderr or out.stdout).strip()
    version = nats_version()
    if 'unknown field "sync_interval"' in message:
        return False, f"nats-server {version} has no sync_interval setting"
    return False, f"nats-server {version} refuses it: {message.splitlines()[-1] if message else 'config test failed'}"


def stop_all() -> None:
    """Stops every server still running (after an error or Ctrl-C)."""
    for server in list(_RUNNING):  # each stop() removes its server from the list
        with contextlib.suppress(Exception):
            server.stop()
