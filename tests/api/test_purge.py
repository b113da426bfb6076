"""PurgeQueue: recorded first, in effect at once, finished by the server whatever happens to
the call (a deadline, a restart)."""

from __future__ import annotations

import asyncio
import threading

import grpc
import pytest

from harness import ServerHarness, eventually, fill
from taskq.core.purger import Purger
from taskq.v1 import queue_service_pb2, task_pb2, task_service_pb2


def listed(server, queue_id: str) -> list[task_pb2.Task]:
    return list(server.tasks.ListTasks(task_service_pb2.ListTasksRequest(parent=f"queues/{queue_id}")).tasks)


@pytest.fixture
def held_purger(monkeypatch):
    """Holds the purger back until the test sets the event, as a slow purge would."""
    gate = threading.Event()
    original = Purger.run_once

    async def held(self):
        while not gate.is_set():
            await asyncio.sleep(0.01)
        return await original(self)

    monkeypatch.setattr(Purger, "run_once", held)
    yield gate
    gate.set()


def test_a_purge_cut_short_by_the_callers_deadline_is_finished_by_the_server(server, held_purger):
    server.create_queue("q")
    fill(server, "q", 3000)
    with pytest.raises(grpc.RpcError) as raised:
        server.queues.PurgeQueue(queue_service_pb2.PurgeQueueRequest(name="queues/q"), timeout=0.2)
    assert raised.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    # In effect from the moment it was recorded: nothing created before it is leased or listed.
    assert server.lease("q", max_tasks=1000) == []
    assert listed(server, "q") == []
    after = server.create_task("q", b"after")
    held_purger.set()
    eventually(lambda: server.stats("q").tasks_count == 1)
    assert [task.name for task in server.lease("q", max_tasks=1000)] == [after.name]


def test_a_purge_interrupted_by_a_restart_is_finished_after_it(tmp_path, clock, held_purger):
    server = ServerHarness(str(tmp_path / "data"), clock=clock)
    try:
        server.create_queue("q")
        fill(server, "q", 3000)
        # The call goes away a moment after the purge is recorded, as with a crash.
        with pytest.raises(TimeoutError):
            server.run(asyncio.wait_for(server.engine.queues.purge("q"), 0.2))
        server.restart()
        assert server.stats("q").tasks_count == 3000  # none deleted yet...
        assert server.lease("q", max_tasks=1000) == []  # ...but none of them is handed out
        held_purger.set()
        while server.run(server.engine.purger.run_once()):
            pass
        assert server.stats("q").tasks_count == 0
        assert not server.run(server.engine.db.read(lambda reader: reader.purging_queues()))
    finally:
        server.close()
