"""(e) backlog: taskq with 1M and 10M stored tasks against taskq empty; beanstalkd with 1M jobs.

taskq: a server on an empty directory gives the baseline (start-up time, RSS idle, (a) P=4
throughput and RSS after it). Then a pull queue `backlog` is filled with READY tasks
(cumulatively: 1M, then 9M more for 10M) by `bench.bulkload` with the server stopped (or
through BatchCreateTasks if that is not possible); each time the server is started again on the
directory: start-up time (process start -> its `listening` line), RSS idle, (a) P=4 on a fresh
push queue beside the backlog, RSS after it and the peak (VmHWM).

beanstalkd -b: RSS empty, RSS with the jobs stored (pipelined puts), and start-up time and RSS
after a restart that replays the binlog.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time

from bench import peers
from bench.scenarios.pull import load_backlog
from bench.scenarios.push import run_push
from bench.settings import Scale
from bench.systems import System

BACKLOG_QUEUE = "backlog"


def _settled_memory(server: peers.ServerProcess, seconds: float = 1.0) -> dict:
    time.sleep(seconds)
    return server.memory()


def _timed_stop(server: peers.ServerProcess, *, keep_data: bool) -> float:
    started = time.monotonic()
    server.stop(keep_data=keep_data, timeout=120)
    return round(time.monotonic() - started, 2)


def _bulk_load(system: System, data_dir: str, count: int, log) -> dict:
    """Adds `count` READY tasks to the backlog queue of the (stopped) server's directory."""
    started = time.monotonic()
    command = [sys.executable, "-m", "bench.bulkload", data_dir, BACKLOG_QUEUE, str(count)]
    done = subprocess.run(command, cwd=peers.ROOT, capture_output=True, text=True, check=False)
    if done.returncode == 0:
        elapsed = time.monotonic() - started
        return {"method": "offline engine (bench.bulkload)", "load_s": round(elapsed, 2),
                "load_per_s": round(count / elapsed, 1)}
    log(f"    bulk load failed ({done.stderr.strip().splitlines()[-1:]}); using BatchCreateTasks")
    server = peers.TaskqServer(data_dir=data_dir).start()
    try:
        loading = load_backlog(system, server, BACKLOG_QUEUE, count, processes=2)
    finally:
        server.stop(keep_data=True)
    return {"method": "BatchCreateTasks", **{k: loading[k] for k in ("load_s", "load_per_s")}}


def _taskq_run(system: System, server, scale: Scale, stored: int, log) -> dict:
    memory_idle = _settled_memory(server)
    log(f"    started in {server.startup_s:.2f} s, RSS {memory_idle['rss_mib']} MiB; running (a) P=4")
    push = run_push(system, server, 4, scale, queue=f"push-{stored}")
    return {"startup_s": round(server.startup_s, 3), "rss_idle_mib": memory_idle["rss_mib"],
            "throughput_per_s": push["throughput_per_s"], "latency": push["latency"],
            "rss_after_run_mib": push["server_memory"]["rss_mib"],
            "peak_rss_mib": push["server_memory"]["peak_rss_mib"], "loadavg_before": push["loadavg_before"]}


def scenario_e(taskq_system: System, beanstalk: System | None, scale: Scale, log) -> list[dict]:
    rows = []
    base = {"scenario": "e", "system": taskq_system.key, "label": taskq_system.label}
    log("  (e) taskq empty")
    server = peers.TaskqServer().start()
    try:
        empty = _taskq_run(taskq_system, server, scale, 0, log)
    finally:
        empty["shutdown_s"] = _timed_stop(server, keep_data=False)
    rows.append({**base, "case": "empty", "stored": 0, **empty})

    data_dir = tempfile.mkdtemp(prefix="taskq-bench-backlog-")
    try:
        server = peers.TaskqServer(data_dir=data_dir).start()
        taskq_system.prepare_queue(server, BACKLOG_QUEUE, type="pull")
        server.stop(keep_data=True)
        stored = 0
        for size in sorted(scale.backlog_sizes):
            log(f"  (e) taskq: storing {size - stored:,} more tasks ({size:,} in all)")
            loading = _bulk_load(taskq_system, data_dir, size - stored, log)
            stored = size
            server = peers.TaskqServer(data_dir=data_dir).start()
            try:
                from taskq.client import Client

                with Client(server.address) as client:
                    counted = client.get_queue_stats(BACKLOG_QUEUE).tasks_count
                run = _taskq_run(taskq_system, server, scale, size, log)
                disk = server.disk_mib()
            finally:
                run_shutdown = _timed_stop(server, keep_data=True)
            row = {**base, "case": f"{size:,} stored", "stored": size, "counted": counted, "disk_mib": disk,
                   **run, "shutdown_s": run_shutdown, "load": loading,
                   "rss_over_empty_mib": round(run["rss_idle_mib"] - empty["rss_idle_mib"], 1),
                   "peak_over_empty_mib": round(run["peak_rss_mib"] - empty["peak_rss_mib"], 1),
                   "throughput_vs_empty": round(run["throughput_per_s"] / empty["throughput_per_s"], 3)
                   if empty["throughput_per_s"] else None}
            rows.append(row)
            log(f"  (e) taskq {size:,}: start-up {row['startup_s']} s, RSS idle {row['rss_idle_mib']} MiB "
                f"(+{row['rss_over_empty_mib']}), peak {row['peak_rss_mib']} MiB, "
                f"{row['throughput_per_s']:,.0f} tasks/s ({row['throughput_vs_empty']:.0%} of empty)")
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)

    if beanstalk is not None and not beanstalk.unavailable:
        rows.append(_beanstalk_backlog(beanstalk, scale.beanstalk_backlog, log))
    return rows


def _beanstalk_backlog(system: System, count: int, log) -> dict:
    data_dir = tempfile.mkdtemp(prefix="taskq-bench-beanstalk-backlog-")
    try:
        server = peers.Beanstalkd(system.label, data_dir=data_dir).start()
        try:
            empty = _settled_memory(server, 0.5)
            log(f"  (e) {system.label}: storing {count:,} jobs")
            loading = load_backlog(system, server, BACKLOG_QUEUE, count)
            loaded = _settled_memory(server, 0.5)
            disk = server.disk_mib()
        finally:
            server.stop(keep_data=True)
        server = peers.Beanstalkd(system.label, data_dir=data_dir).start()
        try:
            restarted = _settled_memory(server, 0.5)
            startup = server.startup_s
        finally:
            server.stop(keep_data=True)
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
    row = {"scenario": "e", "case": f"{count:,} stored", "system": system.key, "label": system.label,
           "stored": count, "rss_empty_mib": empty["rss_mib"], "rss_loaded_mib": loaded["rss_mib"],
           "rss_idle_mib": restarted["rss_mib"], "startup_s": round(startup, 3), "disk_mib": disk,
           "load": {"method": "pipelined put", **loading}}
    log(f"  (e) {system.label} {count:,}: RSS {empty['rss_mib']} -> {loaded['rss_mib']} MiB, after a restart "
        f"{restarted['rss_mib']} MiB, binlog replay {startup:.2f} s")
    return row
