"""The queue actions both Cloud Tasks versions answer alike: DeleteQueue, PurgeQueue,
PauseQueue and ResumeQueue, each on taskq's core, answering the queue as the version shows it."""

from __future__ import annotations

from typing import Any

from google.protobuf import empty_pb2

from taskq.api.engine_ref import EngineRef
from taskq.api.status import guarded
from taskq.cloudtasks import names
from taskq.core.model import Queue, QueueState


class QueueActions:
    """Mixed into a version's servicer, which finds queues by name with `_queue` and writes
    them in its messages with `_queue_pb`."""

    _engine: EngineRef

    async def _queue(self, name: str, field: str = "name") -> tuple[Queue, str]:
        raise NotImplementedError

    def _queue_pb(self, queue: Queue, parent: str) -> Any:
        raise NotImplementedError

    @guarded
    @names.cloud_names
    async def DeleteQueue(self, request, context):
        queue, _ = await self._queue(request.name)
        await self._engine.get().queues.delete(queue.queue_id)
        return empty_pb2.Empty()

    @guarded
    @names.cloud_names
    async def PurgeQueue(self, request, context):
        queue, parent = await self._queue(request.name)
        purged, _ = await self._engine.get().queues.purge(queue.queue_id)
        return self._queue_pb(purged, parent)

    @guarded
    @names.cloud_names
    async def PauseQueue(self, request, context):
        queue, parent = await self._queue(request.name)
        return self._queue_pb(await self._engine.get().queues.set_state(queue.queue_id, QueueState.PAUSED), parent)

    @guarded
    @names.cloud_names
    async def ResumeQueue(self, request, context):
        queue, parent = await self._queue(request.name)
        return self._queue_pb(await self._engine.get().queues.set_state(queue.queue_id, QueueState.RUNNING), parent)
