"""QueueService: validate, call core.queues, convert. Nothing else."""

from __future__ import annotations

from taskq.api import convert, validate
from taskq.api.engine_ref import EngineRef
from taskq.api.status import guarded
from taskq.core import limits, pagination
from taskq.core.engine import Engine
from taskq.core.errors import InvalidArgument
from taskq.core.model import Queue, QueueState, QueueType
from taskq.v1 import queue_pb2, queue_service_pb2, queue_service_pb2_grpc


class QueueServicer(queue_service_pb2_grpc.QueueServiceServicer):
    def __init__(self, engine: EngineRef) -> None:
        self._engine = engine

    @guarded
    async def CreateQueue(self, request, context):
        engine = self._engine.get()
        if not request.HasField("queue"):
            raise InvalidArgument.field("queue", "is required", "REQUIRED_FIELD")
        queue = await engine.queues.create(validate.queue(request.queue))
        return queue_service_pb2.CreateQueueResponse(queue=convert.queue_to_proto(queue))

    @guarded
    async def GetQueue(self, request, context):
        engine = self._engine.get()
        queue = await engine.queues.get(validate.queue_id(request.name, "name"))
        return queue_service_pb2.GetQueueResponse(queue=convert.queue_to_proto(queue))

    @guarded
    async def ListQueues(self, request, context):
        engine = self._engine.get()
        size = pagination.page_size(request.page_size)
        key = engine.page_token_key
        after = pagination.decode(request.page_token, ("queues",), key, limits.QUEUE_ID_PATTERN)
        queues, resume_after = await engine.queues.page(after, size)
        return queue_service_pb2.ListQueuesResponse(
            queues=[convert.queue_to_proto(queue) for queue in queues],
            next_page_token=pagination.encode(resume_after, ("queues",), key) if resume_after else "",
        )

    @guarded
    async def UpdateQueue(self, request, context):
        queue = await update_queue(self._engine.get(), request)
        return queue_service_pb2.UpdateQueueResponse(queue=convert.queue_to_proto(queue))

    @guarded
    async def DeleteQueue(self, request, context):
        engine = self._engine.get()
        await engine.queues.delete(validate.queue_id(request.name, "name"))
        return queue_service_pb2.DeleteQueueResponse()

    @guarded
    async def PauseQueue(self, request, context):
        engine = self._engine.get()
        queue = await engine.queues.set_state(validate.queue_id(request.name, "name"), QueueState.PAUSED)
        return queue_service_pb2.PauseQueueResponse(queue=convert.queue_to_proto(queue))

    @guarded
    async def ResumeQueue(self, request, context):
        engine = self._engine.get()
        queue = await engine.queues.set_state(validate.queue_id(request.name, "name"), QueueState.RUNNING)
        return queue_service_pb2.ResumeQueueResponse(queue=convert.queue_to_proto(queue))

    @guarded
    async def PurgeQueue(self, request, context):
        engine = self._engine.get()
        queue, count = await engine.queues.purge(validate.queue_id(request.name, "name"))
        return queue_service_pb2.PurgeQueueResponse(queue=convert.queue_to_proto(queue), purged_count=count)

    @guarded
    async def GetQueueStats(self, request, context):
        engine = self._engine.get()
        stats = await engine.queues.stats(validate.queue_id(request.name, "name"))
        return queue_service_pb2.GetQueueStatsResponse(stats=convert.stats_to_proto(stats))


async def update_queue(engine: Engine, request: queue_service_pb2.UpdateQueueRequest) -> Queue:
    """UpdateQueue's work, shared with the web console's settings form (taskq/console)."""
    if not request.HasField("queue"):
        raise InvalidArgument.field("queue", "is required", "REQUIRED_FIELD")
    paths = validate.update_paths(list(request.update_mask.paths))
    new = validate.queue(request.queue)
    current = await engine.queues.get(new.queue_id)
    if request.queue.type != queue_pb2.QUEUE_TYPE_UNSPECIFIED and new.type is not current.type:
        raise InvalidArgument.field(
            "queue.type", f"is immutable: the queue is a {QueueType(current.type).name.lower()} queue",
            "FIELD_NOT_UPDATABLE",
        )
    return await engine.queues.update(new.queue_id, new, paths)
