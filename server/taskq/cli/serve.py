"""`taskq serve`: run the server until SIGTERM or SIGINT, then drain and exit 0."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys

from taskq import eventlog
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
    tls = parser.add_argument_group("TLS (docs/security.md; certificates replaced on disk are reloaded)")
    tls.add_argument("--tls-cert-file", dest="tls_cert_file", help="the server's certificate chain, PEM (with "
                     "--tls-key-file: TLS on the gRPC and HTTP ports)")
    tls.add_argument("--tls-key-file", dest="tls_key_file", help="its private key, PEM, unencrypted")
    tls.add_argument("--tls-client-ca-file", dest="tls_client_ca_file",
                     help="CA certificates, PEM: clients must present a certificate signed by one (mTLS)")
    tls.add_argument("--tls-reload-interval-seconds", dest="tls_reload_interval_seconds", type=float,
                     help="how often the HTTP port looks for replaced TLS files (default 10)")
    auth = parser.add_argument_group("authentication and roles (docs/security.md)")
    auth.add_argument("--auth-tokens-file", dest="auth_tokens_file",
                      help="YAML file of bearer tokens (their SHA-256; `taskq token create` makes one) and the roles "
                      "of JWT subjects and certificate identities; reloaded when it changes")
    auth.add_argument("--auth-reload-interval-seconds", dest="auth_reload_interval_seconds", type=float,
                      help="how often the tokens file is looked at for changes (default 5)")
    auth.add_argument("--auth-open-services", dest="auth_open_services",
                      help="what needs no credentials: health, reflection, metrics (the HTTP port's /metrics), "
                      "comma-separated, or none (default health,reflection)")
    auth.add_argument("--jwt-jwks-file", dest="jwt_jwks_file", help="JWTs as bearer tokens: the JWKS file of their keys")
    auth.add_argument("--jwt-jwks-url", dest="jwt_jwks_url", help="... or an https:// URL of it (fetched and cached)")
    auth.add_argument("--jwt-issuer", dest="jwt_issuer", help="the iss JWTs must name")
    auth.add_argument("--jwt-audience", dest="jwt_audience", help="the aud JWTs must name")
    auth.add_argument("--jwt-algorithms", dest="jwt_algorithms", help="accepted signature algorithms (default RS256,ES256)")
    auth.add_argument("--jwt-clock-skew-seconds", dest="jwt_clock_skew_seconds", type=float,
                      help="leeway on exp and nbf (default 60)")
    auth.add_argument("--jwt-identity-claim", dest="jwt_identity_claim", help="the claim naming the caller (default sub)")
    auth.add_argument("--jwt-roles-claim", dest="jwt_roles_claim",
                      help="a claim holding the caller's roles (default: roles from the tokens file's identities)")
    auth.add_argument("--jwt-jwks-refresh-seconds", dest="jwt_jwks_refresh_seconds", type=float,
                      help="fetch --jwt-jwks-url again after this long (default 300)")
    auth.add_argument("--insecure", action="store_true", default=None,
                      help="allow listening on non-loopback addresses with no authentication: anyone who reaches a "
                      "port may call everything")
    parser.add_argument("--log-level", dest="log_level", help="debug, info, warning or error (default info)")
    parser.add_argument("--log-format", dest="log_format", choices=("text", "json"), help="log format (default text)")
    parser.add_argument("--event-log", dest="event_log",
                        help="where the event log's JSON lines go (queue life cycles, lease expiries, dead letters, "
                        "deletes): stderr (default), a file to append to, or off")
    parser.add_argument("--otlp-endpoint", dest="otlp_endpoint",
                        help="trace gRPC calls with OpenTelemetry and export the spans over OTLP/gRPC to this "
                        "http:// or https:// URL (e.g. http://localhost:4317); unset: no tracing (docs/tracing.md)")
    parser.set_defaults(run=run)


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": eventlog.timestamp(int(record.created * 1_000_000)),
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
    # gRPC's own chatter (its Python loggers, and the C core's, which GRPC_VERBOSITY governs
    # and which must be set before the first channel or server) stays out of --log-level
    # debug: taskq's debug lines are about taskq.
    logging.getLogger("grpc").setLevel(max(logging.WARNING, logging.getLevelName(level.upper())))
    logging.getLogger("asyncio").setLevel(max(logging.WARNING, logging.getLevelName(level.upper())))
    os.environ.setdefault("GRPC_VERBOSITY", "ERROR")


def run(arguments: argparse.Namespace) -> int:
    flags = {name: value for name, value in vars(arguments).items() if name != "run"}
    try:
        config = load(flags)
    except ConfigError as error:
        print(f"taskq serve: {error}", file=sys.stderr)
        return 2
    _configure_logging(config.log_level, config.log_format)
    eventlog.configure(config.event_log)
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
