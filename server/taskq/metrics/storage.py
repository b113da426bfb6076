"""The database's work: the single writer's commit groups and fsyncs (RocksDB), a PostgreSQL
server's transactions, and the size of the data. An Observer (store/database.py) that the
Database calls; the size is asked for at most every SIZE_EVERY_S (pg_database_size reads every
file of the database)."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric

from taskq.core.errors import TaskqError
from taskq.metrics.histogram import GROUP_SIZE_BUCKETS, STORAGE_BUCKETS, Histogram
from taskq.store.base import StoreError
from taskq.store.database import Database

log = logging.getLogger(__name__)

#: The database's size is measured at most this often (seconds); scrapes in between see the last.
SIZE_EVERY_S = 30.0


class StorageMetrics:
    def __init__(self, single_writer: bool) -> None:
        #: RocksDB (one writer, group commit) or PostgreSQL (concurrent transactions): each
        #: exports its own figures.
        self.single_writer = single_writer
        self.group_sizes = Histogram(GROUP_SIZE_BUCKETS)
        self.fsyncs = Histogram(STORAGE_BUCKETS)
        self.transactions = Histogram(STORAGE_BUCKETS)
        self.conflicts = 0
        self.size: int | None = None
        self._measured = -SIZE_EVERY_S

    # The Observer ---------------------------------------------------------------------------

    def group_committed(self, mutations: int) -> None:
        self.group_sizes.observe(mutations)

    def synced(self, seconds: float) -> None:
        self.fsyncs.observe(seconds)

    def transaction_committed(self, seconds: float, attempts: int) -> None:
        self.transactions.observe(seconds)
        self.conflicts += attempts - 1

    # At scrape time -------------------------------------------------------------------------

    async def measure(self, db: Database) -> None:
        """Measures the database's size if the last measure is older than SIZE_EVERY_S."""
        now = time.monotonic()
        if now - self._measured < SIZE_EVERY_S:
            return
        self._measured = now
        try:
            self.size = await db.size_bytes()
        except (TaskqError, StoreError, OSError) as error:
            log.warning("the database size could not be measured: %s", error)
            self.size = None

    def collect(self) -> Iterator[Metric]:
        if self.single_writer:
            groups = HistogramMetricFamily(
                "taskq_commit_group_size",
                "Mutations per commit group of the single writer (RocksDB): each applied as its own batch, the "
                "group made durable by one fsync.", labels=[],
            )
            groups.add_metric([], self.group_sizes.cumulative(), self.group_sizes.sum)
            yield groups
            fsyncs = HistogramMetricFamily("taskq_wal_fsync_duration_seconds",
                                           "Seconds per fsync of RocksDB's write-ahead log.", labels=[], unit="seconds")
            fsyncs.add_metric([], self.fsyncs.cumulative(), self.fsyncs.sum)
            yield fsyncs
        else:
            transactions = HistogramMetricFamily(
                "taskq_transaction_duration_seconds",
                "Seconds per committed PostgreSQL transaction of this server (every run of it after conflicts "
                "included, and the commit's WAL flush).", labels=[], unit="seconds",
            )
            transactions.add_metric([], self.transactions.cumulative(), self.transactions.sum)
            yield transactions
            yield CounterMetricFamily(
                "taskq_transaction_conflicts_total",
                "Transactions of this server run again after losing a race (serialization failure, deadlock, a "
                "name created twice).", value=self.conflicts,
            )
        if self.size is not None:
            yield GaugeMetricFamily(
                "taskq_database_size_bytes",
                "Bytes of data: RocksDB's SST files and write-ahead log; PostgreSQL's pg_database_size (measured "
                f"at most every {SIZE_EVERY_S:g} s).", value=self.size, unit="bytes",
            )
