"""(f) rate limit: a push queue limited to `rate` dispatches per second, holding
burst + rate x seconds tasks, drained by one worker that can take the whole burst at once.

Dispatch times are the server's (each task's `last_attempt.dispatch_time`), so the figures
are the token bucket's, not the worker's. The initial burst is the number of tasks dispatched
before the first refill could have happened (within half a token interval of the first); the
rate is the tasks after the burst over the time from the first dispatch to the last. Only taskq
has per-queue rate limits among the peers here (beanstalkd has none; NATS's consumer
`rate_limit_bps` is in bits per second of push consumers).
"""

from __future__ import annotations

import array
import bisect

from bench.common import loadavg, merge_records
from bench.procs import Team
from bench.scenarios.pull import load_backlog
from bench.scenarios.push import skipped
from bench.settings import Scale
from bench.systems import System


def scenario_f(systems: list[System], scale: Scale, log) -> list[dict]:
    rows = []
    rate = scale.rate
    case = f"{rate:g}/s for {scale.rate_seconds:g} s"
    for system in systems:
        if not system.is_taskq:
            rows.append(skipped("f", case, system, "no per-queue dispatch rate limit"))
            continue
        server = system.make_server().start()
        queue = "limited"
        try:
            from taskq.client import Client

            with Client(server.address) as client:
                created = client.create_queue(queue, max_dispatches_per_second=rate)
                burst = created.rate_limits.max_burst_size
            count = burst + int(rate * scale.rate_seconds)
            loading = load_backlog(system, server, queue, count, processes=1)
            run_for = scale.rate_seconds + 10
            load_before = loadavg()
            with Team() as team:
                team.add("worker", system.client, "consume",
                         {"address": server.address, "queue": queue, "run_for": run_for, "expect": count,
                          "dispatch_times": True, "concurrency": max(100, 2 * burst),
                          "max_outstanding": max(200, 4 * burst)})
                team.start()
                team.release(delay=0.0)
                results = team.results(timeout=run_for + 60)
        finally:
            server.stop()
        dispatches = sorted(array.array("d", results["worker"][0]["dispatches"]))
        entries, _, _ = merge_records(results["worker"])
        row = {"scenario": "f", "case": case, "system": system.key, "label": system.label,
               "configured_rate": rate, "configured_burst": burst, "stored": count, "handled": len(dispatches),
               "loadavg_before": load_before, "load_s": loading["load_s"]}
        if len(dispatches) > burst + 1:
            first = dispatches[0]
            measured_burst = bisect.bisect_left(dispatches, first + 0.5 / rate)
            span = dispatches[-1] - first
            measured_rate = (len(dispatches) - measured_burst) / span if span > 0 else None
            entry_span = entries[-1] - entries[0]
            row.update({
                "measured_rate": round(measured_rate, 2) if measured_rate else None,
                "rate_error_pct": round((measured_rate / rate - 1) * 100, 2) if measured_rate else None,
                "measured_burst": measured_burst,
                # The same from the worker's side (handler entries), for comparison.
                "handler_rate": round((len(entries) - measured_burst) / entry_span, 2) if entry_span > 0 else None,
                "span_s": round(span, 3),
            })
        rows.append(row)
        log(f"  (f) {system.label}: rate {row.get('measured_rate')}/s ({row.get('rate_error_pct')}%), "
            f"burst {row.get('measured_burst')} (configured {burst}), {len(dispatches):,}/{count:,} dispatched")
    return rows
