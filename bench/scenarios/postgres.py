"""(g) push end to end and (h) pull on PostgreSQL: taskq with one and two replicas sharing one
database, beside PgQueuer and Procrastinate (Python queues that live in PostgreSQL), all on the
same throwaway cluster (bench.pgcluster) in the same run.

Every system run gets a fresh database on that cluster, starts from a CHECKPOINT and drops its
database at the end; the cluster keeps PostgreSQL's defaults (fsync on, synchronous_commit on)
for everyone. CPU is measured from /proc for every process involved: the taskq servers, the
whole cluster (postmaster, backends, WAL writer, checkpointer, autovacuum; exited backends
included) and each client process.

(g) is (a) on PostgreSQL: P producer and P worker processes, create -> deliver -> ack, for a
warm-up and a measured window, with (a)'s gate (5,000 waiting tasks; quick: 500), then a drain
of what is left (CPU per task is the whole run's over tasks all created and handled). taskq: `Client.create_task` from
32 threads (default batching) and the push `Worker`; client process i talks to replica i mod n
(producers) and (i + 1) mod n (workers), so with two replicas tasks created on one are also
delivered by the other. PgQueuer: `Queries.enqueue` from 32 coroutines, `QueueManager` workers.
Procrastinate: `defer_async` from 32 coroutines, `run_worker_async` workers.

(h) is (b) on PostgreSQL: a stored backlog (loaded, ANALYZEd, then a CHECKPOINT) drained by pull
processes. taskq: LeaseTasks(100) + BatchDeleteTasks (and `PullWorker`); PgQueuer:
`dequeue(100)` + `log_jobs`; Procrastinate: `fetch_job` + `finish_job` (no batch fetch),
several coroutines per process.
"""

from __future__ import annotations

import bisect
import contextlib
import time

from bench.common import latency_summary, loadavg, machine_busy_seconds, merge_records
from bench.pgcluster import PgCluster
from bench.procs import Team
from bench.settings import Scale
from bench.systems import PgSystem


def _cpu(servers) -> float:
    return sum(server.cpu_seconds() for server in servers)


def _per_task(seconds: float, tasks: int) -> float | None:
    return round(seconds * 1e6 / tasks, 1) if tasks else None


def _shares(parts: dict[str, float]) -> dict[str, float | None]:
    total = sum(parts.values())
    return {name: round(value / total, 3) if total else None for name, value in parts.items()}


def _outside(machine_cpu: float, cpu: dict[str, float]) -> dict:
    """The machine's busy CPU during the run that none of the run's processes used (the
    harness itself, the kernel's work for the run, or other programs: a busy machine)."""
    measured = sum(cpu.values())
    outside = max(0.0, machine_cpu - measured)
    return {"machine_busy_s": round(machine_cpu, 2), "outside_s": round(outside, 2),
            "outside_share": round(outside / machine_cpu, 3) if machine_cpu else None}


def _db_work(activity: dict[str, int], tasks: int) -> dict:
    """The database's work per task: commits, rows written, WAL records, bytes and fsyncs."""
    if not activity or not tasks:
        return {}
    per = {f"{key}_per_task": round(value / tasks, 3) for key, value in activity.items()}
    rows = activity["rows_inserted"] + activity["rows_updated"] + activity["rows_deleted"]
    return {"totals": activity, **per, "rows_written_per_task": round(rows / tasks, 2)}


class _Run(contextlib.AbstractContextManager):
    """One system run: a fresh database, the system's servers on it; both gone at exit."""

    def __init__(self, system: PgSystem, cluster: PgCluster) -> None:
        self.system = system
        self.cluster = cluster
        self.dsn = cluster.new_database()
        self.servers: list = []
        self._activity: dict[str, int] | None = None
        #: The database's work between `measure()` and the end of the run (servers stopped).
        self.activity: dict[str, int] = {}

    def __enter__(self) -> _Run:
        try:
            self.servers = self.system.start(self.dsn)
        except BaseException:
            self.cluster.drop(self.dsn)
            raise
        return self

    def measure(self) -> None:
        """From a checkpoint: the database's work is counted from here."""
        self.cluster.checkpoint()
        self._activity = self.cluster.activity(self.dsn)

    def __exit__(self, *exc_info: object) -> None:
        for server in self.servers:
            server.stop()
        with contextlib.suppress(Exception):
            if self._activity is not None and exc_info[0] is None:
                self.cluster.wait_idle(self.dsn)
                end = self.cluster.activity(self.dsn)
                self.activity = {key: end[key] - self._activity[key] for key in end}
        with contextlib.suppress(Exception):
            self.cluster.drop(self.dsn)

    def spec(self, queue: str, index: int, **extra) -> dict:
        return {**self.system.spec(self.servers, self.dsn, queue, index), **extra}


def _worker_extra(system: PgSystem, scale: Scale) -> dict:
    if system.is_taskq:
        return {"concurrency": scale.worker_concurrency}
    if system.key == "pgqueuer":
        return {"batch": scale.pgqueuer_batch}
    return {"concurrency": scale.procrastinate_concurrency}


def run_pg_push(system: PgSystem, cluster: PgCluster, producers: int, scale: Scale, queue: str) -> dict:
    """Producers create for warm-up + duration; then the workers drain what is left, so the CPU
    of the run (warm-up, window and drain) is divided by tasks that were all created, delivered
    and acknowledged. Throughput and latency are the window's."""
    run_for = scale.warmup_s + scale.duration_s
    with _Run(system, cluster) as run:
        system.prepare(run.servers, run.dsn, queue)
        run.measure()
        load_before = loadavg()
        with Team(backlog_limit=scale.pg_backlog_limit) as team:
            for i in range(producers):
                team.add("worker", system.client, "consume",
                         run.spec(queue, i + 1, run_for=run_for, drain_s=scale.pg_drain_s,
                                  **_worker_extra(system, scale)))
            for i in range(producers):
                team.add("producer", system.client, "produce",
                         run.spec(queue, i, run_for=run_for, concurrency=scale.producer_concurrency,
                                  pool_size=scale.pg_pool_size))
            team.start()
            servers_before, db_before = _cpu(run.servers), cluster.cpu_seconds()
            machine_before = machine_busy_seconds()
            t0 = team.release()
            created = sum(r["created"] for r in team.wait_role("producer", timeout=run_for + 120))
            drain_started = time.time()
            while team.consumed() < created and time.time() < t0 + run_for + scale.pg_drain_s:
                time.sleep(0.01)
            drain_s = time.time() - drain_started
            team.request_stop()
            results = team.results(timeout=scale.pg_drain_s + 120)
            servers_cpu, db_cpu = _cpu(run.servers) - servers_before, cluster.cpu_seconds() - db_before
            machine_cpu = machine_busy_seconds() - machine_before
            memory = [server.memory() for server in run.servers]
    entries, latencies, _ = merge_records(results["worker"])
    db_work = _db_work(run.activity, len(entries))
    start, end = t0 + scale.warmup_s, t0 + run_for
    first, last = bisect.bisect_left(entries, start), bisect.bisect_left(entries, end)
    handled = len(entries)
    producers_cpu = sum(r["cpu_s"] for r in results["producer"])
    workers_cpu = sum(r["cpu_s"] for r in results["worker"])
    cpu = {"taskq": servers_cpu, "database": db_cpu, "producers": producers_cpu, "workers": workers_cpu}
    return {
        "throughput_per_s": round((last - first) / scale.duration_s, 1),
        "latency": latency_summary(latencies[first:last]),
        "backlog_limit": scale.pg_backlog_limit,
        "created": created,
        "handled_total": handled,
        #: Whether every task created was handled before the CPU was read (else per-task CPU
        #: figures are per task handled, and overstate).
        "drained": handled >= created,
        "drain_s": round(drain_s, 2),
        "cpu_s": {name: round(value, 2) for name, value in cpu.items()},
        "cpu_us_per_task": {name: _per_task(value, handled) for name, value in cpu.items()},
        "cpu_share": _shares(cpu),
        "server_cpu_us_per_task": _per_task(servers_cpu, handled) if system.replicas else None,
        "db_cpu_us_per_task": _per_task(db_cpu, handled),
        "total_cpu_us_per_task": _per_task(sum(cpu.values()), handled),
        "server_memory": memory,
        "db_work": db_work,
        "outside_cpu": _outside(machine_cpu, cpu),
        "loadavg_before": load_before,
    }


def scenario_g(systems: list[PgSystem], scale: Scale, log) -> list[dict]:
    rows: list[dict] = []
    if not systems:
        return rows
    with PgCluster() as cluster:
        settings = cluster.settings()
        log(f"  PostgreSQL {cluster.version()}: fsync {settings.get('fsync')}, synchronous_commit "
            f"{settings.get('synchronous_commit')} for every system; a fresh database per run")
        for producers in scale.pg_producers:
            case = f"P={producers}"
            for system in systems:
                row = run_pg_push(system, cluster, producers, scale, queue=f"push-p{producers}")
                rows.append({"scenario": "g", "case": case, "system": system.key, "label": system.label,
                             "replicas": system.replicas, "durability": system.durability, "sync": system.sync,
                             "postgres": settings, **row})
                per = row["cpu_us_per_task"]
                servers = f"taskq {per['taskq']}, " if system.replicas else ""
                log(f"  (g) {case} {system.label}: {row['throughput_per_s']:,.0f} tasks/s, "
                    f"p50 {row['latency']['p50_ms']} ms, p99 {row['latency']['p99_ms']} ms; CPU µs/task: "
                    f"{servers}database {per['database']}, producers {per['producers']}, workers {per['workers']}"
                    + ("" if row["drained"] else f" (NOT drained: {row['handled_total']:,}/{row['created']:,})"))
    return rows


def _load(run: _Run, queue: str, count: int, processes: int = 2) -> dict:
    with Team() as team:
        shares = [count // processes + (1 if i < count % processes else 0) for i in range(processes)]
        for i, share in enumerate(shares):
            team.add("loader", run.system.client, "load", run.spec(queue, i, count=share))
        team.start()
        t0 = team.release(delay=0.05)
        results = team.results(timeout=3600)
    elapsed = max(r["finished"] for r in results["loader"]) - t0
    return {"loaded": count, "load_s": round(elapsed, 2), "load_per_s": round(count / elapsed, 1)}


def run_pg_pull(system: PgSystem, function: str, cluster: PgCluster, scale: Scale, queue: str) -> dict:
    count = scale.pg_pull_tasks
    with _Run(system, cluster) as run:
        system.prepare(run.servers, run.dsn, queue, pull=True)
        loading = _load(run, queue, count)
        cluster.analyze(run.dsn)
        run.measure()
        load_before = loadavg()
        with Team() as team:
            for i in range(scale.pg_pull_processes):
                extra = {} if system.is_taskq else {"concurrency": scale.procrastinate_pull_concurrency}
                team.add("puller", system.client, function, run.spec(queue, i, **extra))
            team.start()
            servers_before, db_before = _cpu(run.servers), cluster.cpu_seconds()
            machine_before = machine_busy_seconds()
            t0 = team.release()
            results = team.results(timeout=3600)
            servers_cpu, db_cpu = _cpu(run.servers) - servers_before, cluster.cpu_seconds() - db_before
            machine_cpu = machine_busy_seconds() - machine_before
    pullers = results["puller"]
    deleted = sum(r["deleted"] for r in pullers)
    db_work = _db_work(run.activity, deleted)
    elapsed = max(r["finished"] for r in pullers) - t0
    clients_cpu = sum(r["cpu_s"] for r in pullers)
    cpu = {"taskq": servers_cpu, "database": db_cpu, "clients": clients_cpu}
    return {
        "throughput_per_s": round(deleted / elapsed, 1) if elapsed > 0 else None,
        "deleted": deleted, "stored": count, "elapsed_s": round(elapsed, 2),
        "cpu_s": {name: round(value, 2) for name, value in cpu.items()},
        "cpu_us_per_task": {name: _per_task(value, deleted) for name, value in cpu.items()},
        "cpu_share": _shares(cpu),
        "server_cpu_us_per_task": _per_task(servers_cpu, deleted) if system.replicas else None,
        "db_cpu_us_per_task": _per_task(db_cpu, deleted),
        "total_cpu_us_per_task": _per_task(sum(cpu.values()), deleted),
        "db_work": db_work,
        "outside_cpu": _outside(machine_cpu, cpu),
        "loadavg_before": load_before, **loading,
    }


def scenario_h(cases: list[tuple[PgSystem, str]], scale: Scale, log) -> list[dict]:
    """`cases`: (system, client function) pairs, e.g. (taskq ×1, "pull"), (taskq ×1, "pull_worker")."""
    rows: list[dict] = []
    if not cases:
        return rows
    case = f"{scale.pg_pull_tasks:,} tasks, {scale.pg_pull_processes} processes"
    with PgCluster() as cluster:
        settings = cluster.settings()
        for system, function in cases:
            worker = function == "pull_worker"
            label = system.label + (" PullWorker" if worker else "")
            row = run_pg_pull(system, function, cluster, scale, queue="pull")
            rows.append({"scenario": "h", "case": case, "system": system.key + ("-pullworker" if worker else ""),
                         "label": label, "replicas": system.replicas, "durability": system.durability,
                         "sync": system.sync, "postgres": settings, **row})
            per = row["cpu_us_per_task"]
            servers = f"taskq {per['taskq']}, " if system.replicas else ""
            log(f"  (h) {label}: {row['throughput_per_s']:,.0f} tasks/s ({row['deleted']:,}/{row['stored']:,} "
                f"deleted; loaded at {row['load_per_s']:,.0f}/s); CPU µs/task: {servers}"
                f"database {per['database']}, clients {per['clients']}")
    return rows
