"""(i) HTTP push end to end, beside the gRPC stream path in the same run.

For P = 1 and 4: P producer processes create tasks (taskq's `Client.create_task` from 32
threads each, default batching, 200-byte payloads: (a)'s producers) in a push queue, and either

- **stream**: P worker processes with the push `Worker` (64 handlers each) on StreamTasks,
  as in (a), or
- **HTTP**: the queue has an `http_target` (http://127.0.0.1:PORT/work) and the server itself
  sends each task as a POST to P processes of a minimal HTTP worker (bench.clients.http_side)
  sharing that port (SO_REUSEPORT); it answers 200 at once, which completes the task.

Each on a fresh server (started with `--http-allow-networks 127.0.0.0/8`, the SSRF guard's
opt-in for loopback, for the HTTP runs). Producers create for warm-up + duration with (a)'s
gate (5,000 tasks waiting; quick: 500); then the workers receive what is left, and the run
ends once the server holds no task, i.e. every task created was acknowledged, so CPU per task
is the whole run's (warm-up, window, drain) over tasks all created, delivered and
acknowledged. Throughput is acknowledgements in the measured window, from the queue's
`executed_last_minute` read at the window's start and end (exact while the run is shorter
than a minute); receipts in the window are reported too. Latency is create-call start ->
handler entry (stream) or the request's arrival (HTTP), of tasks received in the window.
"""

from __future__ import annotations

import bisect
import os
import time

from bench import peers
from bench.common import latency_summary, loadavg, machine_busy_seconds, merge_records
from bench.procs import Team
from bench.scenarios.push import skipped
from bench.settings import Scale
from bench.systems import HTTP_CLIENT, TASKQ_CLIENT, System

#: executed_last_minute counts a sliding minute: it is the exact count of acknowledgements
#: only while the queue is younger than this (seconds, with a margin).
_EXACT_WITHIN_S = 55.0


def _per_task(seconds: float, tasks: int) -> float | None:
    return round(seconds * 1e6 / tasks, 1) if tasks else None


def _sample(client, queue: str) -> tuple[float, int, int]:
    """(when, acknowledged so far, tasks stored) from GetQueueStats."""
    before = time.time()
    stats = client.get_queue_stats(queue)
    return (before + time.time()) / 2, stats.executed_last_minute, stats.tasks_count


def _interrupt_seconds() -> float:
    """CPU time the machine spent in interrupts and softirqs so far (/proc/stat irq + softirq):
    loopback TCP's packet processing is partly there, charged to no process."""
    with open("/proc/stat") as stat:
        fields = [int(value) for value in stat.readline().split()[1:]]
    return sum(fields[5:7]) / os.sysconf("SC_CLK_TCK")


def _sleep_until(moment: float) -> None:
    delay = moment - time.time()
    if delay > 0:
        time.sleep(delay)


def run_case(system: System, server, producers: int, scale: Scale, queue: str) -> dict:
    """One (i) run on a started server: the queue (with its HTTP target) is created here."""
    from taskq.client import Client

    http = system.client == HTTP_CLIENT
    port = peers.free_port() if http else None
    if http:
        system.prepare_queue(server, queue, http_uri=f"http://{peers.HOST}:{port}/work")
    else:
        system.prepare_queue(server, queue)
    run_for = scale.warmup_s + scale.duration_s
    base = {"address": server.address, "queue": queue, "run_for": run_for}
    load_before = loadavg()
    with Client(server.address) as stats_client, Team(backlog_limit=scale.http_backlog_limit) as team:
        for _ in range(producers):
            if http:
                team.add("worker", HTTP_CLIENT, "serve",
                         {"port": port, "run_for": run_for, "drain_s": scale.http_drain_s})
            else:
                team.add("worker", TASKQ_CLIENT, "consume",
                         {**base, "drain_s": scale.http_drain_s, "concurrency": scale.worker_concurrency})
        for _ in range(producers):
            team.add("producer", TASKQ_CLIENT, "produce", {**base, "concurrency": scale.producer_concurrency})
        team.start()
        cpu_before, machine_before, irq_before = server.cpu_seconds(), machine_busy_seconds(), _interrupt_seconds()
        t0 = team.release()
        _sleep_until(t0 + scale.warmup_s)
        window_start = _sample(stats_client, queue)
        _sleep_until(t0 + run_for)
        window_end = _sample(stats_client, queue)
        created = sum(r["created"] for r in team.wait_role("producer", timeout=120))
        drain_started = time.time()
        deadline = t0 + run_for + scale.http_drain_s
        while team.consumed() < created and time.time() < deadline:
            time.sleep(0.01)
        stored = _sample(stats_client, queue)[2]
        while stored and time.time() < deadline:  # the last answers' acknowledgements
            time.sleep(0.02)
            stored = _sample(stats_client, queue)[2]
        drain_s = time.time() - drain_started
        team.request_stop()
        results = team.results(timeout=scale.http_drain_s + 120)
        server_cpu = server.cpu_seconds() - cpu_before
        machine_cpu = machine_busy_seconds() - machine_before
        irq_cpu = _interrupt_seconds() - irq_before
        memory = server.memory()
    entries, latencies, _ = merge_records(results["worker"])
    first = bisect.bisect_left(entries, t0 + scale.warmup_s)
    last = bisect.bisect_left(entries, t0 + run_for)
    received_per_s = (last - first) / scale.duration_s
    acked_per_s = None
    if window_end[0] - t0 < _EXACT_WITHIN_S and window_end[0] > window_start[0]:
        acked_per_s = (window_end[1] - window_start[1]) / (window_end[0] - window_start[0])
    handled = len(entries)
    cpu = {"server": server_cpu,
           "producers": sum(r["cpu_s"] for r in results["producer"]),
           "workers": sum(r["cpu_s"] for r in results["worker"])}
    outside = max(0.0, machine_cpu - sum(cpu.values()))
    row = {
        "throughput_per_s": round(acked_per_s if acked_per_s is not None else received_per_s, 1),
        "throughput_is": "acknowledged" if acked_per_s is not None else "received",
        "received_per_s": round(received_per_s, 1),
        "latency": latency_summary(latencies[first:last]),
        "backlog_limit": scale.http_backlog_limit,
        "created": created,
        "handled_total": handled,
        #: Every task created was received and acknowledged (the server held none) before the
        #: CPU was read; else per-task figures are per task received, and overstate.
        "drained": handled >= created and stored == 0,
        "left_in_queue": stored,
        #: Tasks the server held when the window ended: near the gate when the workers fell
        #: behind, small when deliveries kept up with the creates.
        "stored_at_window_end": window_end[2],
        "drain_s": round(drain_s, 2),
        "cpu_s": {name: round(value, 2) for name, value in cpu.items()},
        "cpu_us_per_task": {name: _per_task(value, handled) for name, value in cpu.items()},
        "server_cpu_us_per_task": _per_task(server_cpu, handled),
        "total_cpu_us_per_task": _per_task(sum(cpu.values()), handled),
        #: The machine's busy CPU that no process of the run used: interrupts and softirqs (the
        #: kernel's share of loopback networking, partly) and the rest (the harness, or other
        #: programs: a busy machine).
        "outside_cpu": {"machine_busy_s": round(machine_cpu, 2), "outside_s": round(outside, 2),
                        "outside_share": round(outside / machine_cpu, 3) if machine_cpu else None,
                        "irq_softirq_s": round(irq_cpu, 2),
                        "irq_softirq_us_per_task": _per_task(irq_cpu, handled)},
        "server_memory": memory,
        "loadavg_before": load_before,
    }
    if http:
        workers = results["worker"]
        row["http"] = {
            "port": port,
            #: Requests for a task that had arrived before (at-least-once redeliveries).
            "repeated": sum(w["repeated"] for w in workers),
            "unstamped": sum(w["unstamped"] for w in workers),
            #: Connections the server opened to the worker processes (its pool, keep-alive).
            "connections": sum(w["connections"] for w in workers),
            "connections_per_worker": [w["connections"] for w in workers],
            "closed_bad": sum(w["closed_bad"] for w in workers),
        }
    return row


def scenario_i(stream: System | None, http: System | None, scale: Scale, log) -> list[dict]:
    rows: list[dict] = []
    for producers in scale.http_producers:
        case = f"P={producers}"
        for system, path in ((stream, "stream"), (http, "http")):
            if system is None:
                continue
            if system.unavailable:
                rows.append({**skipped("i", case, system, system.unavailable), "path": path})
                continue
            label = "taskq StreamTasks" if path == "stream" else system.label
            server = system.make_server().start()
            try:
                row = run_case(system, server, producers, scale, queue=f"{path}-p{producers}")
            finally:
                server.stop()
            rows.append({"scenario": "i", "case": case, "system": system.key, "label": label, "path": path,
                         "durability": system.durability, "sync": system.sync, **row})
            per = row["cpu_us_per_task"]
            extra = ""
            if "http" in row:
                extra = f", {row['http']['connections']} connections, {row['http']['repeated']} repeated"
            log(f"  (i) {case} {label}: {row['throughput_per_s']:,.0f} tasks/s acknowledged "
                f"({row['received_per_s']:,.0f}/s received), p50 {row['latency']['p50_ms']} ms, "
                f"p99 {row['latency']['p99_ms']} ms; CPU µs/task: server {per['server']}, "
                f"producers {per['producers']}, workers {per['workers']}{extra}"
                + ("" if row["drained"] else
                   f" (NOT drained: {row['handled_total']:,}/{row['created']:,} received, "
                   f"{row['left_in_queue']:,} left in the queue)"))
            if scale.name == "quick" and not row["drained"]:
                # Quick mode checks the harness, and that every task arrived and was acknowledged.
                raise RuntimeError(f"(i) {case} {label}: {row['handled_total']:,} of {row['created']:,} tasks received, "
                                   f"{row['left_in_queue']:,} still in the queue after the drain")
    return rows
