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
        """Creates the queue (taskq), stream and consumer (NATS); beanstalkd tubes need nothing."""
        if self.client == TASKQ_CLIENT:
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
