"""HTTP push deliveries: each queue with an HTTP target gets a Deliverer on every server.

A Deliverer subscribes to its queue's dispatcher exactly as a stream does (core/dispatch.py),
so HTTP deliveries share the token bucket, the concurrency cap, the dispatch deadline (the
lease, and the request's timeout), retries, dead letters and pause/resume/purge with streams.
Each task it is dealt becomes one request; the answer becomes an ack (2xx) or a nack (the
status mapped to a code, `Retry-After` as the least delay), applied in batches: what finished
while the previous batch was being committed goes in the next one.

Each Deliverer has its own connection pool (keep-alive, at most `max_in_flight` connections)
and its own credit, so a slow or hung worker only holds its own queue's requests. On a shared
database every server delivers: the leases are taken in the database, under the queue's
limits, so the servers never deliver one task twice at once nor exceed the rate together.

HttpPush keeps a Deliverer running for every queue with an HTTP target: it looks at the
queues when told that one changed here, and every `rescan_interval_s` for changes made on
other servers (or after the storage came back).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time

import aiohttp

from taskq.core.dispatch import Delivery, Subscriber
from taskq.core.engine import Engine
from taskq.core.errors import Code, TaskqError
from taskq.core.model import US_PER_SECOND, Queue, QueueType, Task
from taskq.core.push import Ack, Nack
from taskq.httppush import outcome
from taskq.httppush.guard import Guard, GuardedResolver, Network, TargetRefused
from taskq.httppush.request import USER_AGENT, build, header_safe

log = logging.getLogger(__name__)

#: A request times out this long before its lease does, so its failure is recorded as the
#: worker's, not as an expired lease.
TIMEOUT_MARGIN_S = 1.0
#: Bytes of an answer's body read (for the error message; the rest is discarded).
MAX_BODY_READ = 64 * 1024
#: Characters of an error answer's body kept in the attempt's message.
MAX_BODY_IN_MESSAGE = 200


@dataclasses.dataclass(frozen=True)
class HttpPushSettings:
    #: Networks deliveries may reach although they are not public (SSRF guard).
    allowed_networks: list[Network] = dataclasses.field(default_factory=list)
    #: Secrets the requests are signed with (X-Taskq-Signature); none: unsigned.
    signing_secrets: list[bytes] = dataclasses.field(default_factory=list)
    #: Requests of one queue in flight from this server, at most (its connection pool size).
    max_in_flight: int = 1000
    #: How long connecting (DNS, TCP, TLS) may take, seconds.
    connect_timeout_s: float = 10.0
    #: How often the queues are looked at for targets set or removed elsewhere, seconds.
    rescan_interval_s: float = 2.0


class Deliverer:
    """Delivers one queue's tasks over HTTP."""

    def __init__(self, queue_id: str, engine: Engine, settings: HttpPushSettings, guard: Guard) -> None:
        self.queue_id = queue_id
        self._engine = engine
        self._settings = settings
        self._guard = guard
        self._session: aiohttp.ClientSession | None = None
        self._subscriber: Subscriber | None = None
        self._in_flight: set[asyncio.Task[None]] = set()
        self._acks: list[Ack] = []
        self._nacks: list[Nack] = []
        self._flushing: asyncio.Task[None] | None = None
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name=f"taskq-http-{self.queue_id}")

    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def stop(self, grace_s: float) -> None:
        """Takes no more tasks, lets the requests in flight finish for up to `grace_s`, records
        their answers, and releases what is left."""
        self._grace_s = grace_s
        if self._subscriber is not None:
            self._subscriber.end()
        if self._task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._task), grace_s + 5)
            except TimeoutError:
                self._task.cancel()
                await asyncio.gather(self._task, return_exceptions=True)

    #: How long requests in flight may finish when the deliverer ends: the grace period when
    #: the server stops; none when the queue was deleted or lost its target, or the storage
    #: failed (their leases are released, or end with the storage).
    _grace_s = 0.0

    async def _run(self) -> None:
        engine = self._engine
        try:
            subscriber = await engine.dispatchers.subscribe(self.queue_id, self._settings.max_in_flight, http=True)
        except TaskqError as error:
            log.debug("HTTP deliveries of %s not started: %s", self.queue_id, error)
            return
        self._subscriber = subscriber
        connector = aiohttp.TCPConnector(
            limit=self._settings.max_in_flight, resolver=GuardedResolver(self._guard), ttl_dns_cache=10,
            keepalive_timeout=30,
        )
        self._session = aiohttp.ClientSession(connector=connector, headers={"User-Agent": USER_AGENT})
        try:
            while True:
                item = await subscriber.outbox.get()
                if item is None:
                    break
                if isinstance(item, Delivery):
                    queue = await engine.db.read(lambda reader: reader.queue(self.queue_id))
                    if queue is None or queue.http_target is None:
                        break  # deleted or no longer HTTP: the unanswered tasks are released below
                    for task in item.tasks:
                        delivery = asyncio.get_running_loop().create_task(self._deliver(queue, task))
                        self._in_flight.add(delivery)
                        delivery.add_done_callback(self._in_flight.discard)
                # Refusals: answers to leases that ended meanwhile (expired, deleted, purged);
                # the task was or will be dealt with by whoever ended the lease.
        except TaskqError as error:
            log.warning("HTTP deliveries of %s stopped: %s", self.queue_id, error)
        finally:
            if self._in_flight and self._grace_s > 0:
                await asyncio.wait(set(self._in_flight), timeout=self._grace_s)
            for delivery in list(self._in_flight):
                delivery.cancel()
            await asyncio.gather(*self._in_flight, return_exceptions=True)
            await self._flush_now()
            await asyncio.shield(engine.dispatchers.unsubscribe(subscriber, "the server stopped delivering it"))
            await self._session.close()

    async def _deliver(self, queue: Queue, task: Task) -> None:
        assert self._session is not None and queue.http_target is not None
        now_us = self._engine.clock.now_us()
        timeout_s = max(0.5, (task.lease_expire_us - now_us) / US_PER_SECOND - TIMEOUT_MARGIN_S)
        timeout = aiohttp.ClientTimeout(total=timeout_s, connect=min(timeout_s, self._settings.connect_timeout_s))
        nack: Nack | None = None
        host = ""
        try:
            outgoing = build(queue.http_target, self.queue_id, task, self._settings.signing_secrets, int(time.time()))
            host = outgoing.url.host or ""
            self._guard.check_literal(host)
            async with self._session.request(
                outgoing.method, outgoing.url, headers=outgoing.headers, data=outgoing.body or None,
                allow_redirects=False, timeout=timeout,
            ) as response:
                body = await _read_some(response)
                status = response.status
                if not outcome.succeeded(status):
                    message = f"HTTP {status} {response.reason or ''}".strip()
                    text = header_safe(body[:MAX_BODY_IN_MESSAGE * 4].decode(errors="replace"))[:MAX_BODY_IN_MESSAGE]
                    if text:
                        message += f": {text}"
                    delay_us = 0
                    if status in outcome.RETRY_AFTER_STATUSES:
                        delay_us = outcome.retry_after_us(response.headers.get("Retry-After"), time.time())
                    nack = self._nack(task, outcome.code_of(status), message, min_retry_delay_us=delay_us,
                                      http_status=status)
        except asyncio.CancelledError:
            raise
        except TargetRefused as error:
            nack = self._nack(task, Code.PERMISSION_DENIED, str(error))
        except TimeoutError:
            nack = self._nack(task, Code.DEADLINE_EXCEEDED, f"no answer within {timeout_s:.1f} s (the dispatch deadline)")
        except aiohttp.ClientConnectorError as error:
            if isinstance(error.os_error, TargetRefused):
                nack = self._nack(task, Code.PERMISSION_DENIED, str(error.os_error))
            else:
                nack = self._nack(task, Code.UNAVAILABLE, f"cannot connect to {host}: {error.os_error}")
        except (aiohttp.ClientError, OSError) as error:
            nack = self._nack(task, Code.UNAVAILABLE, f"the request failed: {error!r}"[:500])
        except Exception as error:  # a request that cannot even be made: the attempt fails, the loop goes on
            log.exception("delivering %s/%s failed", self.queue_id, task.task_id)
            nack = self._nack(task, Code.UNKNOWN, f"the request could not be made: {error!r}"[:500])
        if nack is None:
            self._acks.append(Ack(task.task_id, task.lease_token))
        else:
            self._nacks.append(nack)
        if self._flushing is None or self._flushing.done():
            self._flushing = asyncio.get_running_loop().create_task(self._flush())

    @staticmethod
    def _nack(task: Task, code: Code, message: str, *, min_retry_delay_us: int = 0, http_status: int = 0) -> Nack:
        return Nack(task.task_id, task.lease_token, code.value, message, None, False, min_retry_delay_us, http_status)

    async def _flush(self) -> None:
        """Applies the answers gathered so far, in one commit, and again while more came in."""
        while self._acks or self._nacks:
            acks, nacks = self._acks, self._nacks
            self._acks, self._nacks = [], []
            answered = [(a.task_id, a.lease_token) for a in acks] + [(n.task_id, n.lease_token) for n in nacks]
            try:
                result = await self._engine.push.answer(self.queue_id, acks, nacks, [])
                for refusal in result.refusals:
                    log.debug("answer to %s refused: %s", refusal.name, refusal.error.message)
            except TaskqError as error:
                # The leases stand; they expire and the tasks are retried then.
                log.warning("recording %d HTTP answers of %s failed: %s", len(answered), self.queue_id, error)
            if self._subscriber is not None:
                self._subscriber.answered(answered, {})
            self._engine.wakeups.notify(self.queue_id)

    async def _flush_now(self) -> None:
        if self._flushing is not None:
            await asyncio.gather(self._flushing, return_exceptions=True)
        await self._flush()


async def _read_some(response: aiohttp.ClientResponse) -> bytes:
    """Up to MAX_BODY_READ bytes of the body; a longer body is cut (and its connection not
    reused)."""
    body = bytearray()
    while len(body) < MAX_BODY_READ:
        chunk = await response.content.read(MAX_BODY_READ - len(body))
        if not chunk:
            break
        body += chunk
    return bytes(body)


class HttpPush:
    """A Deliverer for every queue with an HTTP target."""

    def __init__(self, engine: Engine, settings: HttpPushSettings) -> None:
        self._engine = engine
        self._settings = settings
        self._guard = Guard(settings.allowed_networks)
        self.deliverers: dict[str, Deliverer] = {}
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    def start(self) -> None:
        self._engine.queues.listeners.append(self.queue_changed)
        self._task = asyncio.get_running_loop().create_task(self._run(), name="taskq-http-push")

    def queue_changed(self, queue_id: str) -> None:
        """A queue was created or reconfigured here: look at once."""
        self._changed.set()

    async def run_once(self) -> int:
        """Starts a Deliverer for each queue with an HTTP target that has none running; forgets
        those that ended. Returns how many are running."""
        for queue_id in [q for q, d in self.deliverers.items() if not d.running()]:
            del self.deliverers[queue_id]
        after = ""
        while not self._stopping:
            queues, after = await self._engine.queues.page(after, 1000)
            for queue in queues:
                if queue.type is QueueType.PUSH and queue.http_target is not None and queue.queue_id not in self.deliverers:
                    deliverer = Deliverer(queue.queue_id, self._engine, self._settings, self._guard)
                    self.deliverers[queue.queue_id] = deliverer
                    deliverer.start()
            if not after:
                break
        return len(self.deliverers)

    async def _run(self) -> None:
        while not self._stopping:
            self._changed.clear()
            try:
                await self.run_once()
            except TaskqError as error:
                log.warning("looking for HTTP queues failed (trying again): %s", error)
            except Exception:
                log.exception("looking for HTTP queues failed (trying again)")
            try:
                await asyncio.wait_for(self._changed.wait(), self._settings.rescan_interval_s)
            except TimeoutError:
                pass

    async def stop(self, grace_s: float) -> None:
        """Stops every Deliverer, letting requests in flight finish for up to `grace_s`."""
        self._stopping = True
        if self.queue_changed in self._engine.queues.listeners:
            self._engine.queues.listeners.remove(self.queue_changed)
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await asyncio.gather(*(d.stop(grace_s) for d in self.deliverers.values()), return_exceptions=True)
        self.deliverers.clear()
