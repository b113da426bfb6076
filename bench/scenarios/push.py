"""(a) push end to end and (c) one at a time.

(a) P producer processes and P worker processes (P = 1 and 4) share the machine with the
server for warm-up + duration seconds; throughput counts handler entries within the measured
window (after the warm-up), latency is create-call start -> handler entry of those tasks.
Producers pause while more than `backlog_limit` tasks wait, so the run is a steady state.

(c) one producer creates one task at a time (no batching) at a fixed rate; one worker records
create-call start -> handler entry.
"""

from __future__ import annotations

import array
import bisect

from bench.common import latency_summary, loadavg, merge_records
from bench.procs import Team
from bench.settings import Scale
from bench.systems import System


def skipped(scenario: str, case: str, system: System, reason: str) -> dict:
    return {"scenario": scenario, "case": case, "system": system.key, "label": system.label, "skipped": reason}


def _worker_spec(system: System, scale: Scale, base: dict) -> dict:
    spec = dict(base)
    if system.is_taskq:
        spec["concurrency"] = scale.worker_concurrency
    if system.key.startswith("nats"):
        spec["batch"] = scale.nats_fetch_batch
    return spec


def run_push(system: System, server, producers: int, scale: Scale, queue: str) -> dict:
    """One (a) run on a server that is already started; the queue is created here."""
    system.prepare_queue(server, queue)  # a taskq queue is a push queue by default
    run_for = scale.warmup_s + scale.duration_s
    base = {"address": server.address, "queue": queue, "run_for": run_for}
    load_before = loadavg()
    with Team(backlog_limit=scale.backlog_limit) as team:
        for _ in range(producers):
            team.add("worker", system.client, "consume", _worker_spec(system, scale, base))
        produce = "produce_async" if system.is_taskq and scale.taskq_producer == "async" else "produce"
        for _ in range(producers):
            team.add("producer", system.client, produce, {**base, "concurrency": scale.producer_concurrency})
        team.start()
        cpu_before = server.cpu_seconds()
        t0 = team.release()
        results = team.results(timeout=run_for + 120)
        server_cpu = server.cpu_seconds() - cpu_before
        memory = server.memory()
    entries, latencies, _ = merge_records(results["worker"])
    start, end = t0 + scale.warmup_s, t0 + run_for
    first, last = bisect.bisect_left(entries, start), bisect.bisect_left(entries, end)
    handled = last - first
    created = sum(r["created"] for r in results["producer"])
    return {
        "throughput_per_s": round(handled / scale.duration_s, 1),
        "latency": latency_summary(latencies[first:last]),
        "created": created,
        "handled_total": len(entries),
        "server_cpu_s": round(server_cpu, 2),
        "server_cpu_us_per_task": round(server_cpu * 1e6 / len(entries), 1) if entries else None,
        "producers_cpu_s": round(sum(r["cpu_s"] for r in results["producer"]), 2),
        "workers_cpu_s": round(sum(r["cpu_s"] for r in results["worker"]), 2),
        "server_memory": memory,
        "loadavg_before": load_before,
    }


def scenario_a(systems: list[System], scale: Scale, log) -> list[dict]:
    rows = []
    for producers in scale.push_producers:
        case = f"P={producers}"
        for system in systems:
            if system.unavailable:
                rows.append(skipped("a", case, system, system.unavailable))
                log(f"  (a) {case} {system.label}: skipped ({system.unavailable})")
                continue
            server = system.make_server().start()
            try:
                row = run_push(system, server, producers, scale, queue=f"push-p{producers}")
            finally:
                server.stop()
            rows.append({"scenario": "a", "case": case, "system": system.key, "label": system.label,
                         "durability": system.durability, "sync": system.sync, **row})
            log(f"  (a) {case} {system.label}: {row['throughput_per_s']:,.0f} tasks/s, "
                f"p50 {row['latency']['p50_ms']} ms, p99 {row['latency']['p99_ms']} ms")
    return rows


def scenario_c(systems: list[System], scale: Scale, log) -> list[dict]:
    rows = []
    case = f"1+1 at {scale.latency_rate:g}/s"
    for system in systems:
        if system.unavailable:
            rows.append(skipped("c", case, system, system.unavailable))
            continue
        server = system.make_server().start()
        queue = "latency"
        try:
            system.prepare_queue(server, queue)
            count = scale.latency_count
            run_for = count / scale.latency_rate + 5
            base = {"address": server.address, "queue": queue, "run_for": run_for}
            with Team() as team:
                worker = dict(base, expect=count)
                if system.key.startswith("nats"):
                    worker["batch"] = 1
                team.add("worker", system.client, "consume", worker)
                team.add("producer", system.client, "paced", {**base, "rate": scale.latency_rate, "count": count})
                team.start()
                t0 = team.release()
                results = team.results(timeout=run_for + 60)
        finally:
            server.stop()
        entries, latencies, _ = merge_records(results["worker"])
        measured = [lat for entry, lat in zip(entries, latencies) if entry - lat >= t0 + scale.latency_warmup_s]
        calls = array.array("d", results["producer"][0]["calls"])
        skip = int(scale.latency_warmup_s * scale.latency_rate)
        row = {"scenario": "c", "case": case, "system": system.key, "label": system.label,
               "durability": system.durability, "latency": latency_summary(measured),
               # How long the create call itself took (answered once stored/durable).
               "create_call": latency_summary(calls[skip:]),
               "received": len(entries), "created": count}
        rows.append(row)
        log(f"  (c) {system.label}: p50 {row['latency']['p50_ms']} ms, p99 {row['latency']['p99_ms']} ms "
            f"(create call p50 {row['create_call']['p50_ms']} ms; {len(entries)}/{count} received)")
    return rows
