"""(b) pull: a stored backlog drained by 4 processes.

taskq: LeaseTasks(max 100) + BatchDeleteTasks of the leased tasks, in a loop (and, as a second
row, the client's `PullWorker` with batch_size 100); beanstalkd: reserve + delete, one job at a
time (it has no batch). Throughput = tasks deleted / (last process done - start).
"""

from __future__ import annotations

from bench.common import loadavg
from bench.procs import Team
from bench.scenarios.push import skipped
from bench.settings import Scale
from bench.systems import System


def load_backlog(system: System, server, queue: str, count: int, processes: int = 2) -> dict:
    """Stores `count` tasks through the system's own API (BatchCreateTasks / pipelined puts)."""
    with Team() as team:
        shares = [count // processes + (1 if i < count % processes else 0) for i in range(processes)]
        for share in shares:
            team.add("loader", system.client, "load", {"address": server.address, "queue": queue, "count": share})
        team.start()
        t0 = team.release(delay=0.05)
        results = team.results(timeout=3600)
    elapsed = max(r["finished"] for r in results["loader"]) - t0
    return {"loaded": count, "load_s": round(elapsed, 2), "load_per_s": round(count / elapsed, 1)}


def scenario_b(cases: list[tuple[System, str]], scale: Scale, log) -> list[dict]:
    """`cases`: (system, consumer function) pairs, e.g. (taskq, "pull"), (taskq, "pull_worker")."""
    rows = []
    count = scale.pull_tasks
    for system, function in cases:
        case = f"{count:,} tasks, {scale.pull_processes} processes"
        label = system.label + (" PullWorker" if function == "pull_worker" else "")
        if system.unavailable:
            rows.append(skipped("b", case, system, system.unavailable))
            continue
        server = system.make_server().start()
        queue = "pull"
        try:
            if system.is_taskq:
                system.prepare_queue(server, queue, type="pull")
            loading = load_backlog(system, server, queue, count)
            load_before = loadavg()
            with Team() as team:
                for _ in range(scale.pull_processes):
                    team.add("puller", system.client, function, {"address": server.address, "queue": queue})
                team.start()
                cpu_before = server.cpu_seconds()
                t0 = team.release()
                results = team.results(timeout=3600)
                server_cpu = server.cpu_seconds() - cpu_before
                memory = server.memory()
        finally:
            server.stop()
        pullers = results["puller"]
        deleted = sum(r["deleted"] for r in pullers)
        elapsed = max(r["finished"] for r in pullers) - t0
        row = {
            "scenario": "b", "case": case, "system": system.key + ("-pullworker" if function == "pull_worker" else ""),
            "label": label, "durability": system.durability, "sync": system.sync,
            "throughput_per_s": round(deleted / elapsed, 1) if elapsed > 0 else None,
            "deleted": deleted, "stored": count, "elapsed_s": round(elapsed, 2),
            "server_cpu_s": round(server_cpu, 2),
            "server_cpu_us_per_task": round(server_cpu * 1e6 / deleted, 1) if deleted else None,
            "clients_cpu_s": round(sum(r["cpu_s"] for r in pullers), 2),
            "server_memory": memory, "loadavg_before": load_before, **loading,
        }
        rows.append(row)
        log(f"  (b) {label}: {row['throughput_per_s']:,.0f} tasks/s ({deleted:,}/{count:,} deleted; "
            f"loaded at {loading['load_per_s']:,.0f}/s)")
    return rows
