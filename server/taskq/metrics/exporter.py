"""GET /metrics on the HTTP port: everything taskq/metrics counts, in Prometheus's text format.

A Metrics object is made with the server (its RPC interceptor must be in place before the
gRPC server exists) and `watch`es the engine before the engine starts: it subscribes to the
engine's events and observes its database. A scrape reads the queues' depths (one read of the
database), forgets the tallies of queues that are gone, measures the database's size when
that is due, then renders every family from memory.
"""

from __future__ import annotations

import importlib.metadata
import logging
from collections.abc import Iterator

from aiohttp import web
from prometheus_client import CollectorRegistry, PlatformCollector, ProcessCollector
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector

from taskq.core.engine import Engine
from taskq.core.errors import TaskqError
from taskq.metrics import queues
from taskq.metrics.rpc import RpcMetrics
from taskq.metrics.storage import StorageMetrics
from taskq.metrics.tasks import TaskMetrics

log = logging.getLogger(__name__)


class Metrics(Collector):
    def __init__(self) -> None:
        self.rpc = RpcMetrics()
        self.tasks = TaskMetrics()
        self.storage: StorageMetrics | None = None
        self._engine: Engine | None = None
        #: The depths read by the scrape being rendered; None when they could not be read.
        self._depths: list[queues.QueueDepth] | None = None
        # A registry of its own: a process may run several servers (the tests do).
        self.registry = CollectorRegistry(auto_describe=False)
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        self.registry.register(self)
        try:
            self._version = importlib.metadata.version("taskq")
        except importlib.metadata.PackageNotFoundError:
            self._version = "unknown"

    def watch(self, engine: Engine) -> None:
        """Counts what `engine` does from now on: call it before engine.start()."""
        self._engine = engine
        engine.events.subscribe(self.tasks)
        self.storage = StorageMetrics(single_writer=engine.db.exclusive)
        engine.db.observer = self.storage

    async def render(self, accept: str = "") -> tuple[bytes, str]:
        """The scrape's body and content type: the text format Prometheus asks for in its
        Accept header (OpenMetrics, or the classic text format by default)."""
        engine = self._engine
        depths = None
        if engine is not None:
            mark = self.tasks.mark()
            try:
                depths = await engine.db.read(queues.read_depths)
            except TaskqError as error:  # the storage failed: the rest is still worth a scrape
                log.warning("metrics: the queues could not be read: %s", error)
            else:
                self.tasks.settle({depth.queue.queue_id for depth in depths}, mark)
            if self.storage is not None:
                await self.storage.measure(engine.db)
        # Rendered without awaiting: every family comes from the same moment.
        self._depths = depths
        encode, content_type = choose_encoder(accept)
        return encode(self.registry), content_type

    async def handle(self, request: web.Request) -> web.Response:
        body, content_type = await self.render(request.headers.get("Accept", ""))
        return web.Response(body=body, headers={"Content-Type": content_type})

    def collect(self) -> Iterator[Metric]:
        engine = self._engine
        if engine is not None:
            kind = "rocksdb" if engine.db.exclusive else "postgresql"
            info = GaugeMetricFamily("taskq_build_info", "1, with the server's version and storage engine as labels.",
                                     labels=["version", "engine"])
            info.add_metric([self._version, kind], 1)
            yield info
            yield GaugeMetricFamily("taskq_ready", "1 while the server serves (health SERVING): its storage works and "
                                    "the disk is above its reserve; else 0.", value=1 if engine.in_service else 0)
            yield GaugeMetricFamily(
                "taskq_housekeeping_leader",
                "1 where this server runs the reaper, janitor and purger (always with RocksDB; one PostgreSQL "
                "replica at a time), else 0.", value=1 if engine.db.exclusive or engine.leading else 0,
            )
            if self._depths is not None:
                yield from queues.collect(self._depths, engine.clock.now_us())
            if self.storage is not None:
                yield from self.storage.collect()
        yield from self.tasks.collect()
        yield from self.rpc.collect()
