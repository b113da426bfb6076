"""The results: a table per scenario (with taskq ÷ peer ratios), the issue's targets checked,
JSON, and PNG charts (throughput per scenario, latency percentiles, backlog memory)."""

from __future__ import annotations

import json
import os

# Rows ---------------------------------------------------------------------------------------


def _fmt(value, digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if abs(value) >= 1000:
            return f"{value:,.0f}"
        return f"{value:.{digits}f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _table(headers: list[str], rows: list[list]) -> str:
    cells = [[_fmt(c) if not isinstance(c, str) else c for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)]
    last = len(headers) - 1
    def line(values: list[str]) -> str:
        return "  ".join(
            v.ljust(w) if i < 2 or i == last else v.rjust(w) for i, (v, w) in enumerate(zip(values, widths))).rstrip()

    return "\n".join([line(headers), line(["-" * w for w in widths]), *(line(r) for r in cells)])


def _taskq_row(rows: list[dict], case: str, key: str = "taskq") -> dict | None:
    for row in rows:
        if row.get("case") == case and row.get("system") == key and "skipped" not in row:
            return row
    return None


def _ratio(taskq_value, peer_value) -> str:
    if not taskq_value or not peer_value:
        return "-"
    return f"{taskq_value / peer_value:.2f}x"


def _by(results: list[dict], scenario: str) -> list[dict]:
    return [row for row in results if row.get("scenario") == scenario]


def tables(results: list[dict]) -> str:
    out: list[str] = []
    rows = _by(results, "a")
    if rows:
        body = []
        for row in rows:
            if "skipped" in row:
                body.append([row["case"], row["label"], "skipped", "", "", "", "", row["skipped"]])
                continue
            taskq = _taskq_row(rows, row["case"])
            lat = row["latency"]
            body.append([row["case"], row["label"], row["throughput_per_s"],
                         _ratio(taskq and taskq["throughput_per_s"], row["throughput_per_s"]),
                         lat["p50_ms"], lat["p99_ms"], row["server_cpu_us_per_task"], row.get("sync", "")])
        out.append("(a) push end to end: P producers + P workers, create -> deliver -> ack; latency includes "
                   "queueing (producers run ahead of workers until 5,000 tasks wait)\n" + _table(
            ["case", "system", "tasks/s", "taskq ÷", "p50 ms", "p99 ms", "srv µs/task", "note"], body))
    rows = _by(results, "b")
    if rows:
        body = []
        taskq = next((r for r in rows if r.get("system") == "taskq" and "skipped" not in r), None)
        for row in rows:
            if "skipped" in row:
                body.append([row["case"], row["label"], "skipped", "", "", "", row["skipped"]])
                continue
            ratio = "-" if row["system"].startswith("taskq") and row is not taskq else _ratio(
                taskq and taskq["throughput_per_s"], row["throughput_per_s"])
            body.append([row["case"], row["label"], row["throughput_per_s"], ratio,
                         row["server_cpu_us_per_task"], f"{row['deleted']:,}/{row['stored']:,}", row.get("sync", "")])
        out.append("(b) pull: lease 100 + delete (beanstalkd: reserve + delete), 4 processes, stored backlog\n"
                   + _table(["case", "system", "tasks/s", "taskq ÷", "srv µs/task", "deleted", "note"], body))
    rows = _by(results, "c")
    if rows:
        body = []
        for row in rows:
            if "skipped" in row:
                body.append([row["case"], row["label"], "skipped", "", "", "", "", "", row["skipped"]])
                continue
            lat = row["latency"]
            call = row.get("create_call", {})
            body.append([row["case"], row["label"], lat["p50_ms"], lat["p90_ms"], lat["p99_ms"], lat["max_ms"],
                         call.get("p50_ms"), call.get("p99_ms"), f"{row['received']}/{row['created']} received"])
        out.append("(c) one at a time: 1 producer (no batching) + 1 worker, create-call start -> handler entry; "
                   "'call' = the create call alone\n"
                   + _table(["case", "system", "p50 ms", "p90 ms", "p99 ms", "max ms", "call p50", "call p99", "note"],
                            body))
    rows = _by(results, "d")
    if rows:
        body = []
        for row in rows:
            if "skipped" in row:
                body.append([row["case"], row["label"], "skipped", "", "", "", "", row["skipped"]])
                continue
            lat = row["lateness"]
            body.append([row["case"], row["label"], f"{row['handled']:,}/{row['stored']:,}", row["early"],
                         lat["p50_ms"], lat["p99_ms"], lat["max_ms"], row.get("note", "")])
        out.append("(d) scheduled: handler entry - ETA\n" + _table(
            ["case", "system", "handled", "early", "late p50 ms", "p99 ms", "max ms", "note"], body))
    rows = _by(results, "e")
    if rows:
        body = []
        for row in rows:
            if row["system"] == "taskq":
                body.append([row["case"], row["label"], row["startup_s"], row["rss_idle_mib"],
                             row.get("rss_over_empty_mib"), row.get("peak_rss_mib"), row.get("throughput_per_s"),
                             f"{row['throughput_vs_empty']:.0%}" if row.get("throughput_vs_empty") else "-",
                             f"load {row['load']['load_per_s']:,.0f}/s" if row.get("load") else ""])
            else:
                body.append([row["case"], row["label"], row["startup_s"], row["rss_idle_mib"],
                             round(row["rss_idle_mib"] - row["rss_empty_mib"], 1), None, None, "-",
                             f"start-up = binlog replay; RSS right after storing {row['rss_loaded_mib']}"])
        out.append("(e) backlog: RSS (MiB) idle after start-up, start-up s, (a) P=4 beside the backlog\n"
                   + _table(["case", "system", "start s", "RSS", "+empty", "peak", "tasks/s", "vs empty", "note"],
                            body))
    rows = _by(results, "f")
    if rows:
        body = []
        for row in rows:
            if "skipped" in row:
                body.append([row["case"], row["label"], "skipped", "", "", "", row["skipped"]])
                continue
            body.append([row["case"], row["label"], row.get("measured_rate"),
                         f"{row['rate_error_pct']:+.2f}%" if row.get("rate_error_pct") is not None else "-",
                         row.get("measured_burst"), row["configured_burst"],
                         f"{row['handled']:,}/{row['stored']:,} dispatched"])
        out.append("(f) rate limit: server dispatch times\n" + _table(
            ["case", "system", "rate/s", "error", "burst", "max_burst_size", "note"], body))
    out.extend(_pg_tables(results))
    out.extend(_http_tables(results))
    return "\n\n".join(out)


def _pg_reference(rows: list[dict], case: str) -> dict | None:
    """taskq with one replica: the row the PostgreSQL ratios are taken from."""
    return _taskq_row(rows, case, "taskq-pg1")


def _pg_setup_line(rows: list[dict]) -> str:
    settings = next((r.get("postgres") for r in rows if r.get("postgres")), None) or {}
    return (f"PostgreSQL fsync={settings.get('fsync', '?')}, synchronous_commit={settings.get('synchronous_commit', '?')}, "
            f"full_page_writes={settings.get('full_page_writes', '?')} for every system; a fresh database per run")


def _pg_tables(results: list[dict]) -> list[str]:
    out: list[str] = []
    rows = _by(results, "g")
    if rows:
        body = []
        for row in rows:
            reference = _pg_reference(rows, row["case"])
            lat, per, share = row["latency"], row["cpu_us_per_task"], row["cpu_share"]
            body.append([row["case"], row["label"], row["throughput_per_s"],
                         _ratio(reference and reference["throughput_per_s"], row["throughput_per_s"]),
                         lat["p50_ms"], lat["p99_ms"], per["taskq"] if row.get("replicas") else "-", per["database"],
                         per["producers"], per["workers"], row["total_cpu_us_per_task"],
                         f"{share['database']:.0%}" if share.get("database") is not None else "-"])
        gate = next((r.get("backlog_limit") for r in rows if r.get("backlog_limit")), None)
        out.append("(g) PostgreSQL push end to end: P producers + P workers, create -> deliver -> ack; "
                   f"latency includes queueing (gate: {_fmt(gate)} tasks); CPU µs per task over the whole run "
                   "(warm-up, window, drain); ratios: taskq ×1 ÷ system\n"
                   + _pg_setup_line(rows) + "\n" + _table(
                       ["case", "system", "tasks/s", "taskq×1 ÷", "p50 ms", "p99 ms", "taskq µs", "db µs",
                        "producers µs", "workers µs", "total µs", "db share"], body))
    rows = _by(results, "h")
    if rows:
        body = []
        reference = next((r for r in rows if r.get("system") == "taskq-pg1"), None)
        for row in rows:
            per, share = row["cpu_us_per_task"], row["cpu_share"]
            ratio = "-" if row is reference else _ratio(reference and reference["throughput_per_s"],
                                                         row["throughput_per_s"])
            body.append([row["case"], row["label"], row["throughput_per_s"], ratio,
                         per["taskq"] if row.get("replicas") else "-", per["database"], per["clients"],
                         row["total_cpu_us_per_task"],
                         f"{share['database']:.0%}" if share.get("database") is not None else "-",
                         f"{row['deleted']:,}/{row['stored']:,}"])
        out.append("(h) PostgreSQL pull: stored backlog drained (taskq lease 100 + delete; PgQueuer dequeue 100 + "
                   "log_jobs; Procrastinate fetch_job + finish_job); CPU µs per task\n" + _pg_setup_line(rows) + "\n"
                   + _table(["case", "system", "tasks/s", "taskq×1 ÷", "taskq µs", "db µs", "clients µs", "total µs",
                             "db share", "deleted"], body))
    rows = [r for r in results if r.get("scenario") in ("g", "h") and r.get("db_work")]
    if rows:
        body = []
        for row in rows:
            work = row["db_work"]
            outside = row.get("outside_cpu", {}).get("outside_share")
            body.append([f"({row['scenario']}) {row['case']}", row["label"], f"{work['commits_per_task']:.3f}",
                         f"{work['rows_written_per_task']:.2f}", f"{work['wal_records_per_task']:.1f}",
                         f"{work['wal_bytes_per_task']:,.0f}", f"{work['wal_syncs_per_task']:.3f}",
                         f"{outside:.0%}" if outside is not None else "-"])
        out.append("(g, h) the database's work per task (pg_stat_database, pg_stat_wal; from the measured start to "
                   "the end of the run); 'outside': the machine's busy CPU that no process of the run used "
                   "(the harness, or other programs: above ~10% the machine was not quiet)\n" + _table(
                       ["case", "system", "commits", "rows written", "WAL records", "WAL bytes", "WAL fsyncs",
                        "outside"], body))
    return out


def _http_tables(results: list[dict]) -> list[str]:
    rows = _by(results, "i")
    if not rows:
        return []
    body = []
    for row in rows:
        if "skipped" in row:
            body.append([row["case"], row["label"], "skipped", "", "", "", "", "", "", "", "", row["skipped"]])
            continue
        stream = next((r for r in rows if r.get("case") == row["case"] and r.get("path") == "stream"
                       and "skipped" not in r), None)
        lat, per = row["latency"], row["cpu_us_per_task"]
        notes = []
        if row.get("http"):
            notes.append(f"{row['http']['connections']} conns")
            if row["http"]["repeated"]:
                notes.append(f"{row['http']['repeated']} repeated")
        if row.get("throughput_is") == "received":
            notes.append("tasks/s = received")
        if not row.get("drained"):
            notes.append(f"NOT drained ({row['handled_total']:,}/{row['created']:,})")
        outside = row.get("outside_cpu", {})
        if outside.get("outside_share") is not None:
            irq = outside.get("irq_softirq_s") or 0.0
            share = irq / outside["machine_busy_s"] if outside.get("machine_busy_s") else 0.0
            notes.append(f"outside {outside['outside_share']:.0%} (irq {share:.0%})")
        body.append([row["case"], row["label"], row["throughput_per_s"], row["received_per_s"],
                     _ratio(row["throughput_per_s"], stream and stream["throughput_per_s"]),
                     lat["p50_ms"], lat["p99_ms"], per["server"], per["producers"], per["workers"],
                     row["total_cpu_us_per_task"], ", ".join(notes)])
    gate = next((r.get("backlog_limit") for r in rows if r.get("backlog_limit")), None)
    return ["(i) HTTP push end to end beside StreamTasks: P producers + P workers (stream: the push Worker; HTTP: "
            "a minimal HTTP/1.1 worker answering 200); tasks/s acknowledged in the window; latency create -> "
            f"handler entry / request arrival, includes queueing (gate: {_fmt(gate)} tasks); CPU µs per task over "
            "the whole run; 'outside': the machine's busy CPU no process of the run used (irq: the part in interrupts "
            "and softirqs, where loopback networking partly goes; the rest: the harness or other programs)\n" + _table(
                ["case", "system", "tasks/s", "received/s", "÷ stream", "p50 ms", "p99 ms", "server µs",
                 "producers µs", "workers µs", "total µs", "note"], body)]


# Targets --------------------------------------------------------------------------------------


def targets(results: list[dict]) -> list[dict]:
    """The issue's targets, each with the value measured and whether it is met."""
    checks: list[dict] = []

    def add(name: str, value, met: bool | None) -> None:
        checks.append({"target": name, "value": value, "met": met})

    a = _by(results, "a")
    taskq = _taskq_row(a, "P=4")
    for key, factor in (("beanstalkd-b", 2), ("beanstalkd-b-f0", 10), ("nats-file", 1), ("nats-file-sync", 1)):
        peer = _taskq_row(a, "P=4", key)
        if taskq and peer:
            ratio = taskq["throughput_per_s"] / peer["throughput_per_s"] if peer["throughput_per_s"] else None
            add(f"(a) P=4 taskq >= {factor}x {peer['label']}", round(ratio, 2) if ratio else None,
                ratio is not None and ratio >= factor)
    b = _by(results, "b")
    taskq_b = next((r for r in b if r.get("system") == "taskq" and "skipped" not in r), None)
    peer_b = next((r for r in b if r.get("system") == "beanstalkd-b" and "skipped" not in r), None)
    if taskq_b and peer_b:
        ratio = taskq_b["throughput_per_s"] / peer_b["throughput_per_s"]
        add("(b) taskq >= 2x beanstalkd -b", round(ratio, 2), ratio >= 2)
    c = next((r for r in _by(results, "c") if r.get("system") == "taskq" and "skipped" not in r), None)
    if c:
        add("(c) p50 <= 2 ms", c["latency"]["p50_ms"], (c["latency"]["p50_ms"] or 1e9) <= 2)
        add("(c) p99 <= 10 ms", c["latency"]["p99_ms"], (c["latency"]["p99_ms"] or 1e9) <= 10)
    d = next((r for r in _by(results, "d") if r.get("system") == "taskq" and "skipped" not in r), None)
    if d:
        add("(d) 0 early", d["early"], d["early"] == 0)
        add("(d) p99 lateness <= 50 ms", d["lateness"]["p99_ms"], (d["lateness"]["p99_ms"] or 1e9) <= 50)
        add("(d) every task handled", f"{d['handled']}/{d['stored']}", d["handled"] >= d["stored"])
    e = [r for r in _by(results, "e") if r.get("system") == "taskq" and r.get("stored")]
    if e:
        largest = max(e, key=lambda r: r["stored"])
        size = f"{largest['stored']:,}"
        add(f"(e) RSS at {size} <= empty + 150 MB", largest["rss_over_empty_mib"],
            largest["rss_over_empty_mib"] <= 150 * 1e6 / 2**20)
        add(f"(e) start-up at {size} <= 5 s", largest["startup_s"], largest["startup_s"] <= 5)
        ratio = largest.get("throughput_vs_empty")
        add(f"(e) throughput at {size} within 20% of empty", ratio, ratio is not None and ratio >= 0.8)
    f = next((r for r in _by(results, "f") if r.get("system") == "taskq" and "skipped" not in r), None)
    if f:
        error = f.get("rate_error_pct")
        add("(f) rate within ±3%", error, error is not None and abs(error) <= 3)
        add("(f) burst = max_burst_size", f"{f.get('measured_burst')} vs {f['configured_burst']}",
            f.get("measured_burst") == f["configured_burst"])
    g = _by(results, "g")
    if g:
        case = max((r["case"] for r in g), key=lambda c: int(c.partition("=")[2] or 0))
        for key in ("taskq-pg1", "taskq-pg2"):
            taskq_g = _taskq_row(g, case, key)
            for peer_key, factor in (("pgqueuer", 1), ("procrastinate", 2)):
                peer = _taskq_row(g, case, peer_key)
                if taskq_g and peer:
                    ratio = taskq_g["throughput_per_s"] / peer["throughput_per_s"] if peer["throughput_per_s"] else None
                    add(f"(g) {case} {taskq_g['label']} >= {factor}x {peer['label']}",
                        round(ratio, 2) if ratio else None, ratio is not None and ratio >= factor)
    return checks


def targets_text(checks: list[dict], quick: bool) -> str:
    lines = ["targets" + (" (quick run: tiny scale, not meaningful)" if quick else "")]
    for check in checks:
        mark = "met" if check["met"] else "NOT met"
        lines.append(f"  {mark:8} {check['target']}: {check['value']}")
    return "\n".join(lines)


# Files ----------------------------------------------------------------------------------------


def write_json(document: dict, path: str) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as out:
        json.dump(document, out, indent=2, sort_keys=False)
        out.write("\n")


def charts(results: list[dict], out_dir: str, stem: str) -> list[str]:
    """Draws the PNG charts; returns their paths (none if matplotlib is missing)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        import matplotlib.ticker
    except ImportError:
        return []
    os.makedirs(out_dir, exist_ok=True)
    paths = []
    palette = plt.get_cmap("tab10").colors
    known = ["taskq", "taskq PullWorker", "beanstalkd -b", "beanstalkd -b -f0", "NATS JetStream file",
             "NATS JetStream file sync=always"]
    seen: list[str] = []

    def color(label: str):
        if label in known:
            return palette[known.index(label) % len(palette)]
        if label not in seen:
            seen.append(label)
        return palette[(len(known) + seen.index(label)) % len(palette)]

    # Throughput per scenario: one group per (scenario, case), one bar per system.
    groups: dict[str, dict[str, float]] = {}
    for row in results:
        if row.get("scenario") in ("a", "b", "e", "g", "h", "i") and row.get("throughput_per_s"):
            group = f"({row['scenario']}) {row['case']}"
            groups.setdefault(group, {})[row["label"]] = row["throughput_per_s"]
    if groups:
        labels = sorted({label for values in groups.values() for label in values},
                        key=lambda x: known.index(x) if x in known else len(known))
        fig, ax = plt.subplots(figsize=(max(8, 1.6 * len(groups)), 5))
        drawn: set[str] = set()
        for g, name in enumerate(groups):
            present = [label for label in labels if label in groups[name]]
            width = 0.8 / len(present)
            for i, label in enumerate(present):
                ax.bar(g - 0.4 + (i + 0.5) * width, groups[name][label], width, color=color(label),
                       label=None if label in drawn else label)
                drawn.add(label)
        ax.set_xticks(range(len(groups)), list(groups), rotation=15, ha="right")
        ax.set_ylabel("tasks/s (completed)")
        ax.set_title("Throughput per scenario (same machine, same run)")
        ax.legend(fontsize=8)
        fig.tight_layout()
        path = os.path.join(out_dir, f"{stem}-throughput.png")
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths.append(path)

    # Latency percentiles: (a), (g) and (i) per case and (c), one panel each.
    panels = []
    for row in results:
        if row.get("scenario") in ("a", "c", "g", "i") and row.get("latency", {}).get("count"):
            panels.append(row)
    cases = list(dict.fromkeys(f"({r['scenario']}) {r['case']}" for r in panels))
    if cases:
        fig, axes = plt.subplots(1, len(cases), figsize=(4.5 * len(cases), 4.5), squeeze=False)
        for ax, case in zip(axes[0], cases):
            rows = [r for r in panels if f"({r['scenario']}) {r['case']}" == case]
            width = 0.8 / 3
            for i, (key, name) in enumerate((("p50_ms", "p50"), ("p90_ms", "p90"), ("p99_ms", "p99"))):
                ax.bar([x + i * width for x in range(len(rows))], [r["latency"][key] or 0 for r in rows], width,
                       label=name)
            ax.set_xticks([x + width for x in range(len(rows))], [r["label"] for r in rows], rotation=20,
                          ha="right", fontsize=8)
            ax.set_yscale("log")
            ax.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
            ax.set_ylabel("ms, create -> handler entry")
            ax.set_title(case, fontsize=10)
            ax.legend(fontsize=8)
        fig.tight_layout()
        path = os.path.join(out_dir, f"{stem}-latency.png")
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths.append(path)

    # Backlog: RSS idle and start-up time against tasks stored.
    backlog = [r for r in _by(results, "e") if r.get("system") == "taskq"]
    if backlog:
        fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
        names = [r["case"] for r in backlog]
        left.bar(names, [r["rss_idle_mib"] for r in backlog], label="idle after start-up")
        left.plot(names, [r.get("peak_rss_mib") for r in backlog], "o-", color="black", label="peak during (a)")
        for r in _by(results, "e"):
            if r.get("system") != "taskq":
                left.axhline(r["rss_idle_mib"], linestyle="--", color="grey", label=f"{r['label']}, {r['case']}")
        left.set_ylabel("RSS MiB")
        left.set_title("taskq server memory")
        left.legend(fontsize=8)
        right.bar(names, [r["startup_s"] for r in backlog])
        right.set_ylabel("seconds to 'listening'")
        right.set_title("taskq start-up")
        fig.tight_layout()
        path = os.path.join(out_dir, f"{stem}-backlog.png")
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths.append(path)
    return paths
