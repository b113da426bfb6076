"""StreamTasks: a push worker's bidirectional stream.

The first message subscribes; then two loops share the stream. The writer sends what the
queue's dispatcher puts in the subscriber's outbox (tasks, refused answers) and a heartbeat
when the stream has been silent for a while. The reader applies the worker's answers, each
message in one durable commit, several messages in flight at once (the commit loop keeps
their order). A bad answer is refused with a StreamError; the stream stays open. However the
stream ends, its unanswered tasks are released at once.
"""

from __future__ import annotations

import asyncio
import logging

import grpc
from google.protobuf import timestamp_pb2
from grpc_status import rpc_status

from taskq.api import convert, validate
from taskq.api.engine_ref import EngineRef
from taskq.api.services import MalformedRequest
from taskq.api.status import malformed, to_status
from taskq.core import limits
from taskq.core.dispatch import Delivery, Subscriber
from taskq.core.engine import Engine
from taskq.core.errors import InvalidArgument, TaskqError
from taskq.core.push import Ack, Extension, Nack, Refusal
from taskq.v1 import task_pb2, task_service_pb2

log = logging.getLogger(__name__)

#: Answer messages of one stream being applied at once.
MAX_MESSAGES_IN_FLIGHT = 64


class StreamHandler:
    def __init__(self, engine: EngineRef, heartbeat_seconds: float) -> None:
        self._engine = engine
        self._heartbeat_seconds = heartbeat_seconds

    async def __call__(self, context: grpc.aio.ServicerContext) -> None:
        try:
            engine = self._engine.get()
            first = await context.read()
            if first is grpc.aio.EOF:
                return
            if isinstance(first, MalformedRequest):
                raise malformed(first)
            queue_id, max_outstanding = self._subscription(first)
            subscriber = await engine.dispatchers.subscribe(queue_id, max_outstanding)
        except TaskqError as error:
            await context.abort_with_status(rpc_status.to_status(to_status(error)))
            return
        reader = asyncio.create_task(self._read(context, engine, subscriber))
        writer = asyncio.create_task(self._write(context, engine, subscriber))
        ended = asyncio.create_task(subscriber.ended.wait())
        try:
            await asyncio.wait({writer, ended}, return_when=asyncio.FIRST_COMPLETED)
            if not writer.done() and subscriber.end_error is not None:
                # Ended by the server with an error (e.g. a client that does not read): a write
                # blocked on the client's flow control must not hold the call open.
                writer.cancel()
            await asyncio.gather(writer, return_exceptions=True)
        finally:
            ended.cancel()
            writer.cancel()
            reader.cancel()
            # Release even if this call is being cancelled: the release must not be cut short.
            await asyncio.shield(engine.dispatchers.unsubscribe(subscriber))
        if subscriber.end_error is not None:
            await context.abort_with_status(rpc_status.to_status(to_status(subscriber.end_error)))

    @staticmethod
    def _subscription(request: task_service_pb2.StreamTasksRequest) -> tuple[str, int]:
        if not request.HasField("subscription"):
            raise InvalidArgument.field(
                "subscription", "the first message of a stream must subscribe to a queue", "SUBSCRIPTION_REQUIRED"
            )
        if request.acks or request.nacks or request.lease_extensions:
            raise InvalidArgument.field(
                "subscription", "the first message must hold the subscription and nothing else", "SUBSCRIPTION_REQUIRED"
            )
        subscription = request.subscription
        queue_id = validate.queue_id(subscription.queue, "subscription.queue")
        max_outstanding = subscription.max_outstanding or limits.DEFAULT_MAX_OUTSTANDING
        validate.int_range(max_outstanding, "subscription.max_outstanding", 1, limits.MAX_OUTSTANDING)
        return queue_id, max_outstanding

    async def _write(self, context: grpc.aio.ServicerContext, engine: Engine, subscriber: Subscriber) -> None:
        while True:
            try:
                item = await asyncio.wait_for(subscriber.outbox.get(), self._heartbeat_seconds)
            except TimeoutError:
                heartbeat = timestamp_pb2.Timestamp()
                heartbeat.FromMicroseconds(engine.clock.now_us())
                await context.write(task_service_pb2.StreamTasksResponse(heartbeat_time=heartbeat))
                continue
            if item is None:
                return
            if isinstance(item, Delivery):
                now_us = engine.clock.now_us()
                response = task_service_pb2.StreamTasksResponse()
                add = response.tasks.add
                for task in item.tasks:
                    convert.fill_task(add(), subscriber.queue_id, task, now_us, task_pb2.TASK_VIEW_FULL)
            else:
                response = task_service_pb2.StreamTasksResponse(errors=[_stream_error(r) for r in item.refusals])
            await context.write(response)

    async def _read(self, context: grpc.aio.ServicerContext, engine: Engine, subscriber: Subscriber) -> None:
        in_flight = asyncio.Semaphore(MAX_MESSAGES_IN_FLIGHT)
        pending: set[asyncio.Task[None]] = set()
        try:
            while True:
                request = await context.read()
                if request is grpc.aio.EOF:
                    break
                await in_flight.acquire()
                applying = asyncio.create_task(self._apply(engine, subscriber, request))
                pending.add(applying)
                applying.add_done_callback(lambda done: _applied(done, pending, in_flight))
            if pending:
                await asyncio.gather(*pending, return_exceptions=True)
        except asyncio.CancelledError:
            raise
        except Exception as error:  # the client went away mid-read
            log.debug("stream read ended: %s", error)
        finally:
            subscriber.end()

    async def _apply(self, engine: Engine, subscriber: Subscriber, request: task_service_pb2.StreamTasksRequest) -> None:
        refusals: list[Refusal] = []
        if isinstance(request, MalformedRequest):
            refusals.append(Refusal("", "", malformed(request)))
            subscriber.refuse(refusals)
            return
        if request.HasField("subscription"):
            refusals.append(
                Refusal("", "", InvalidArgument.field("subscription", "this stream is already subscribed",
                                                      "ALREADY_SUBSCRIBED"))
            )
        acks: list[Ack] = []
        nacks: list[Nack] = []
        extensions: list[Extension] = []
        for index, ack in enumerate(request.acks):
            _collect(refusals, acks, subscriber, f"acks[{index}]", ack, _ack)
        for index, nack in enumerate(request.nacks):
            _collect(refusals, nacks, subscriber, f"nacks[{index}]", nack, _nack)
        for index, extension in enumerate(request.lease_extensions):
            _collect(refusals, extensions, subscriber, f"lease_extensions[{index}]", extension, _extension)
        answered = [(ack.task_id, ack.lease_token) for ack in acks] + [(nack.task_id, nack.lease_token) for nack in nacks]
        if acks or nacks or extensions:
            try:
                outcome = await engine.push.answer(subscriber.queue_id, acks, nacks, extensions)
                refusals += outcome.refusals
                subscriber.answered(answered, outcome.extended)
                # The commit already signalled the queue, but before this stream's credit was
                # returned just above: signal again so the dispatcher sees the credit.
                engine.wakeups.notify(subscriber.queue_id)
            except TaskqError as error:
                refused: list[Ack | Nack | Extension] = [*acks, *nacks, *extensions]
                refusals += [
                    Refusal(convert.task_name(subscriber.queue_id, a.task_id), a.lease_token, error) for a in refused
                ]
                subscriber.answered(answered, {})
        if refusals:
            subscriber.refuse(refusals)


def _applied(done: asyncio.Task[None], pending: set[asyncio.Task[None]], in_flight: asyncio.Semaphore) -> None:
    pending.discard(done)
    in_flight.release()


def _collect(refusals, answers, subscriber: Subscriber, field: str, message, build) -> None:
    """Validates one answer's name and token, then builds it (or records its refusal)."""
    try:
        queue_id, task_id = validate.task_ids(message.name, f"{field}.name")
        if queue_id != subscriber.queue_id:
            raise InvalidArgument.field(f"{field}.name", "names a task of another queue than the subscription's",
                                        "WRONG_QUEUE")
        validate.lease_token(message.lease_token, f"{field}.lease_token", required=True)
        answers.append(build(task_id, message, field))
    except InvalidArgument as error:
        refusals.append(Refusal(message.name, message.lease_token, error))


def _ack(task_id: str, ack: task_service_pb2.TaskAck, field: str) -> Ack:
    return Ack(task_id, ack.lease_token)


def _nack(task_id: str, nack: task_service_pb2.TaskNack, field: str) -> Nack:
    retry_delay_us = None
    if nack.HasField("retry_delay"):
        retry_delay_us = validate.duration_us(nack.retry_delay, f"{field}.retry_delay",
                                              maximum_us=limits.MAX_RETRY_DELAY_US)
    code = nack.error.code
    if not 0 <= code <= 16:
        raise InvalidArgument.field(f"{field}.error.code", f"{code} is not a google.rpc.Code", "INVALID_ENUM_VALUE")
    return Nack(task_id, nack.lease_token, code, nack.error.message, retry_delay_us, nack.permanent)


def _extension(task_id: str, extension: task_service_pb2.LeaseExtension, field: str) -> Extension:
    if not extension.HasField("lease_duration"):
        raise InvalidArgument.field(f"{field}.lease_duration", "is required", "REQUIRED_FIELD")
    duration_us = validate.duration_us(
        extension.lease_duration, f"{field}.lease_duration", minimum_us=1,
        maximum_us=limits.MAX_STREAM_EXTENSION_US, allow_zero=False,
    )
    return Extension(task_id, extension.lease_token, duration_us)


def _stream_error(refusal: Refusal) -> task_service_pb2.StreamError:
    return task_service_pb2.StreamError(
        name=refusal.name, lease_token=refusal.lease_token, status=to_status(refusal.error)
    )
