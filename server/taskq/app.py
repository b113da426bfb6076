"""Wiring: build_server(config) gives a server with services, health, reflection, the store,
the engine and its loops; start() listens and opens the database; stop() drains gracefully.

Start-up order: bind the port (a port in use fails at once) with every service NOT_SERVING
except liveness, open the database in a thread (a directory locked by another server fails
at once), declare queues from --queues, then mark the services SERVING. While the storage
has failed and is being reopened (core/engine.py), the services are NOT_SERVING again.

Shutdown: health goes NOT_SERVING, waiting LeaseTasks calls return, streams end (their tasks
released), in-flight calls get the grace period, pending writes are committed, and the
database is closed.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
from typing import TYPE_CHECKING

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection, reflection_pb2_grpc

from taskq.api.admin import AdminServicer
from taskq.api.engine_ref import EngineRef
from taskq.api.queues import QueueServicer
from taskq.api.services import add_service, add_unary_methods
from taskq.api.stream import StreamHandler
from taskq.api.tasks import TaskServicer
from taskq.auth.auth_file import AuthFileError
from taskq.auth.authenticator import Authenticator
from taskq.auth.gate import Gate
from taskq.auth.jwts import JwksError
from taskq.auth.roles import Grant
from taskq.auth.setup import configure, describe
from taskq.cloudtasks import service_v2beta2
from taskq.cloudtasks.service_v2 import SERVICE as CLOUD_TASKS_V2
from taskq.cloudtasks.service_v2 import CloudTasksV2
from taskq.config import Config, ConfigError
from taskq.console import register as register_console
from taskq.core import limits
from taskq.core.clock import Clock, SystemClock
from taskq.core.engine import Engine
from taskq.core.errors import QueueAlreadyExists
from taskq.core.model import HttpTarget, Queue, QueueType, RetryPolicy
from taskq.eventlog import EventLog
from taskq.httppush.delivery import HttpPush, HttpPushSettings
from taskq.metrics.exporter import Metrics
from taskq.store.base import StoreError
from taskq.store.commit import CommitLoop
from taskq.store.database import Database
from taskq.store.disk import DiskSpace
from taskq.store.faults import Faults
from taskq.store.rocksdb import RocksStore
from taskq.tls import CertificateFiles, CertificateReloader, TlsFileError, grpc_credentials
from taskq.v1 import admin_service_pb2, queue_service_pb2, task_service_pb2
from taskq.web import HttpPort

if TYPE_CHECKING:
    from taskq.tracing.provider import Tracing

log = logging.getLogger(__name__)

#: App Engine's implicit queue: push, 5 tasks a second, a bucket of 5, names kept 9 days.
DEFAULT_QUEUE = Queue(
    queue_id="default",
    type=QueueType.PUSH,
    retry=RetryPolicy(0, 0, limits.DEFAULT_MIN_BACKOFF_US, limits.DEFAULT_MAX_BACKOFF_US, limits.DEFAULT_MAX_DOUBLINGS),
    dispatch_deadline_us=limits.DEFAULT_DISPATCH_DEADLINE_US,
    task_ttl_us=limits.DEFAULT_TASK_TTL_US,
    tombstone_ttl_us=9 * limits.DAY,
    max_dispatches_per_second=5.0,
    max_burst_size=5,
)

TASK_SERVICE = task_service_pb2.DESCRIPTOR.services_by_name["TaskService"].full_name
QUEUE_SERVICE = queue_service_pb2.DESCRIPTOR.services_by_name["QueueService"].full_name
ADMIN_SERVICE = admin_service_pb2.DESCRIPTOR.services_by_name["AdminService"].full_name
#: Health service names: "" is the whole server, "liveness" the process, the others readiness.
LIVENESS = "liveness"
READINESS_SERVICES = ("", TASK_SERVICE, QUEUE_SERVICE, ADMIN_SERVICE, CLOUD_TASKS_V2, service_v2beta2.SERVICE)


class StartupError(Exception):
    """The server cannot start; the message says why in one line."""


def _grpc_options(config: Config) -> list[tuple[str, int]]:
    def ms(seconds: float) -> int:
        return int(seconds * 1000)

    options = [
        ("grpc.so_reuseport", 0),  # a second server on the same port must fail, not share it
        ("grpc.max_receive_message_length", config.max_message_bytes),
        ("grpc.max_send_message_length", config.max_message_bytes),
        ("grpc.keepalive_time_ms", ms(config.keepalive_time_seconds)),
        ("grpc.keepalive_timeout_ms", ms(config.keepalive_timeout_seconds)),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.min_ping_interval_without_data_ms", ms(config.min_ping_interval_seconds)),
        ("grpc.http2.max_ping_strikes", 2),
        ("grpc.max_concurrent_streams", config.max_concurrent_streams),
    ]
    if config.max_connection_age_seconds > 0:
        options.append(("grpc.max_connection_age_ms", ms(config.max_connection_age_seconds)))
        options.append(("grpc.max_connection_age_grace_ms", ms(config.max_connection_age_grace_seconds)))
    if config.max_connection_idle_seconds > 0:
        options.append(("grpc.max_connection_idle_ms", ms(config.max_connection_idle_seconds)))
    return options


class TaskqServer:
    """One taskq server: a gRPC server, a RocksDB directory and the engine between them."""

    def __init__(self, config: Config, clock: Clock | None = None, background: bool = True) -> None:
        self.config = config
        self._clock = clock
        self._background = background
        self.engine_ref = EngineRef()
        self.engine: Engine | None = None
        self.health = health.aio.HealthServicer()
        #: Prometheus metrics, served at /metrics on the HTTP port: counted only when it is on.
        self.metrics = Metrics() if config.http_listen else None
        #: OpenTelemetry spans of every call, exported over OTLP (taskq/tracing): only when on.
        self.tracing: Tracing | None = None
        interceptors: list[grpc.aio.ServerInterceptor] = [self.metrics.rpc] if self.metrics is not None else []
        if config.otlp_endpoint:
            from taskq.tracing.provider import Tracing
            from taskq.tracing.rpc import RpcTracing

            self.tracing = Tracing(config.otlp_endpoint)
            interceptors.insert(0, RpcTracing(self.tracing.tracer))
        self._server = grpc.aio.server(interceptors=interceptors or None, options=_grpc_options(config))
        streams = StreamHandler(self.engine_ref, config.stream_heartbeat_seconds)
        #: Who calls (taskq/auth): its sources are read at start(); None without roles to check.
        self.authenticator: Authenticator | None = None
        gate = None
        if config.checks_roles():
            self.authenticator = Authenticator(self._clock or SystemClock(), certificates=bool(config.tls_client_ca_file))
            gate = Gate(self.authenticator, config.open_services())
        self.gate = gate
        app_urls = (config.appengine_url or "", config.appengine_target_urls())
        add_service(self._server, TaskServicer(self.engine_ref, streams),
                    task_service_pb2.DESCRIPTOR.services_by_name["TaskService"], gate)
        add_service(self._server, QueueServicer(self.engine_ref),
                    queue_service_pb2.DESCRIPTOR.services_by_name["QueueService"], gate)
        add_service(self._server, AdminServicer(self.engine_ref),
                    admin_service_pb2.DESCRIPTOR.services_by_name["AdminService"], gate)
        add_unary_methods(self._server, CLOUD_TASKS_V2, CloudTasksV2(self.engine_ref, *app_urls), CloudTasksV2.methods, gate)
        add_unary_methods(self._server, service_v2beta2.SERVICE, service_v2beta2.CloudTasksV2Beta2(self.engine_ref, *app_urls),
                          service_v2beta2.CloudTasksV2Beta2.methods, gate)
        # Health and reflection through the gate too, which leaves them open unless told not to.
        registrar = gate.registrar(self._server) if gate is not None else self._server
        health_pb2_grpc.add_HealthServicer_to_server(self.health, registrar)
        # What enable_server_reflection does for an aio server, given the registrar instead.
        reflection_pb2_grpc.add_ServerReflectionServicer_to_server(reflection.aio.ReflectionServicer(
            (TASK_SERVICE, QUEUE_SERVICE, ADMIN_SERVICE, health.SERVICE_NAME, reflection.SERVICE_NAME)), registrar)
        self.port: int | None = None
        #: The health-only port (--health-listen): the same health service, nothing else, in
        #: plain text, for probes that cannot do TLS.
        self._health_server: grpc.aio.Server | None = None
        #: The event log's subscriber and summary loop (None with event_log "off").
        self.event_log: EventLog | None = None
        self.health_port: int | None = None
        self._stopped = asyncio.Event()
        #: Failures injected into the store (a test seam; see store/faults.py).
        self.faults = Faults()
        #: Delivers the tasks of queues with an HTTP target.
        self.http_push: HttpPush | None = None
        #: The HTTP port (--http-listen), if any.
        self.http_port: HttpPort | None = None
        #: Follows the TLS files for the HTTP port (tests call its run_once()), if it has TLS.
        self.http_tls: CertificateReloader | None = None

    async def start(self) -> int:
        """Listens, opens the database and declares queues; returns the port."""
        declared: list[tuple[Queue, bool | None]] = []
        acl: dict[str, tuple[Grant, ...]] = {}
        if self.config.queues_file:
            from taskq.queue_file import QueueFileError, load_queue_file_and_acl

            try:
                declared, acl = load_queue_file_and_acl(self.config.queues_file, self.config.appengine_routing())
            except QueueFileError as error:
                raise StartupError(str(error)) from None
        if self.authenticator is not None:
            try:
                configure(self.authenticator, self.config, acl)
            except (AuthFileError, JwksError) as error:
                raise StartupError(str(error)) from None
        tls = self.config.tls_files()
        try:
            # Each port follows the files with a CertificateFiles of its own (taskq/tls.py).
            grpc_certificates = CertificateFiles(tls) if tls else None
            http_certificates = CertificateFiles(tls) if tls and self.config.http_listen else None
        except TlsFileError as error:
            raise StartupError(str(error)) from None
        for service in READINESS_SERVICES:
            await self.health.set(service, health_pb2.HealthCheckResponse.NOT_SERVING)
        await self.health.set(LIVENESS, health_pb2.HealthCheckResponse.SERVING)
        try:
            if grpc_certificates is None:
                port = self._server.add_insecure_port(self.config.listen)
            else:
                port = self._server.add_secure_port(self.config.listen, grpc_credentials(grpc_certificates))
        except RuntimeError as error:
            raise StartupError(f"cannot listen on {self.config.listen}: {error} (is another server using it?)") from None
        if port == 0:
            raise StartupError(f"cannot listen on {self.config.listen}: the address is in use or invalid")
        self.port = port
        await self._server.start()
        if self.config.health_listen:
            self._health_server = grpc.aio.server()
            health_pb2_grpc.add_HealthServicer_to_server(self.health, self._health_server)
            try:
                self.health_port = self._health_server.add_insecure_port(self.config.health_listen)
            except RuntimeError:
                self.health_port = 0
            if not self.health_port:
                await self._stop_grpc(None)
                raise StartupError(f"cannot listen on {self.config.health_listen} (health): the address is in use "
                                   "or invalid")
            await self._health_server.start()
            log.info("health port %d (gRPC health only, plain text)", self.health_port)
        engine = Engine(
            database=self._database(),
            clock=self._clock,
            limits=self.config.limits(),
            background=self._background,
            on_serving=self._serving_changed,
        )
        if self.metrics is not None:
            self.metrics.watch(engine)
        if self.config.event_log != "off":
            self.event_log = EventLog(engine.clock)
            engine.events.subscribe(self.event_log)
            if self.gate is not None:
                self.gate.audit = self.event_log.audit
            if self._background:
                self.event_log.start()
        try:
            await engine.start()
        except StoreError as error:
            await self._stop_grpc(None)
            raise StartupError(str(error)) from None
        self.engine = engine
        try:
            await engine.queues.declare_all(declared)
        except Exception as error:
            await self._stop_grpc(None)
            await engine.stop()
            raise StartupError(f"{self.config.queues_file}: {error}") from None
        if (self.config.http_listen or self.config.appengine_url) and not any(
            queue.queue_id == DEFAULT_QUEUE.queue_id for queue, _ in declared
        ):
            await self._declare_default_queue(engine)
        self.engine_ref.set(engine)
        self.http_push = HttpPush(engine, HttpPushSettings(
            allowed_networks=self.config.allowed_networks(),
            signing_secrets=self.config.signing_secrets(),
            max_in_flight=self.config.http_max_in_flight,
            connect_timeout_s=self.config.http_connect_timeout_seconds,
        ))
        self.http_push.start()
        if self.config.http_listen:
            if http_certificates is not None:
                self.http_tls = CertificateReloader(http_certificates, engine.clock, self.config.tls_reload_interval_seconds)
            self.http_port = HttpPort(engine, self.config.http_listen, self.config.appengine_target_urls(),
                                      self.config.max_message_bytes,
                                      ssl_context=self.http_tls.context if self.http_tls else None,
                                      authenticator=self.authenticator, open_paths=self.config.open_http_paths())
            if self.metrics is not None:
                self.http_port.add_get("/metrics", self.metrics.handle)
            register_console(self.http_port.app, self.engine_ref, self.authenticator, sample=self._background)
            try:
                await self.http_port.start()
            except OSError as error:
                await self.http_push.stop(0)
                await self._stop_grpc(None)
                await engine.stop()
                raise StartupError(f"cannot listen on {self.config.http_listen} (HTTP): {error.strerror or error}") from None
            if self.http_tls is not None and self._background:
                self.http_tls.start()
            log.info("HTTP port %d%s (App Engine API bridge: POST /rpc_http; metrics: GET /metrics; console: /console)",
                     self.http_port.port, " with TLS" if self.http_tls else "")
        for service in READINESS_SERVICES:
            await self.health.set(service, health_pb2.HealthCheckResponse.SERVING)
        where = "PostgreSQL" if self.config.database else self.config.data_dir
        security = "plain text" if tls is None else "TLS, client certificates required" if tls.client_ca_file else "TLS"
        log.info("taskq serving on port %d (%s; %s), data in %s", port, security, describe(self.config), where)
        return port

    async def _declare_default_queue(self, engine: Engine) -> None:
        """App Engine's implicit `default` queue, when the server serves App Engine apps and
        no queue file declares it: created if missing, left as it is otherwise."""
        queue = dataclasses.replace(DEFAULT_QUEUE, retry=dataclasses.replace(DEFAULT_QUEUE.retry))
        if self.config.appengine_url:
            queue.http_target = HttpTarget(self.config.appengine_url)
        try:
            await engine.queues.create(queue)
            log.info("created App Engine's default queue (5/s, bucket 5)")
        except QueueAlreadyExists:
            pass

    def _database(self) -> Database:
        """PostgreSQL when a database is configured, else RocksDB in the data directory."""
        config = self.config
        if config.database:
            from taskq.store.postgres.database import PgDatabase

            return PgDatabase(
                config.database, config.durability_mode(), pool_size=config.database_pool_size,
                poll_interval_s=config.database_poll_interval_seconds, notify_dsn=config.database_notify,
                prepared_statements=config.database_prepared_statements == "on",
            )
        data_dir = config.data_dir
        write_buffer_bytes = config.write_buffer_mb * 2**20
        # One Faults object for every store opened on the directory, so an injected failure
        # outlives a reopen (tests/api/test_storage_failures.py); production never sets it.
        faults = self.faults
        space = None
        if config.min_free_disk_mb > 0:
            os.makedirs(data_dir, exist_ok=True)
            space = DiskSpace(data_dir, config.min_free_disk_mb * 2**20)
        return CommitLoop(lambda: RocksStore(data_dir, faults, write_buffer_bytes), config.durability_mode(), space=space)

    def _serving_changed(self, serving: bool) -> None:
        """The engine went out of service (its storage failed) or came back."""
        if self._stopped.is_set():
            return
        status = health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
        for service in READINESS_SERVICES:
            asyncio.get_running_loop().create_task(self.health.set(service, status))

    async def stop(self, grace: float | None = None) -> None:
        """Drains and stops; safe to call more than once."""
        if self._stopped.is_set():
            return
        self._stopped.set()
        grace = self.config.grace_period_seconds if grace is None else grace
        await self.health.enter_graceful_shutdown()
        if self.http_tls is not None:
            await self.http_tls.stop()
        if self.http_port is not None:
            await self.http_port.stop()
        if self.http_push is not None:
            # Requests in flight get the grace period to finish; their answers are recorded.
            await self.http_push.stop(grace)
        if self.engine is not None:
            self.engine.wakeups.close()
            # Streams end now, releasing their tasks while the database is still open.
            await self.engine.close_streams()
        await self._stop_grpc(grace)
        if self.event_log is not None:
            await self.event_log.stop()  # the summaries of windows still open
        if self.authenticator is not None:
            await self.authenticator.close()
        if self.engine is not None:
            await self.engine.stop()
        if self.tracing is not None:
            await self.tracing.stop()  # the last spans, those of the drained calls included
        log.info("taskq stopped")

    async def _stop_grpc(self, grace: float | None) -> None:
        """Stops the gRPC port and the health port."""
        if self._health_server is not None:
            await self._health_server.stop(grace)
        await self._server.stop(grace)

    async def wait_stopped(self) -> None:
        await self._stopped.wait()


def build_server(config: Config, clock: Clock | None = None, background: bool = True) -> TaskqServer:
    return TaskqServer(config.check(), clock=clock, background=background)


__all__ = ["build_server", "TaskqServer", "StartupError", "ConfigError"]
