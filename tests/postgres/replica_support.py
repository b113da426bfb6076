"""What the multi-replica tests share: three real `taskq serve` processes on one PostgreSQL
database, clients and workers running against them, and a Jepsen-style total-queue check.

`Replicas` starts the servers (subprocesses, each logging to a file in the test's directory),
kills, stops and restarts them, asks their health and finds which one holds the housekeeping
leadership (the `taskq_leader` row names the holder's process id).

`TotalQueue` is Jepsen's total-queue checker: every create attempted and every create
acknowledged, every delivery to a worker; at the end, an acknowledged task never delivered is
*lost*, a delivered task nobody tried to create is *unexpected*, a task delivered more than once
is *duplicated* (at-least-once delivery allows that, within bounds the tests state).

`Producer` creates named tasks through the real client; `WorkerThreads` runs the real push and
pull workers in threads; `StatusRecorder` records the gRPC status of every attempt a client
makes (its retries included), and `ClientLog` what the workers log about failed streams and
leases, so that tests can say which errors clients saw. `DatabaseLink` is a TCP proxy between
one replica and PostgreSQL that can be cut, to make the database unreachable for that replica
alone.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import grpc
import psycopg
from grpc_health.v1 import health_pb2, health_pb2_grpc

from processes import ServerProcess
from taskq.client import Client, TaskqError
from taskq.client.channel import create_channel
from taskq.v1 import task_pb2

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
#: The leadership whose holder runs the reaper, janitor and purger (core/engine.py).
HOUSEKEEPING = "housekeeping"


def eventually(condition: Callable[[], Any], timeout: float, message: str, interval: float = 0.05) -> Any:
    """Polls `condition` until it returns something true, and returns that; fails after
    `timeout` seconds with `message`."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{message} (within {timeout:.0f} s)")
        time.sleep(interval)


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) the process has used so far, from /proc."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# The servers ------------------------------------------------------------------------------


class Replicas:
    """`count` `taskq serve` processes on the database `dsn`, each on a port of its own.

    `extra` arguments go to every server; `per_replica[i]` (a list of arguments) to server i
    only. Each server logs to `directory/replica-<i>.log` (appended to across restarts).
    """

    def __init__(self, directory: Path, dsn: str, count: int = 3, extra: Sequence[str] = (),
                 per_replica: dict[int, Sequence[str]] | None = None) -> None:
        self.directory = directory
        self.dsn = dsn
        self.extra = list(extra)
        self.per_replica = dict(per_replica or {})
        self.servers: list[ServerProcess | None] = [None] * count
        self.addresses: list[str] = [""] * count
        failures: list[BaseException] = []

        def start(index: int) -> None:
            try:
                self.start(index)
            except BaseException as error:  # reported below, on the test's thread
                failures.append(error)

        threads = [threading.Thread(target=start, args=(index,)) for index in range(count)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if failures:
            self.close()
            raise failures[0]
        for index in range(count):
            self.wait_serving(index)

    def __len__(self) -> int:
        return len(self.servers)

    def log_path(self, index: int) -> Path:
        return self.directory / f"replica-{index}.log"

    def start(self, index: int) -> ServerProcess:
        """Starts server `index` (again, on its previous address if it had one)."""
        listen = ["--listen", self.addresses[index]] if self.addresses[index] else []
        server = ServerProcess(
            self.directory / f"unused-data-{index}", "--database", self.dsn, *self.extra,
            *self.per_replica.get(index, ()), *listen, log_path=self.log_path(index),
        )
        self.servers[index] = server
        self.addresses[index] = server.address
        return server

    def server(self, index: int) -> ServerProcess:
        server = self.servers[index]
        assert server is not None, f"replica {index} is not running"
        return server

    def pid(self, index: int) -> int:
        return self.server(index).process.pid

    def alive(self) -> list[int]:
        return [index for index, server in enumerate(self.servers) if server is not None]

    def kill(self, index: int) -> None:
        """kill -9: no drain, no resignation, connections dropped as they are."""
        server = self.server(index)
        server.process.send_signal(signal.SIGKILL)
        server.process.wait(timeout=30)
        server.channel.close()
        self.servers[index] = None

    def stop(self, index: int) -> int:
        """SIGTERM: drains and exits; returns the exit status."""
        status = self.server(index).stop(signal.SIGTERM)
        self.servers[index] = None
        return status

    def restart(self, index: int) -> None:
        """A graceful stop, then a start on the same address; returns once it serves."""
        status = self.stop(index)
        assert status == 0, f"replica {index} exited with {status} on SIGTERM"
        self.start(index)
        self.wait_serving(index)

    def health(self, index: int, service: str = "") -> int | None:
        """The server's health status for `service`, or None when it does not answer."""
        try:
            stub = health_pb2_grpc.HealthStub(self.server(index).channel)
            return stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=2).status
        except grpc.RpcError:
            return None

    def wait_serving(self, index: int, timeout: float = 30) -> None:
        eventually(lambda: self.health(index) == SERVING, timeout, f"replica {index} does not serve")

    def leader(self) -> int | None:
        """The index of the running replica that holds the housekeeping leadership now (its
        row names the holder `host-pid-random` and has not expired), or None."""
        with psycopg.connect(self.dsn, connect_timeout=5) as conn:
            row = conn.execute(
                "SELECT holder FROM taskq_leader WHERE name = %s AND expires_at > now()", (HOUSEKEEPING,)
            ).fetchone()
        if row is None:
            return None
        pid = int(row[0].rsplit("-", 2)[1])
        return next((index for index in self.alive() if self.pid(index) == pid), None)

    def wait_leader(self, timeout: float = 30) -> int:
        """The index of the leader, once there is one among the running replicas."""
        found: list[int] = []

        def led() -> bool:
            index = self.leader()
            if index is not None:
                found.append(index)
            return index is not None

        eventually(led, timeout, "no running replica leads the housekeeping", interval=0.1)
        return found[-1]

    def client(self, index: int, **settings: Any) -> Client:
        return Client(self.addresses[index], **settings)

    def close(self) -> None:
        for index in self.alive():
            server = self.server(index)
            server.process.send_signal(signal.SIGTERM)
            try:
                server.process.wait(timeout=20)
            except Exception:
                server.process.kill()
                server.process.wait(timeout=10)
            server.channel.close()
            self.servers[index] = None

    def log_tails(self, lines: int = 30) -> str:
        """The end of every server's log, for the report of a failed test."""
        parts = []
        for index in range(len(self.servers)):
            path = self.log_path(index)
            text = path.read_text().splitlines()[-lines:] if path.exists() else []
            parts.append(f"--- replica {index} ({path}) ---\n" + "\n".join(text))
        return "\n".join(parts)


class HealthWatch(threading.Thread):
    """Polls every replica's health every `interval` seconds until stopped; `changes` lists
    (seconds since the start, replica, status) each time a replica's answer changes (None: it
    did not answer)."""

    def __init__(self, replicas: Replicas, interval: float = 0.1) -> None:
        super().__init__(daemon=True, name="health-watch")
        self.replicas = replicas
        self.interval = interval
        self.changes: list[tuple[float, int, int | None]] = []
        self._stopping = threading.Event()
        self._began = time.monotonic()

    def run(self) -> None:
        last: dict[int, int | None] = {}
        while not self._stopping.is_set():
            for index in self.replicas.alive():
                status = self.replicas.health(index)
                if last.get(index, SERVING) != status:
                    self.changes.append((time.monotonic() - self._began, index, status))
                last[index] = status
            self._stopping.wait(self.interval)

    def stop(self) -> None:
        self._stopping.set()
        self.join(timeout=10)

    def out_of_service(self) -> set[int]:
        """The replicas seen NOT_SERVING at some point."""
        return {index for _, index, status in self.changes if status == NOT_SERVING}


# The total-queue check --------------------------------------------------------------------


@dataclasses.dataclass
class Verdict:
    attempted: int
    acknowledged: int
    #: Acknowledged creates delivered at least once.
    ok: int
    #: Acknowledged creates never delivered.
    lost: set[str]
    #: Deliveries of tasks nobody tried to create.
    unexpected: set[str]
    #: Tasks delivered more than once: name -> deliveries.
    duplicated: dict[str, int]
    #: Creates whose answer was lost (not acknowledged) but whose task was delivered.
    recovered: int

    def summary(self) -> str:
        return (f"attempted {self.attempted}, acknowledged {self.acknowledged}, ok {self.ok}, lost {len(self.lost)}, "
                f"unexpected {len(self.unexpected)}, duplicated {len(self.duplicated)} "
                f"({sum(self.duplicated.values()) - len(self.duplicated)} extra deliveries), recovered {self.recovered}")


class TotalQueue:
    """Jepsen's total-queue check (see the module docstring). Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.attempted: set[str] = set()
        self.acknowledged: set[str] = set()
        #: (task name, replica index of the worker it was delivered to, the task's attempt
        #: count then), one per delivery.
        self.deliveries: list[tuple[str, int, int]] = []
        self._waiting: dict[int, threading.Event] = {}

    def attempting(self, names: Iterable[str]) -> None:
        with self._lock:
            self.attempted.update(names)

    def acknowledge(self, names: Iterable[str]) -> None:
        with self._lock:
            self.acknowledged.update(names)

    def delivered(self, name: str, replica: int, attempt: int = 1) -> None:
        with self._lock:
            self.deliveries.append((name, replica, attempt))
            waiting = self._waiting.pop(replica, None)
        if waiting is not None:
            waiting.set()

    def wait_delivery(self, replica: int, timeout: float) -> None:
        """Returns as soon as the next task is delivered to `replica`'s worker (whose handler
        then holds it for its work time)."""
        with self._lock:
            event = self._waiting.setdefault(replica, threading.Event())
        assert event.wait(timeout), f"no task was delivered to replica {replica}"

    def delivered_to(self, replica: int) -> set[str]:
        with self._lock:
            return {name for name, where, _ in self.deliveries if where == replica}

    def redelivered(self) -> int:
        """Deliveries of a task whose earlier attempt did not end in an acknowledgement."""
        with self._lock:
            return sum(1 for _, _, attempt in self.deliveries if attempt > 1)

    def verdict(self) -> Verdict:
        with self._lock:
            counts = collections.Counter(name for name, _, _ in self.deliveries)
            delivered = set(counts)
            return Verdict(
                attempted=len(self.attempted),
                acknowledged=len(self.acknowledged),
                ok=len(self.acknowledged & delivered),
                lost=self.acknowledged - delivered,
                unexpected=delivered - self.attempted,
                duplicated={name: count for name, count in counts.items() if count > 1},
                recovered=len((delivered & self.attempted) - self.acknowledged),
            )


# Clients ------------------------------------------------------------------------------------


class StatusRecorder(grpc.UnaryUnaryClientInterceptor):
    """Records the status code of every unary call made through its channel: each attempt of
    a call a Client retries is a call of its own here."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.codes: collections.Counter[grpc.StatusCode] = collections.Counter()
        #: "Method CODE: details" of every call that did not end OK.
        self.failures: list[str] = []

    def intercept_unary_unary(self, continuation, client_call_details, request):
        outcome = continuation(client_call_details, request)
        code = outcome.code()
        with self._lock:
            self.codes[code] += 1
            if code != grpc.StatusCode.OK:
                method = client_call_details.method
                method = method.decode() if isinstance(method, bytes) else method
                self.failures.append(f"{method.rsplit('/', 1)[-1]} {code.name}: {outcome.details()}")
        return outcome

    def unexpected(self, allowed: Iterable[grpc.StatusCode] = (grpc.StatusCode.UNAVAILABLE,)) -> list[str]:
        """The failures whose code is not one of `allowed`."""
        names = {code.name for code in allowed}
        with self._lock:
            return [failure for failure in self.failures if failure.split(" ", 2)[1].rstrip(":") not in names]


def recorded_client(target: str, recorder: StatusRecorder, *, options: Sequence[tuple[str, Any]] = (),
                    **settings: Any) -> tuple[Client, grpc.Channel]:
    """A Client whose every call attempt `recorder` records; returns it and the channel to
    close after it (the client does not own an intercepted channel)."""
    channel = create_channel(target, options=options)
    client = Client(channel=grpc.intercept_channel(channel, recorder), **settings)
    return client, channel


class ClientLog(logging.Handler):
    """What the workers log about failures: the Worker's "stream on Q ended (CODE: details)"
    (`stream_ends` holds the "CODE: details" part) and the PullWorker's warnings (`pull_failures`
    holds the class name and text of the error each one carries)."""

    LOGGERS = ("taskq.worker", "taskq.pull")

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self._records_lock = threading.Lock()
        self.stream_ends: list[str] = []
        self.pull_failures: list[tuple[str, str]] = []
        for name in self.LOGGERS:
            logging.getLogger(name).addHandler(self)

    def emit(self, record: logging.LogRecord) -> None:
        args = record.args if isinstance(record.args, tuple) else ()
        with self._records_lock:
            if record.name == "taskq.worker" and str(record.msg).startswith("stream on"):
                self.stream_ends.append(str(args[1]))
            elif record.name == "taskq.pull":
                error = next((arg for arg in args if isinstance(arg, BaseException)), None)
                if error is not None:
                    self.pull_failures.append((type(error).__name__, record.getMessage()))

    def close(self) -> None:
        for name in self.LOGGERS:
            logging.getLogger(name).removeHandler(self)
        super().close()

    def unexpected(self, allowed_pull_errors: Iterable[str] = ("Unavailable",),
                   allowed_stream_ends: tuple[str, ...] = ("UNAVAILABLE",)) -> list[str]:
        """Streams whose end ("CODE: details") starts with none of `allowed_stream_ends`, and
        pull-worker failures whose error is not one of `allowed_pull_errors` (client error class
        names)."""
        allowed = set(allowed_pull_errors)
        with self._records_lock:
            odd = [f"stream ended: {end}" for end in self.stream_ends if not end.startswith(allowed_stream_ends)]
            odd += [f"pull worker: {kind}: {text}" for kind, text in self.pull_failures if kind not in allowed]
            return odd


class Producer(threading.Thread):
    """Creates named tasks (`<prefix>-<n>`, payload = name) in batches through `client` until
    stopped, recording each attempt and each acknowledged create in `history`. What the client
    raises is kept in `errors`; `stop_on_error` ends the thread at the first one (a producer
    whose replica was killed)."""

    def __init__(self, client: Client, queue: str, history: TotalQueue, prefix: str, *, batch: int = 5,
                 pause: float = 0.05, stop_on_error: bool = False) -> None:
        super().__init__(daemon=True, name=f"producer-{prefix}")
        self.client = client
        self.queue = queue
        self.history = history
        self.prefix = prefix
        self.batch = batch
        self.pause = pause
        self.stop_on_error = stop_on_error
        self.stopping = threading.Event()
        self.errors: list[str] = []
        self.created = 0

    def run(self) -> None:
        number = 0
        while not self.stopping.is_set():
            ids = [f"{self.prefix}-{number + offset}" for offset in range(self.batch)]
            number += self.batch
            names = [f"queues/{self.queue}/tasks/{task_id}" for task_id in ids]
            self.history.attempting(names)
            try:
                results = self.client.create_tasks(self.queue, [{"name": task_id, "payload": task_id} for task_id in ids])
            except TaskqError as error:
                self.errors.append(f"{type(error).__name__}: {error}")
                if self.stop_on_error:
                    return
                continue
            done = [name for name, result in zip(names, results) if isinstance(result, task_pb2.Task)]
            self.errors += [f"{type(result).__name__}: {result}" for result in results if not isinstance(result, task_pb2.Task)]
            self.history.acknowledge(done)
            self.created += len(done)
            self.stopping.wait(self.pause)

    def stop(self) -> None:
        self.stopping.set()
        self.join(timeout=60)
        assert not self.is_alive(), f"producer {self.prefix} did not stop"


class WorkerThreads:
    """Push `Worker`s and `PullWorker`s, each running in a thread of its own until stopped."""

    def __init__(self) -> None:
        self._running: list[tuple[Any, threading.Thread, list[BaseException]]] = []

    def start(self, worker: Any) -> Any:
        errors: list[BaseException] = []

        def run() -> None:
            try:
                worker.run(handle_signals=False)
            except BaseException as error:  # reported by errors()
                errors.append(error)

        thread = threading.Thread(target=run, daemon=True, name=f"worker-{len(self._running)}")
        thread.start()
        self._running.append((worker, thread, errors))
        return worker

    def stop(self, worker: Any, grace_period: float = 0) -> None:
        for running, thread, _ in self._running:
            if running is worker:
                running.stop(grace_period=grace_period)
                thread.join(timeout=30)
                assert not thread.is_alive(), "a worker did not stop"

    def stop_all(self, grace_period: float = 5) -> None:
        for worker, _, _ in self._running:
            worker.stop(grace_period=grace_period)
        for _, thread, _ in self._running:
            thread.join(timeout=30)

    def errors(self) -> list[BaseException]:
        """What the workers' run() raised (a failure no retry could cure)."""
        return [error for _, _, errors in self._running for error in errors]


def recording_handler(history: TotalQueue, replica: int, work_s: float = 0.0) -> Callable[[task_pb2.Task], None]:
    """A worker handler that records each delivery as made to `replica`, then works `work_s`."""

    def handle(task: task_pb2.Task) -> None:
        history.delivered(task.name, replica, task.attempt_count)
        if work_s:
            time.sleep(work_s)

    return handle


def queue_drained(client: Client, *queues: str) -> bool:
    """Whether every task of the queues is gone (acknowledged)."""
    return all(client.get_queue_stats(queue).tasks_count == 0 for queue in queues)


# The database link ------------------------------------------------------------------------


class DatabaseLink:
    """A TCP proxy in front of PostgreSQL for one replica: `dsn(target)` is the connection
    string through it. `cut()` closes every connection through it and closes new ones at once
    (the replica sees the database go away, as after a network partition, but without waiting
    for TCP timeouts); `mend()` lets connections through again."""

    def __init__(self, host: str, port: int) -> None:
        self._target = (host, port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._cut = False
        self._closed = False
        threading.Thread(target=self._accept, daemon=True, name="db-link").start()

    def dsn(self, target_dsn: str) -> str:
        return psycopg.conninfo.make_conninfo(target_dsn, host="127.0.0.1", port=str(self.port))

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                refuse = self._cut or self._closed
            if refuse:
                client.close()
                continue
            try:
                upstream = socket.create_connection(self._target, timeout=5)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._open.update((client, upstream))
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                self._drop(sock)

    def _drop(self, sock: socket.socket) -> None:
        with self._lock:
            self._open.discard(sock)
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        sock.close()

    def cut(self) -> None:
        with self._lock:
            self._cut = True
            sockets = list(self._open)
        for sock in sockets:
            self._drop(sock)

    def mend(self) -> None:
        with self._lock:
            self._cut = False

    def close(self) -> None:
        with self._lock:
            self._closed = True
        self.cut()
        self._listener.close()
