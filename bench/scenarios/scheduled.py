"""(d) scheduled: tasks with ETAs spread uniformly over `spread` seconds, starting `lead`
seconds after the run starts (time to store them all first), handled by 4 worker processes.

A task handled before its ETA is early; lateness is handler entry - ETA. beanstalkd takes
delays in whole seconds from the put, so its jobs' real ETAs (put time + delay) are what its
payloads carry and what its lateness is measured against. NATS 2.9 has no delayed delivery
(message schedules came in 2.12), so it is skipped.
"""

from __future__ import annotations

from bench.common import latency_summary, loadavg, merge_records
from bench.procs import Team
from bench.scenarios.push import skipped
from bench.settings import Scale
from bench.systems import System


def scenario_d(systems: list[System], scale: Scale, log) -> list[dict]:
    rows = []
    count = scale.scheduled_tasks
    case = f"{count:,} ETAs over {scale.scheduled_spread_s:g} s"
    for system in systems:
        if system.unavailable:
            rows.append(skipped("d", case, system, system.unavailable))
            continue
        if system.key.startswith("nats"):
            reason = "NATS JetStream before 2.12 has no delayed delivery"
            rows.append(skipped("d", case, system, reason))
            log(f"  (d) {system.label}: skipped ({reason})")
            continue
        server = system.make_server().start()
        queue = "scheduled"
        run_for = scale.scheduled_lead_s + scale.scheduled_spread_s + 3
        try:
            system.prepare_queue(server, queue)
            base = {"address": server.address, "queue": queue, "run_for": run_for}
            # taskq: one process creates batches of 1000 from 2 threads; beanstalkd: 4 processes
            # put one job at a time.
            loaders = 1 if system.is_taskq else 4
            load_before = loadavg()
            with Team() as team:
                for _ in range(scale.scheduled_workers):
                    spec = dict(base)
                    if system.is_taskq:
                        spec["concurrency"] = scale.worker_concurrency
                    team.add("worker", system.client, "consume", spec)
                for index in range(loaders):
                    share = count // loaders + (1 if index < count % loaders else 0)
                    team.add("loader", system.client, "schedule",
                             {**base, "count": share, "lead": scale.scheduled_lead_s,
                              "spread": scale.scheduled_spread_s, "seed": index})
                team.start()
                t0 = team.release()
                results = team.results(timeout=run_for + 120)
                memory = server.memory()
        finally:
            server.stop()
        entries, _, etas = merge_records(results["worker"])
        lateness = [entry - eta for entry, eta in zip(entries, etas)]
        early = [late for late in lateness if late < 0]
        loaded_at = max(r["finished"] for r in results["loader"]) - t0
        row = {
            "scenario": "d", "case": case, "system": system.key, "label": system.label,
            "durability": system.durability,
            "stored": count, "handled": len(entries), "early": len(early),
            "earliest_ms": round(min(early) * 1000, 3) if early else None,
            "lateness": latency_summary(lateness),
            "created_after_eta": sum(r["created_after_eta"] for r in results["loader"]),
            "stored_after_s": round(loaded_at, 2), "lead_s": scale.scheduled_lead_s,
            "server_memory": memory, "loadavg_before": load_before,
        }
        if not system.is_taskq:
            row["note"] = "delays in whole seconds from the put"
        rows.append(row)
        lat = row["lateness"]
        log(f"  (d) {system.label}: {len(early)} early, lateness p50 {lat['p50_ms']} ms, p99 {lat['p99_ms']} ms, "
            f"max {lat['max_ms']} ms ({len(entries):,}/{count:,} handled; stored in {loaded_at:.1f} s)")
    return rows
