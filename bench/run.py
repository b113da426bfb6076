"""taskq against the systems its users would pick instead, on this machine, in one run.

    python -m bench                  # every scenario at full scale (about 16 minutes)
    python -m bench --quick          # every scenario at tiny scale (CI: about 2 minutes)
    python -m bench --scenarios a,c --out /tmp/results
    python -m bench --scenarios g,h  # PostgreSQL: taskq x1/x2, PgQueuer, Procrastinate
    python -m bench --scenarios i    # HTTP push beside the stream path (taskq only)

Installs beanstalkd and nats-server from Debian packages if missing (and PostgreSQL's binaries
for g and h), starts each server on 127.0.0.1 with a temporary data directory (g and h: a
throwaway PostgreSQL cluster with a fresh database per system run), runs the scenarios (bench/scenarios/), and stops
everything it started. Prints a table per scenario with taskq ÷ peer ratios and the issue's
targets, writes JSON to OUT/<timestamp>.json and PNG charts beside it. Speed is never
asserted: the exit code is 0 whenever every scenario ran.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.metadata
import os
import platform
import signal
import subprocess
import sys
import time
import traceback

from bench import peers, report, systems
from bench.settings import FULL, QUICK, Scale

SCENARIOS = "abcdefghi"
#: PostgreSQL scenarios: they run the PG_SYSTEM_KEYS, the others the rest.
PG_SCENARIOS = "gh"
PG_SYSTEM_KEYS = ("taskq-pg1", "taskq-pg2", "pgqueuer", "procrastinate")
#: taskq delivering over HTTP: scenario (i) only, beside "taskq" (the stream path).
HTTP_SYSTEM_KEYS = ("taskq-http",)
SYSTEM_KEYS = ("taskq", "beanstalkd-b", "beanstalkd-b-f0", "nats-file", "nats-file-sync", *PG_SYSTEM_KEYS,
               *HTTP_SYSTEM_KEYS)


def _count(text: str) -> int:
    text = text.strip().lower().replace("_", "")
    factor = {"k": 1_000, "m": 1_000_000}.get(text[-1:], 1)
    return int(float(text[:-1] if factor > 1 else text) * factor)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny scale, every scenario and peer (CI)")
    parser.add_argument("--scenarios", default=SCENARIOS,
                        help="which to run, e.g. a,c (default: all of a-i; g and h are the PostgreSQL ones, "
                             "i is HTTP push)")
    parser.add_argument("--systems", default=",".join(SYSTEM_KEYS),
                        help=f"which systems, comma-separated (default: {','.join(SYSTEM_KEYS)})")
    parser.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "results"),
                        help="directory for the JSON and PNG files (default bench/results)")
    parser.add_argument("--backlog-sizes", help="(e) tasks stored, e.g. 1M,10M (default: 1M,10M; quick 20k)")
    parser.add_argument("--duration", type=float, help="(a) measured seconds per run (default 10; quick 1.5)")
    parser.add_argument("--taskq-producer", choices=("threads", "async"),
                        help="(a) taskq producers: Client.create_task from threads (default) or "
                             "AsyncClient.create_task from coroutines")
    parser.add_argument("--no-install", action="store_true", help="do not apt-get install missing peers")
    arguments = parser.parse_args(argv)
    arguments.scenarios = [s for s in arguments.scenarios.replace(",", "").lower() if s in SCENARIOS]
    arguments.systems = [s.strip() for s in arguments.systems.split(",") if s.strip()]
    unknown = set(arguments.systems) - set(SYSTEM_KEYS)
    if unknown:
        parser.error(f"unknown systems {sorted(unknown)}; choose from {SYSTEM_KEYS}")
    return arguments


def _scale(arguments: argparse.Namespace) -> Scale:
    import dataclasses

    scale = QUICK if arguments.quick else FULL
    changes = {}
    if arguments.backlog_sizes:
        changes["backlog_sizes"] = tuple(_count(s) for s in arguments.backlog_sizes.split(","))
        changes["beanstalk_backlog"] = min(changes["backlog_sizes"])
    if arguments.duration:
        changes["duration_s"] = arguments.duration
    if arguments.taskq_producer:
        changes["taskq_producer"] = arguments.taskq_producer
    return dataclasses.replace(scale, **changes)


def _check_python_dependencies(postgres: bool) -> None:
    missing = []
    needed = [("greenstalk", "greenstalk"), ("nats", "nats-py"), ("matplotlib", "matplotlib"),
              ("taskq.client", "taskq-client")]
    if postgres:
        needed += [("psycopg", "psycopg"), ("asyncpg", "asyncpg"), ("pgqueuer", "pgqueuer"),
                   ("procrastinate", "procrastinate")]
    for module, package in needed:
        try:
            __import__(module)
        except ImportError:
            missing.append(package)
    if missing:
        sys.exit(f"missing Python packages: {', '.join(missing)}; run: pip install -e clients/python -e '.[bench]'")


def _version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def _postgres_version() -> str | None:
    from bench import pgcluster

    bindir = pgcluster.binaries()
    if not bindir:
        return None
    out = subprocess.run([os.path.join(bindir, "postgres"), "--version"], capture_output=True, text=True, check=False)
    # "postgres (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)"
    return out.stdout.strip().removeprefix("postgres (PostgreSQL) ") or None


def environment(scale: Scale, nats_sync: tuple[bool, str]) -> dict:
    def git(*args: str) -> str | None:
        done = subprocess.run(["git", *args], cwd=peers.ROOT, capture_output=True, text=True, check=False)
        return done.stdout.strip() if done.returncode == 0 else None

    cpu = None
    try:
        with open("/proc/cpuinfo") as info:
            cpu = next((line.split(":", 1)[1].strip() for line in info if line.startswith("model name")), None)
    except OSError:
        pass
    return {
        "started": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "scale": scale.name,
        "settings": scale.__dict__,
        "git_commit": git("rev-parse", "HEAD"),
        "git_dirty": bool(git("status", "--porcelain", "--", "server", "clients/python")),
        "machine": {"cpus": os.cpu_count(), "cpu": cpu, "kernel": platform.release(),
                    "python": platform.python_version(), "loadavg": list(os.getloadavg())},
        "versions": {
            "taskq": _version("taskq"), "taskq-client": _version("taskq-client"), "grpcio": _version("grpcio"),
            "rocksdict": _version("rocksdict"), "protobuf": _version("protobuf"), "aiohttp": _version("aiohttp"),
            "beanstalkd": peers.beanstalkd_version(), "greenstalk": _version("greenstalk"),
            "nats-server": peers.nats_version(), "nats-py": _version("nats-py"),
            "postgresql": _postgres_version(), "psycopg": _version("psycopg"), "asyncpg": _version("asyncpg"),
            "pgqueuer": _version("pgqueuer"), "procrastinate": _version("procrastinate"),
        },
        "nats_sync_interval_always": {"supported": nats_sync[0], "reason": nats_sync[1] or None},
        "payload_bytes": 200,
    }


def _systems(keys: list[str], nats_sync: tuple[bool, str]) -> dict[str, systems.System]:
    every = {
        "taskq": systems.taskq(),
        "beanstalkd-b": systems.beanstalkd_b(),
        "beanstalkd-b-f0": systems.beanstalkd_b_f0(),
        "nats-file": systems.nats_file(),
        "nats-file-sync": systems.nats_file_sync_always(*nats_sync),
        "taskq-http": systems.taskq_http(),
    }
    return {key: every[key] for key in SYSTEM_KEYS if key in keys and key in every}


def _pg_systems(keys: list[str]) -> dict[str, systems.PgSystem]:
    every = {"taskq-pg1": systems.taskq_pg(1), "taskq-pg2": systems.taskq_pg(2),
             "pgqueuer": systems.pgqueuer(), "procrastinate": systems.procrastinate()}
    return {key: every[key] for key in PG_SYSTEM_KEYS if key in keys}


def run_scenarios(chosen: dict[str, systems.System], scenarios: list[str], scale: Scale, log,
                  pg_chosen: dict[str, systems.PgSystem] | None = None) -> tuple[list, list]:
    from bench.scenarios import backlog, httppush, postgres, pull, push, ratelimit, scheduled

    everyone = [system for key, system in chosen.items() if key not in HTTP_SYSTEM_KEYS]
    taskq = chosen.get("taskq")
    pull_cases = [(taskq, "pull"), (taskq, "pull_worker")] if taskq else []
    pull_cases += [(s, "pull") for s in everyone if s.client == systems.BEANSTALK_CLIENT]
    pg_everyone = list((pg_chosen or {}).values())
    pg_pull_cases: list[tuple[systems.PgSystem, str]] = []
    for system in pg_everyone:
        pg_pull_cases.append((system, "pull"))
        if system.key == "taskq-pg1":
            pg_pull_cases.append((system, "pull_worker"))
    results, failures = [], []
    plan = {
        "a": ("push end to end", lambda: push.scenario_a(everyone, scale, log)),
        "b": ("pull", lambda: pull.scenario_b(pull_cases, scale, log)),
        "c": ("one at a time", lambda: push.scenario_c(everyone, scale, log)),
        "d": ("scheduled", lambda: scheduled.scenario_d(
            [s for s in everyone if s.key != "beanstalkd-b-f0" and s.key != "nats-file-sync"], scale, log)),
        "e": ("backlog", lambda: backlog.scenario_e(taskq, chosen.get("beanstalkd-b"), scale, log) if taskq else []),
        "f": ("rate limit", lambda: ratelimit.scenario_f([s for s in everyone if s.is_taskq], scale, log)),
        "g": ("PostgreSQL push end to end", lambda: postgres.scenario_g(pg_everyone, scale, log)),
        "h": ("PostgreSQL pull", lambda: postgres.scenario_h(pg_pull_cases, scale, log)),
        "i": ("HTTP push end to end", lambda: httppush.scenario_i(taskq, chosen.get("taskq-http"), scale, log)),
    }
    for key in scenarios:
        title, run = plan[key]
        started = time.monotonic()
        log(f"({key}) {title}")
        try:
            rows = run()
        except Exception as error:  # noqa: BLE001 (one scenario failing must not lose the others)
            log(f"({key}) failed: {error}\n{traceback.format_exc()}")
            failures.append({"scenario": key, "error": str(error), "traceback": traceback.format_exc()})
            rows = []
        finally:
            peers.stop_all()
        results.extend(rows)
        log(f"({key}) done in {time.monotonic() - started:.1f} s")
    return results, failures


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    arguments = parse_args(argv)
    scale = _scale(arguments)
    postgres = any(s in PG_SCENARIOS for s in arguments.scenarios) and any(k in PG_SYSTEM_KEYS for k in arguments.systems)
    _check_python_dependencies(postgres)

    def log(message: str) -> None:
        print(message, flush=True)

    # SIGTERM (CI cancelling the job) stops the servers like Ctrl-C does.
    signal.signal(signal.SIGTERM, _interrupt)
    if not arguments.no_install:
        try:
            peers.ensure_installed({"beanstalkd": "beanstalkd", "nats-server": "nats-server"}, log=log)
        except (peers.PeerUnavailable, subprocess.CalledProcessError) as error:
            print(f"bench: cannot install the peers: {error}", file=sys.stderr)
            return 2
    if postgres:
        from bench import pgcluster

        try:
            if not arguments.no_install:
                pgcluster.ensure_installed(log=log)
            elif not pgcluster.binaries():
                raise peers.PeerUnavailable("PostgreSQL is not installed")
        except peers.PeerUnavailable as error:
            print(f"bench: cannot run the PostgreSQL scenarios: {error}", file=sys.stderr)
            return 2
    nats_sync = peers.nats_supports_sync_always()
    if not nats_sync[0]:
        log(f"NATS JetStream sync_interval: always is not available: {nats_sync[1]}")
    chosen = _systems(arguments.systems, nats_sync)
    pg_chosen = _pg_systems(arguments.systems)
    env = environment(scale, nats_sync)
    log(f"taskq bench ({scale.name}): {env['machine']['cpus']} CPUs, load average {env['machine']['loadavg']}, "
        f"beanstalkd {env['versions']['beanstalkd']}, nats-server {env['versions']['nats-server']}")
    started = time.monotonic()
    try:
        results, failures = run_scenarios(chosen, arguments.scenarios, scale, log, pg_chosen)
    except KeyboardInterrupt:
        peers.stop_all()
        log("interrupted; every server stopped")
        return 130
    finally:
        peers.stop_all()
    elapsed = time.monotonic() - started
    checks = report.targets(results)
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    document = {"environment": {**env, "elapsed_s": round(elapsed, 1),
                                "loadavg_end": list(os.getloadavg())},
                "results": results, "targets": checks, "failures": failures}
    json_path = os.path.join(arguments.out, f"{stamp}.json")
    report.write_json(document, json_path)
    charts = report.charts(results, arguments.out, stamp)
    print()
    print(report.tables(results))
    print()
    print(report.targets_text(checks, arguments.quick))
    print()
    print(f"results: {json_path}")
    for chart in charts:
        print(f"chart:   {chart}")
    print(f"took {elapsed:.0f} s")
    if failures:
        print(f"FAILED scenarios: {', '.join(f['scenario'] for f in failures)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
