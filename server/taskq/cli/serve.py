"""`taskq serve`: run the server until SIGTERM or SIGINT, then drain and exit 0."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys

from taskq.app import StartupError, build_server
from taskq.config import ConfigError, load


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="run the taskq server",
        description="Run the taskq server. Every option can also be set with an environment variable "
        "(TASKQ_LISTEN, TASKQ_DATA_DIR, ...) or in a YAML file given with --config.",
    )
    parser.add_argument("--config", help="YAML file of settings (same names as the options, with _ or -)")
    parser.add_argument("--listen", help="host:port to listen on; port 0 picks a free one (default 127.0.0.1:50051)")
    parser.add_argument("--data-dir", dest="data_dir", help="RocksDB data directory (default ./taskq-data)")
    parser.add_argument("--database", help="PostgreSQL connection string: keep the data there instead of --data-dir; "
                        "any number of servers may share it")
    parser.add_argument("--database-pool-size", dest="database_pool_size", type=int,
                        help="connections to PostgreSQL per server (default 16)")
    parser.add_argument("--database-notify", dest="database_notify",
                        help="connection string for LISTEN/NOTIFY when --database goes through a transaction pooler")
    parser.add_argument("--database-prepared-statements", dest="database_prepared_statements", choices=("on", "off"),
                        help="server-side prepared statements (default on; off behind PgBouncer < 1.21 in transaction mode)")
    parser.add_argument("--database-poll-interval-seconds", dest="database_poll_interval_seconds", type=float,
                        help="with --database: waiters look for work at least this often even without a "
                        "notification from another server (default 2)")
    parser.add_argument(
        "--durability", choices=("fsync", "nosync"),
        help="fsync (default): answered writes survive power loss; nosync: they survive a process crash only",
    )
    parser.add_argument("--min-free-disk-mb", dest="min_free_disk_mb", type=int,
                        help="free disk space kept in reserve, MiB: below it new tasks are refused (default 256; "
                        "0 disables)")
    parser.add_argument("--write-buffer-mb", dest="write_buffer_mb", type=int,
                        help="RocksDB memtable size, MiB; a restart after a crash needs about this much free disk "
                        "(default 64)")
    parser.add_argument("--queues", dest="queues_file", help="queue.yaml declaring queues (App Engine format works)")
    parser.add_argument("--max-task-bytes", dest="max_task_bytes", type=int, help="largest task in bytes (default 1 MiB)")
    parser.add_argument("--max-message-bytes", dest="max_message_bytes", type=int,
                        help="gRPC message-size limit in bytes (default 32 MiB)")
    parser.add_argument("--max-schedule-ahead-seconds", dest="max_schedule_ahead_seconds", type=int,
                        help="how far ahead a schedule_time may be (default 365 days)")
    parser.add_argument("--grace-period-seconds", dest="grace_period_seconds", type=float,
                        help="time in-flight calls get to finish at shutdown (default 10)")
    parser.add_argument("--max-connection-age-seconds", dest="max_connection_age_seconds", type=float,
                        help="close connections after this age so clients rebalance; 0 disables (default 3600)")
    parser.add_argument("--http-listen", dest="http_listen",
                        help="host:port of the HTTP port (the App Engine API bridge, POST /rpc_http); unset: none")
    parser.add_argument("--health-listen", dest="health_listen",
                        help="host:port of a plain-text port serving only gRPC health, for probes that cannot use "
                        "TLS (Kubernetes' gRPC probes); unset: none")
    parser.add_argument("--http-allow-networks", dest="http_allow_networks",
                        help="networks HTTP push may reach although not public, comma-separated CIDRs "
                        "(default none: only public addresses)")
    parser.add_argument("--http-signing-secrets", dest="http_signing_secrets",
                        help="secrets that sign HTTP push requests (X-Taskq-Signature), comma-separated; prefer "
                        "TASKQ_HTTP_SIGNING_SECRETS")
    parser.add_argument("--http-max-in-flight", dest="http_max_in_flight", type=int,
                        help="HTTP push requests of one queue in flight from this server (default 1000)")
    parser.add_argument("--http-connect-timeout-seconds", dest="http_connect_timeout_seconds", type=float,
                        help="how long an HTTP push may take to connect: DNS, TCP, TLS (default 10)")
    parser.add_argument("--appengine-url", dest="appengine_url",
                        help="base URL of the App Engine app: queue.yaml push queues and the default queue deliver "
                        "there over HTTP")
    parser.add_argument("--appengine-targets", dest="appengine_targets",
                        help="base URLs of queue.yaml targets: target=url,target2=url2")
    parser.add_argument("--log-level", dest="log_level", help="debug, info, warning or error (default info)")
    parser.add_argument("--log-format", dest="log_format", choices=("text", "json"), help="log format (default text)")
    parser.set_defaults(run=run)


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def _configure_logging(level: str, log_format: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if log_format == "json":
        handler.setFormatter(_JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)


def run(arguments: argparse.Namespace) -> int:
    flags = {name: value for name, value in vars(arguments).items() if name != "run"}
    try:
        config = load(flags)
    except ConfigError as error:
        print(f"taskq serve: {error}", file=sys.stderr)
        return 2
    _configure_logging(config.log_level, config.log_format)
    return asyncio.run(_serve(config))


async def _serve(config) -> int:
    # Signal handlers go in before anything else: a SIGTERM that arrives during start-up must
    # still drain and exit 0, not kill the process mid-way.
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    server = build_server(config)
    try:
        port = await server.start()
    except StartupError as error:
        print(f"taskq serve: {error}", file=sys.stderr)
        return 1
    host = config.listen.rpartition(":")[0]
    # Scripts and tests read this line to learn the port when --listen ends in :0.
    print(f"taskq listening on {host}:{port}", flush=True)
    await stop.wait()
    await server.stop()
    return 0
