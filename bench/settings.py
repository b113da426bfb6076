"""How big each scenario is: the full run (the issue's figures) and the quick one (CI)."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass
class Scale:
    name: str
    # (a) push end to end
    push_producers: tuple[int, ...] = (1, 4)
    warmup_s: float = 2.0
    duration_s: float = 10.0
    #: Tasks created but not yet handled, at most (producers wait beyond it).
    backlog_limit: int = 5_000
    #: Threads (taskq) / coroutines (NATS) per producer process, each with one create in flight.
    producer_concurrency: int = 32
    #: taskq producers: "threads" (`Client.create_task` from `producer_concurrency` threads) or
    #: "async" (`AsyncClient.create_task` from as many coroutines, like the NATS producers).
    taskq_producer: str = "threads"
    #: Handlers running at once in a taskq Worker (its max_outstanding is twice this).
    worker_concurrency: int = 64
    #: Messages per NATS fetch.
    nats_fetch_batch: int = 100
    # (b) pull
    pull_tasks: int = 200_000
    pull_processes: int = 4
    # (c) one at a time
    latency_rate: float = 200.0
    latency_count: int = 3_000
    latency_warmup_s: float = 0.5
    # (d) scheduled
    scheduled_tasks: int = 100_000
    scheduled_spread_s: float = 10.0
    scheduled_lead_s: float = 10.0
    scheduled_workers: int = 4
    # (e) backlog
    backlog_sizes: tuple[int, ...] = (1_000_000, 10_000_000)
    beanstalk_backlog: int = 1_000_000
    # (f) rate limit
    rate: float = 200.0
    rate_seconds: float = 20.0
    # (g) push end to end and (h) pull on PostgreSQL (warm-up, duration, gate and the taskq
    # producer and worker settings are (a)'s)
    pg_producers: tuple[int, ...] = (1, 4)
    #: (a)'s gate, for (g): producers wait while more tasks than this wait.
    pg_backlog_limit: int = 5_000
    #: After the window, workers drain what was created for at most this long (seconds).
    pg_drain_s: float = 60.0
    #: Connections per PgQueuer / Procrastinate producer process (32 coroutines share them).
    pg_pool_size: int = 10
    #: Jobs per PgQueuer dequeue in its QueueManager (its default is 10).
    pgqueuer_batch: int = 10
    #: Jobs a Procrastinate worker process runs at once (its default is 1).
    procrastinate_concurrency: int = 16
    pg_pull_tasks: int = 30_000
    pg_pull_processes: int = 4
    #: fetch_job + finish_job loops per Procrastinate pull process (it has no batch fetch).
    procrastinate_pull_concurrency: int = 8
    # (i) HTTP push end to end beside the stream path (warm-up, duration, producer and stream
    # worker settings are (a)'s)
    http_producers: tuple[int, ...] = (1, 4)
    #: (a)'s gate, for (i): producers wait while more tasks than this wait.
    http_backlog_limit: int = 5_000
    #: After the window, the workers receive what is left for at most this long (seconds).
    http_drain_s: float = 60.0


FULL = Scale("full")

QUICK = Scale(
    "quick",
    warmup_s=0.5,
    duration_s=1.5,
    pull_tasks=5_000,
    latency_count=300,
    latency_warmup_s=0.2,
    scheduled_tasks=3_000,
    scheduled_spread_s=2.0,
    scheduled_lead_s=2.0,
    backlog_sizes=(20_000,),
    beanstalk_backlog=20_000,
    rate_seconds=2.0,
    pg_producers=(1,),
    pg_backlog_limit=500,
    pg_drain_s=10.0,
    pg_pull_tasks=2_000,
    pg_pull_processes=2,
    http_producers=(1,),
    http_backlog_limit=500,
    http_drain_s=10.0,
)
