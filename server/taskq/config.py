"""Every server setting: its default, unit and meaning, from flags, environment or a file.

Precedence, highest first: command-line flags, environment variables (TASKQ_<NAME>, e.g.
TASKQ_DATA_DIR), the config file (`--config taskq.yaml`, the same names as keys), defaults.
An empty environment variable unsets a setting that is unset by default
(TASKQ_AUTH_TOKENS_FILE= where an image sets one).
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import yaml

from taskq.core import http_push
from taskq.core.errors import InvalidArgument
from taskq.core.limits import DAY, SECOND, ServerLimits
from taskq.httppush.guard import Network, parse_networks
from taskq.store.database import Durability
from taskq.tls import TlsFiles

if TYPE_CHECKING:
    from taskq.queue_file import AppEngineRouting


class ConfigError(Exception):
    """A setting is missing, malformed or out of range; the message says which and why."""


@dataclasses.dataclass
class Config:
    #: Address to listen on, host:port. Port 0 picks a free port (printed at start-up).
    listen: str = "127.0.0.1:50051"
    #: The RocksDB data directory; created if missing. One server per directory.
    data_dir: str = "./taskq-data"
    #: A PostgreSQL connection string (postgresql://user:password@host:port/dbname or
    #: "host=... dbname=..."): when set, the server keeps its data there instead of in
    #: data_dir, and any number of servers may share it (docs/postgres.md).
    database: str | None = None
    #: Connections each server keeps open to PostgreSQL (also its number of worker threads).
    database_pool_size: int = 16
    #: On a shared database, waiters (long-polling LeaseTasks calls, push dispatchers) are woken
    #: by the other servers' notifications (LISTEN/NOTIFY); they also look again at least this
    #: often, seconds, in case a notification was missed (while the listening connection was
    #: being re-established). Lower costs idle queries; higher delays a wake-up that was missed.
    database_poll_interval_seconds: float = 2.0
    #: Where the server LISTENs for other servers' wake-ups, if not `database`: LISTEN needs a
    #: session of its own, which a transaction-mode connection pooler (PgBouncer) cannot give.
    database_notify: str | None = None
    #: Server-side prepared statements ("on" or "off"; psycopg prepares a statement after 5
    #: runs). "off" behind a transaction-mode PgBouncer older than 1.21.
    database_prepared_statements: str = "on"
    #: fsync: an answered write survives power loss (default). nosync: it survives a crash of
    #: the process but not of the machine; faster.
    durability: str = "fsync"
    #: Free space kept on the data directory's disk, MiB: below it, new tasks are refused
    #: (RESOURCE_EXHAUSTED, DISK_FULL) and the server reports NOT_SERVING, while workers can
    #: still acknowledge and delete. Keep it above write_buffer_mb: a restart after a crash
    #: needs about that much to replay the write-ahead log. 0 disables the check.
    min_free_disk_mb: int = 256
    #: RocksDB's memtable size, MiB: how much is written to the log before it is flushed to
    #: table files. Larger is faster for big bursts; a restart after a crash needs about this
    #: much free disk.
    write_buffer_mb: int = 64
    #: Largest task (payload + attributes + tag), bytes.
    max_task_bytes: int = 1024 * 1024
    #: gRPC message-size limit, bytes; must exceed max_task_bytes so that an oversized task is
    #: refused by taskq with a clear reason rather than by the transport.
    max_message_bytes: int = 32 * 1024 * 1024
    #: How far ahead a schedule_time may be, seconds (App Engine and Cloud Tasks: 30 days).
    max_schedule_ahead_seconds: int = 365 * 86400
    #: A queue.yaml (App Engine format accepted) declaring queues at start-up.
    queues_file: str | None = None
    #: On SIGTERM/SIGINT, how long in-flight calls may take to finish, seconds.
    grace_period_seconds: float = 10.0
    #: Server keepalive pings on idle connections, seconds; and how long to wait for the ack.
    keepalive_time_seconds: float = 60.0
    keepalive_timeout_seconds: float = 20.0
    #: Clients may ping this often without data, seconds (lower would be "too many pings").
    min_ping_interval_seconds: float = 10.0
    #: Connections are closed (GOAWAY) after this age, seconds, so clients rebalance behind
    #: proxies; 0 disables. Calls in flight get max_connection_age_grace_seconds to finish.
    max_connection_age_seconds: float = 3600.0
    max_connection_age_grace_seconds: float = 300.0
    #: Idle connections are closed after this long, seconds; 0 disables.
    max_connection_idle_seconds: float = 0.0
    #: An idle push stream gets a heartbeat message this often, seconds (proxies close silent
    #: streams; 30 s is the promise of the API).
    stream_heartbeat_seconds: float = 20.0
    #: Concurrent calls per HTTP/2 connection.
    max_concurrent_streams: int = 1000
    #: The HTTP port, host:port (port 0 picks one): the App Engine API bridge (POST /rpc_http).
    #: Unset: no HTTP port.
    http_listen: str | None = None
    #: A plain-text port that serves only gRPC health, host:port (port 0 picks one), for probes
    #: that cannot use TLS or credentials (Kubernetes' native gRPC probes). Unset: none.
    health_listen: str | None = None
    #: HTTP push may reach these networks although they are not public (comma-separated CIDRs,
    #: like 10.0.0.0/8,127.0.0.1): by default only public addresses are, so that whoever can
    #: create tasks cannot make the server call private services (SSRF).
    http_allow_networks: str = ""
    #: Secrets HTTP push requests are signed with (X-Taskq-Signature), comma-separated; the
    #: first signs, all are listed so that handlers can move to a new one. Prefer the
    #: environment (TASKQ_HTTP_SIGNING_SECRETS) or the config file to a flag. Unset: unsigned.
    http_signing_secrets: str | None = None
    #: HTTP push requests of one queue in flight from this server, at most.
    http_max_in_flight: int = 1000
    #: How long an HTTP push may take to connect (DNS, TCP, TLS), seconds.
    http_connect_timeout_seconds: float = 10.0
    #: The App Engine application's base URL (http://host:port): the push queues a queue.yaml
    #: declares, and the implicit `default` queue, deliver their tasks there over HTTP.
    appengine_url: str | None = None
    #: Base URLs of queue.yaml `target:` values (App Engine services or versions), as
    #: target=url pairs separated by commas (worker=http://worker:8080,...).
    appengine_targets: str | None = None
    #: TLS on both ports (gRPC and http_listen): the certificate chain and its private key, PEM
    #: files; both or neither (neither: plain text). Replaced files are used for new
    #: connections without a restart (docs/security.md).
    tls_cert_file: str | None = None
    tls_key_file: str | None = None
    #: CA certificates (PEM) that sign the clients' certificates: when set, both ports require
    #: a client certificate signed by one of them (mTLS). Reloaded like the others.
    tls_client_ca_file: str | None = None
    #: How often the HTTP port looks for replaced TLS files, seconds (the gRPC port looks
    #: before each new connection's handshake).
    tls_reload_interval_seconds: float = 10.0
    #: Authentication (docs/security.md): the tokens file, YAML: bearer tokens (the SHA-256 of
    #: each, never the token) with their roles, and the roles of JWT subjects and client
    #: certificate identities. Read again when it changes. Without it and without JWTs or a
    #: client CA, nobody is authenticated and the ports listen only on loopback addresses
    #: unless `insecure` is set.
    auth_tokens_file: str | None = None
    #: How often the tokens file (and a JWKS file) is looked at for changes, seconds; the
    #: look is made by the first call after the interval.
    auth_reload_interval_seconds: float = 5.0
    #: With authentication on, what needs no credentials: gRPC health and reflection, the
    #: HTTP port's /metrics (comma-separated), or none. Closed, health and reflection take any
    #: authenticated caller, /metrics one with viewer on every queue.
    auth_open_services: str = "health,reflection"
    #: JWTs as bearer tokens: the keys (a JWKS file, or an https:// URL fetched and cached),
    #: the issuer (iss) and audience (aud) they must name, the algorithms accepted, the clock
    #: skew allowed on exp and nbf (seconds), the claim naming the caller, and a claim holding
    #: its roles (unset: roles from the tokens file's identities by name).
    jwt_jwks_file: str | None = None
    jwt_jwks_url: str | None = None
    jwt_issuer: str | None = None
    jwt_audience: str | None = None
    jwt_algorithms: str = "RS256,ES256"
    jwt_clock_skew_seconds: float = 60.0
    jwt_identity_claim: str = "sub"
    jwt_roles_claim: str | None = None
    #: How old a JWKS fetched from jwt_jwks_url may get before it is fetched again, seconds.
    jwt_jwks_refresh_seconds: float = 300.0
    #: Listen on addresses other than loopback without any authentication: whoever reaches a
    #: port may then call everything. Off: such a start is refused.
    insecure: bool = False
    #: Logging: level (debug, info, warning, error) and format (text or json).
    log_level: str = "info"
    log_format: str = "text"
    #: The event log (taskq/eventlog.py: queues' life cycles, lease expiries, dead letters,
    #: deletes; JSON lines): "stderr", a file to append to, or "off".
    event_log: str = "stderr"
    #: Tracing (docs/tracing.md): the OTLP/gRPC receiver spans are exported to, an http://
    #: (plain text) or https:// URL such as http://localhost:4317 (an OpenTelemetry
    #: Collector). Unset: no spans are made.
    otlp_endpoint: str | None = None

    def limits(self) -> ServerLimits:
        return ServerLimits(
            max_task_bytes=self.max_task_bytes,
            max_schedule_ahead_us=self.max_schedule_ahead_seconds * SECOND,
            max_message_bytes=self.max_message_bytes,
        )

    def allowed_networks(self) -> list[Network]:
        return parse_networks(self.http_allow_networks)

    def signing_secrets(self) -> list[bytes]:
        return [part.strip().encode() for part in (self.http_signing_secrets or "").split(",") if part.strip()]

    def appengine_target_urls(self) -> dict[str, str]:
        """queue.yaml target -> base URL, from appengine_targets (and appengine_url)."""
        urls: dict[str, str] = {}
        for base in filter(None, [self.appengine_url]):
            check_base_url(base, "appengine_url")
        for pair in (self.appengine_targets or "").split(","):
            if not pair.strip():
                continue
            name, separator, url = pair.partition("=")
            if not separator or not name.strip():
                raise ValueError(f"appengine_targets must be target=url pairs separated by commas, not {pair!r}")
            check_base_url(url.strip(), f"appengine_targets ({name.strip()})")
            urls[name.strip()] = url.strip()
        return urls

    def appengine_routing(self) -> AppEngineRouting:
        from taskq.queue_file import AppEngineRouting

        return AppEngineRouting(self.appengine_url, self.appengine_target_urls())

    def tls_files(self) -> TlsFiles | None:
        """The TLS files, or None for plain text."""
        if self.tls_cert_file is None or self.tls_key_file is None:
            return None
        return TlsFiles(self.tls_cert_file, self.tls_key_file, self.tls_client_ca_file)

    def jwt_enabled(self) -> bool:
        return self.jwt_jwks_file is not None or self.jwt_jwks_url is not None

    def authenticates(self) -> bool:
        """Whether callers are authenticated: by tokens or JWTs with roles, or (client CA
        alone) by their certificates, every holder of one being allowed everything."""
        return self.auth_tokens_file is not None or self.jwt_enabled() or self.tls_client_ca_file is not None

    def checks_roles(self) -> bool:
        """Whether calls are checked against roles (tokens file or JWTs configured)."""
        return self.auth_tokens_file is not None or self.jwt_enabled()

    def open_services(self) -> frozenset[str]:
        """auth_open_services as gRPC service names."""
        from taskq.auth.gate import OPEN_SERVICE_NAMES

        names: set[str] = set()
        for part in self._open_parts():
            names.update(OPEN_SERVICE_NAMES.get(part, ()))
        return frozenset(names)

    def open_http_paths(self) -> frozenset[str]:
        """auth_open_services as paths of the HTTP port (metrics: /metrics)."""
        return frozenset({"/metrics"} if "metrics" in self._open_parts() else ())

    def _open_parts(self) -> list[str]:
        return [part.strip() for part in self.auth_open_services.split(",") if part.strip() not in ("", "none")]

    def durability_mode(self) -> Durability:
        return Durability(self.durability)

    def check(self) -> Config:
        """Raises ConfigError for an invalid combination; returns self."""
        if self.durability not in ("fsync", "nosync"):
            raise ConfigError(f"durability must be fsync or nosync, not {self.durability!r}")
        host, _, port = self.listen.rpartition(":")
        if not host or not port.isdigit() or int(port) > 65535:
            raise ConfigError(f"listen must be host:port (port 0 picks one), not {self.listen!r}")
        if self.database is not None and not self.database.strip():
            raise ConfigError("database must be a PostgreSQL connection string when given")
        if not 2 <= self.database_pool_size <= 500:
            raise ConfigError("database_pool_size must be between 2 and 500")
        if self.database_prepared_statements not in ("on", "off"):
            raise ConfigError(
                f"database_prepared_statements must be on or off, not {self.database_prepared_statements!r}"
            )
        if not 0.01 <= self.database_poll_interval_seconds <= 3600:
            raise ConfigError("database_poll_interval_seconds must be between 0.01 and 3600")
        if self.min_free_disk_mb < 0:
            raise ConfigError("min_free_disk_mb must not be negative")
        if not 1 <= self.write_buffer_mb <= 4096:
            raise ConfigError("write_buffer_mb must be between 1 and 4096")
        if self.max_task_bytes < 1:
            raise ConfigError("max_task_bytes must be positive")
        if self.max_message_bytes < self.max_task_bytes + 64 * 1024:
            raise ConfigError(
                f"max_message_bytes ({self.max_message_bytes}) must exceed max_task_bytes "
                f"({self.max_task_bytes}) by at least 64 KiB"
            )
        if not 0 < self.max_schedule_ahead_seconds * SECOND <= 3650 * DAY:
            raise ConfigError("max_schedule_ahead_seconds must be between 1 and 3650 days")
        for name in ("http_listen", "health_listen"):
            address = getattr(self, name)
            if address is not None:
                host, _, port = address.rpartition(":")
                if not host or not port.isdigit() or int(port) > 65535:
                    raise ConfigError(f"{name} must be host:port (port 0 picks one), not {address!r}")
        try:
            self.allowed_networks()
        except ValueError as error:
            raise ConfigError(f"http_allow_networks: {error}") from None
        if self.http_signing_secrets is not None and not self.signing_secrets():
            raise ConfigError("http_signing_secrets must hold at least one non-empty secret when given")
        if not 1 <= self.http_max_in_flight <= 100_000:
            raise ConfigError("http_max_in_flight must be between 1 and 100000")
        if not 0 < self.http_connect_timeout_seconds <= 600:
            raise ConfigError("http_connect_timeout_seconds must be more than 0 and at most 600")
        try:
            self.appengine_target_urls()
        except ValueError as error:
            raise ConfigError(str(error)) from None
        for name in ("tls_cert_file", "tls_key_file", "tls_client_ca_file"):
            if getattr(self, name) is not None and not getattr(self, name).strip():
                raise ConfigError(f"{name} must be a file name when given")
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ConfigError("tls_cert_file and tls_key_file go together: give both for TLS, or neither")
        if self.tls_client_ca_file is not None and self.tls_cert_file is None:
            raise ConfigError("tls_client_ca_file (mTLS) needs TLS: give tls_cert_file and tls_key_file too")
        if not 0.1 <= self.tls_reload_interval_seconds <= 86400:
            raise ConfigError("tls_reload_interval_seconds must be between 0.1 and 86400")
        self._check_auth()
        if self.event_log not in ("stderr", "off") and not os.path.isdir(os.path.dirname(os.path.abspath(self.event_log))):
            raise ConfigError(f"event_log must be stderr, off or a file in an existing directory, not {self.event_log!r}")
        if self.log_format not in ("text", "json"):
            raise ConfigError(f"log_format must be text or json, not {self.log_format!r}")
        if self.log_level.lower() not in ("debug", "info", "warning", "error"):
            raise ConfigError(f"log_level must be debug, info, warning or error, not {self.log_level!r}")
        if self.otlp_endpoint is not None:
            from taskq.tracing.provider import check_endpoint

            try:
                check_endpoint(self.otlp_endpoint)
            except ValueError as error:
                raise ConfigError(str(error)) from None
        if not 0 < self.stream_heartbeat_seconds <= 30:
            raise ConfigError("stream_heartbeat_seconds must be more than 0 and at most 30")
        for name in ("grace_period_seconds", "keepalive_time_seconds", "keepalive_timeout_seconds",
                     "min_ping_interval_seconds", "max_connection_age_seconds",
                     "max_connection_age_grace_seconds", "max_connection_idle_seconds"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must not be negative")
        return self

    def _check_auth(self) -> None:
        for name in ("auth_tokens_file", "jwt_jwks_file", "jwt_jwks_url", "jwt_issuer", "jwt_audience", "jwt_roles_claim"):
            if getattr(self, name) is not None and not getattr(self, name).strip():
                raise ConfigError(f"{name} must not be empty when given")
        if not 0.1 <= self.auth_reload_interval_seconds <= 86400:
            raise ConfigError("auth_reload_interval_seconds must be between 0.1 and 86400")
        for part in self.auth_open_services.split(","):
            if part.strip() not in ("", "none", "health", "reflection", "metrics"):
                raise ConfigError(f"auth_open_services must list health, reflection and/or metrics (or none), not "
                                  f"{part.strip()!r}")
        jwt_settings = [name for name in ("jwt_issuer", "jwt_audience", "jwt_roles_claim") if getattr(self, name)]
        if self.jwt_jwks_file is not None and self.jwt_jwks_url is not None:
            raise ConfigError("jwt_jwks_file and jwt_jwks_url exclude each other: give the keys one way")
        if self.jwt_enabled():
            if not self.jwt_issuer or not self.jwt_audience:
                raise ConfigError("JWTs need jwt_issuer and jwt_audience: the issuer and audience tokens must name")
            if self.jwt_jwks_url is not None:
                from taskq.auth.jwts import check_jwks_url

                try:
                    check_jwks_url(self.jwt_jwks_url)
                except ValueError as error:
                    raise ConfigError(str(error)) from None
            unknown = [a for a in self.jwt_algorithm_list() if a not in JWT_ALGORITHMS]
            if unknown or not self.jwt_algorithm_list():
                raise ConfigError(f"jwt_algorithms must be some of {', '.join(JWT_ALGORITHMS)}, not "
                                  f"{self.jwt_algorithms!r}")
            if not 0 <= self.jwt_clock_skew_seconds <= 3600:
                raise ConfigError("jwt_clock_skew_seconds must be between 0 and 3600")
            if not 10 <= self.jwt_jwks_refresh_seconds <= 86400:
                raise ConfigError("jwt_jwks_refresh_seconds must be between 10 and 86400")
        elif jwt_settings:
            raise ConfigError(f"{jwt_settings[0]} needs jwt_jwks_file or jwt_jwks_url (the keys JWTs are checked with)")
        if not self.authenticates() and not self.insecure:
            for name in ("listen", "http_listen"):
                address = getattr(self, name)
                if address is not None and not is_loopback(address):
                    raise ConfigError(
                        f"{name} {address} is not a loopback address and no authentication is configured: give "
                        "auth_tokens_file (or JWT settings, or a client CA), or --insecure to let anyone who reaches "
                        "the port call everything"
                    )

    def jwt_algorithm_list(self) -> list[str]:
        return [part.strip() for part in self.jwt_algorithms.split(",") if part.strip()]


#: The JWT signature algorithms jwt_algorithms may name (PyJWT's with the cryptography backend).
JWT_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA",
                  "HS256", "HS384", "HS512")


def is_loopback(address: str) -> bool:
    """Whether host:port names a loopback address (127.0.0.0/8, ::1, localhost): only this
    machine can connect. 0.0.0.0, [::] and other names are not."""
    host = address.rpartition(":")[0].strip("[]")
    if host.lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_base_url(url: str, name: str) -> None:
    try:
        http_push.check_url(url, name, path_allowed=False)
    except InvalidArgument as error:
        raise ValueError(error.message) from None


FIELDS = {field.name: field for field in dataclasses.fields(Config)}
_BOOLEANS = {"true": True, "1": True, "yes": True, "on": True, "false": False, "0": False, "no": False, "off": False, "": False}


def _coerce(name: str, value: Any, source: str) -> Any:
    field = FIELDS[name]
    kind = field.type
    try:
        if value is None:
            return None
        if kind == "int":
            return int(value)
        if kind == "float":
            return float(value)
        if kind == "bool":
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text not in _BOOLEANS:
                raise ValueError
            return _BOOLEANS[text]
        return str(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{source}: {name} must be a {kind}, not {value!r}") from None


def load(flags: dict[str, Any], environ: Mapping[str, str] | None = None) -> Config:
    """The configuration from flags (None = not given), the environment and the config file."""
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    config_file = flags.get("config") or environ.get("TASKQ_CONFIG")
    if config_file:
        try:
            with open(config_file) as handle:
                document = yaml.safe_load(handle) or {}
        except OSError as error:
            raise ConfigError(f"cannot read the config file {config_file}: {error.strerror}") from None
        except yaml.YAMLError as error:
            raise ConfigError(f"{config_file} is not valid YAML: {error}") from None
        if not isinstance(document, dict):
            raise ConfigError(f"{config_file} must be a mapping of setting names to values")
        for key, value in document.items():
            name = str(key).replace("-", "_")
            if name not in FIELDS:
                raise ConfigError(f"{config_file}: unknown setting {key!r}")
            values[name] = _coerce(name, value, config_file)
    for name in FIELDS:
        variable = f"TASKQ_{name.upper()}"
        if variable in environ:
            if environ[variable] == "" and FIELDS[name].default is None:
                # Unsets it: how a container drops a file setting its image sets (the tokens file).
                values[name] = None
                continue
            values[name] = _coerce(name, environ[variable], variable)
    for name, value in flags.items():
        if name in FIELDS and value is not None:
            values[name] = _coerce(name, value, f"--{name.replace('_', '-')}")
    return Config(**values).check()
