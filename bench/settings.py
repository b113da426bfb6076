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
)
