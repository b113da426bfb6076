"""The systems compared: taskq and the peers a user would pick instead, each with its server,
its client module (bench.clients.*) and the durability its acknowledgement means."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable

from bench import peers

TASKQ_CLIENT = "bench.clients.taskq_side"
BEANSTALK_CLIENT = "bench.clients.beanstalk_side"
NATS_CLIENT = "bench.clients.nats_side"
#: taskq's HTTP push (scenario i): taskq producers, the minimal HTTP worker of http_side.
HTTP_CLIENT = "bench.clients.http_side"


@dataclasses.dataclass
class System:
    key: str
    label: str
    client: str
    make_server: Callable[[], peers.ServerProcess]
    #: What an acknowledged write means for this configuration.
    durability: str
    #: The same in a few words, for tables.
    sync: str = ""
    #: Why it cannot run here (None: it can).
    unavailable: str | None = None

    @property
    def is_taskq(self) -> bool:
        return self.client == TASKQ_CLIENT

    def prepare_queue(self, server: peers.ServerProcess, queue: str, **settings) -> None:
        """Creates the queue (taskq; with HTTP push, settings["http_uri"] is its target), stream
        and consumer (NATS); beanstalkd tubes need nothing."""
        if self.client == HTTP_CLIENT:
            # The Queue message itself: works whatever keywords the client's create_queue takes.
            from taskq.client import Client
            from taskq.v1 import http_pb2, queue_pb2

            message = queue_pb2.Queue(name=f"queues/{queue}", type=queue_pb2.QUEUE_TYPE_PUSH,
                                      http_target=http_pb2.HttpTarget(uri=settings["http_uri"]))
            with Client(server.address) as client:
                client.create_queue(message)
        elif self.client == TASKQ_CLIENT:
            from taskq.client import Client

            with Client(server.address) as client:
                client.create_queue(queue, **settings)
        elif self.client == NATS_CLIENT:
            from bench.clients.nats_side import setup

            asyncio.run(setup(server.address, queue))


def taskq(durability: str = "fsync") -> System:
    return System(
        "taskq", "taskq", TASKQ_CLIENT, lambda: peers.TaskqServer("taskq", durability=durability),
        "fsync: every answered create/ack is in the fsynced RocksDB WAL (group commit)",
        "acked = fsynced" if durability == "fsync" else "no fsync",
    )


def taskq_http(durability: str = "fsync") -> System:
    """taskq delivering a push queue's tasks as HTTP requests (scenario i). Loopback must be
    allowed: the SSRF guard refuses non-public targets by default."""
    return System(
        "taskq-http", "taskq HTTP push", HTTP_CLIENT,
        lambda: peers.TaskqServer("taskq-http", durability=durability,
                                  extra_args=["--http-allow-networks", "127.0.0.0/8"]),
        "fsync: every answered create is in the fsynced RocksDB WAL; 2xx answers are recorded as stream acks are",
        "acked = fsynced" if durability == "fsync" else "no fsync",
    )


def beanstalkd_b() -> System:
    return System(
        "beanstalkd-b", "beanstalkd -b", BEANSTALK_CLIENT, lambda: peers.Beanstalkd("beanstalkd -b"),
        "binlog, fsync at most every 50 ms: acknowledged jobs can be lost on power failure",
        "fsync <= every 50 ms",
    )


def beanstalkd_b_f0() -> System:
    return System(
        "beanstalkd-b-f0", "beanstalkd -b -f0", BEANSTALK_CLIENT,
        lambda: peers.Beanstalkd("beanstalkd -b -f0", fsync_ms=0),
        "binlog, fsync after every write",
        "fsync every write",
    )


def nats_file() -> System:
    return System(
        "nats-file", "NATS JetStream file", NATS_CLIENT, lambda: peers.NatsServer("NATS JetStream file"),
        "file storage, default sync (fsync every 2 min): acknowledged messages can be lost on power failure",
        "fsync every 2 min",
    )


def nats_file_sync_always(supported: bool, reason: str) -> System:
    return System(
        "nats-file-sync", "NATS JetStream file sync=always", NATS_CLIENT,
        lambda: peers.NatsServer("NATS JetStream file sync=always", sync_always=True),
        "file storage, sync_interval: always (fsync after every write)",
        "fsync every write",
        unavailable=None if supported else reason,
    )


# PostgreSQL (scenarios g and h) ---------------------------------------------------------------

PGQUEUER_CLIENT = "bench.clients.pgqueuer_side"
PROCRASTINATE_CLIENT = "bench.clients.procrastinate_side"


@dataclasses.dataclass
class PgSystem:
    """A queue on the harness's PostgreSQL cluster: taskq with `replicas` servers sharing one
    database, or a Python library whose clients talk to the database themselves (replicas 0)."""

    key: str
    label: str
    client: str
    #: What an acknowledged write means for this configuration.
    durability: str
    sync: str = "committed, WAL flushed"
    #: taskq servers in front of the database (0: the clients are the queue).
    replicas: int = 0

    @property
    def is_taskq(self) -> bool:
        return self.client == TASKQ_CLIENT

    def start(self, dsn: str) -> list[peers.ServerProcess]:
        """Starts this system's servers on the database (none for the libraries)."""
        servers: list[peers.ServerProcess] = []
        try:
            for index in range(self.replicas):
                servers.append(peers.TaskqServer(f"taskq-pg-{index}", extra_args=["--database", dsn]).start())
        except BaseException:
            for server in servers:
                server.stop()
            raise
        return servers

    def prepare(self, servers: list[peers.ServerProcess], dsn: str, queue: str, *, pull: bool = False) -> None:
        """The queue (taskq, on its first replica: the others see it in the database) or the
        library's schema (its own installer)."""
        from bench.pgcluster import url_of

        if self.is_taskq:
            from taskq.client import Client

            with Client(servers[0].address) as client:
                client.create_queue(queue, **({"type": "pull"} if pull else {}))
        elif self.client == PGQUEUER_CLIENT:
            from bench.clients.pgqueuer_side import setup

            asyncio.run(setup(url_of(dsn)))
        elif self.client == PROCRASTINATE_CLIENT:
            from bench.clients.procrastinate_side import setup

            asyncio.run(setup(dsn))

    def spec(self, servers: list[peers.ServerProcess], dsn: str, queue: str, index: int) -> dict:
        """Where client process `index` connects: a taskq replica (round robin), or the database."""
        from bench.pgcluster import url_of

        if self.is_taskq:
            return {"address": servers[index % len(servers)].address, "queue": queue}
        return {"dsn": dsn, "url": url_of(dsn), "queue": queue}


def taskq_pg(replicas: int) -> PgSystem:
    return PgSystem(
        f"taskq-pg{replicas}", f"taskq ×{replicas} on PostgreSQL", TASKQ_CLIENT,
        "a create or ack is answered once its transaction committed with synchronous_commit on "
        "(push deliveries commit with synchronous_commit off: a delivery lost in a database crash "
        "is only delivered again)",
        replicas=replicas,
    )


def pgqueuer() -> PgSystem:
    return PgSystem(
        "pgqueuer", "PgQueuer", PGQUEUER_CLIENT,
        "enqueue: one committed INSERT; dequeue: a committed UPDATE; a job's completion is buffered "
        "in the worker (up to batch_size jobs or 0.1 s) before its DELETE commits",
    )


def procrastinate() -> PgSystem:
    return PgSystem(
        "procrastinate", "Procrastinate", PROCRASTINATE_CLIENT,
        "defer: one committed INSERT; fetch and finish: one committed statement each",
    )
