"""A real taskq server in the test process: real gRPC on a free port, real RocksDB in a
temporary directory, running on its own event loop in a background thread.

Tests talk to it through ordinary (synchronous) gRPC stubs. With a FakeClock the background
loops are off and tests drive time: `harness.clock.advance(30)` then `harness.reap()`.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

import grpc
from google.protobuf import duration_pb2

from taskq.app import TaskqServer, build_server
from taskq.config import Config
from taskq.core.clock import Clock, FakeClock
from taskq.v1 import (
    queue_pb2,
    queue_service_pb2,
    queue_service_pb2_grpc,
    task_pb2,
    task_service_pb2,
    task_service_pb2_grpc,
)

T = TypeVar("T")


class ServerHarness:
    def __init__(self, data_dir: str, *, clock: Clock | None = None, **settings: Any) -> None:
        self.data_dir = data_dir
        self.clock = clock
        self.settings = settings
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="taskq-test-server", daemon=True)
        self._thread.start()
        self.server: TaskqServer | None = None
        self.channel: grpc.Channel | None = None
        self.start()

    # Lifecycle ------------------------------------------------------------------------------

    def start(self, port: int = 0) -> None:
        """Starts the server (again) on `port` (0: a free one) with the same data and settings."""
        config = Config(listen=f"127.0.0.1:{port}", data_dir=self.data_dir, **self.settings)
        # With a fake clock nothing runs by itself: tests call reap()/janitor() after advancing.
        self.server = self.run(self._build(config))
        self.port = self.run(self.server.start())
        self.address = f"127.0.0.1:{self.port}"
        # The client's limits are above any server's, so tests see the server's own limits.
        self.channel = grpc.insecure_channel(self.address, options=[
            ("grpc.max_receive_message_length", 256 * 1024 * 1024),
            ("grpc.max_send_message_length", 256 * 1024 * 1024),
        ])
        self.tasks = task_service_pb2_grpc.TaskServiceStub(self.channel)
        self.queues = queue_service_pb2_grpc.QueueServiceStub(self.channel)

    async def _build(self, config: Config) -> TaskqServer:
        return build_server(config, clock=self.clock, background=not isinstance(self.clock, FakeClock))

    def stop(self) -> None:
        if self.channel is not None:
            self.channel.close()
            self.channel = None
        if self.server is not None:
            self.run(self.server.stop(grace=1.0))
            self.server = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def close(self) -> None:
        self.stop()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)
        self.loop.close()

    def run(self, coroutine: Coroutine[Any, Any, T], timeout: float = 30) -> T:
        """Runs a coroutine on the server's event loop and returns its result."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    @property
    def engine(self):
        assert self.server is not None and self.server.engine is not None
        return self.server.engine

    def reap(self) -> int:
        """One reaper pass: expire leases that are due on the server's clock."""
        return self.run(self.engine.reaper.run_once())

    def janitor(self) -> int:
        """One janitor pass: expire tombstones, failed tasks and request ids; promote due tasks."""
        return self.run(self.engine.janitor.run_once())

    # Shortcuts for tests --------------------------------------------------------------------

    def create_queue(self, queue_id: str, queue_type: int = queue_pb2.QUEUE_TYPE_PULL, **fields: Any) -> queue_pb2.Queue:
        queue = queue_pb2.Queue(name=f"queues/{queue_id}", type=queue_type, **fields)
        return self.queues.CreateQueue(queue_service_pb2.CreateQueueRequest(queue=queue)).queue

    def create_task(self, queue_id: str, payload: bytes = b"", **fields: Any) -> task_pb2.Task:
        request_id = fields.pop("request_id", "")
        task = task_pb2.Task(payload=payload, **fields)
        request = task_service_pb2.CreateTaskRequest(parent=f"queues/{queue_id}", task=task, request_id=request_id)
        return self.tasks.CreateTask(request).task

    def lease(self, queue_id: str, seconds: float = 60, max_tasks: int = 10, **fields: Any) -> list[task_pb2.Task]:
        request = task_service_pb2.LeaseTasksRequest(
            parent=f"queues/{queue_id}", lease_duration=seconds_to_duration(seconds), max_tasks=max_tasks, **fields
        )
        return list(self.tasks.LeaseTasks(request).tasks)

    def get_task(self, name: str) -> task_pb2.Task:
        return self.tasks.GetTask(task_service_pb2.GetTaskRequest(name=name)).task

    def stats(self, queue_id: str) -> queue_pb2.QueueStats:
        return self.queues.GetQueueStats(queue_service_pb2.GetQueueStatsRequest(name=f"queues/{queue_id}")).stats

    def ack(self, task: task_pb2.Task) -> None:
        self.tasks.DeleteTask(task_service_pb2.DeleteTaskRequest(name=task.name, lease_token=task.lease_token))


def seconds_to_duration(seconds: float) -> duration_pb2.Duration:
    whole = int(seconds)
    return duration_pb2.Duration(seconds=whole, nanos=int(round((seconds - whole) * 1e9)))


def error_reason(error: grpc.RpcError) -> str:
    """The ErrorInfo reason of a failed call ("" if it has none)."""
    from google.rpc import error_details_pb2
    from grpc_status import rpc_status

    status = rpc_status.from_call(error)
    if status is None:
        return ""
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            return info.reason
    return ""


def stream_error_reason(stream_error) -> str:
    """The ErrorInfo reason of a StreamError message ("" if it has none)."""
    from google.rpc import error_details_pb2

    for detail in stream_error.status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            return info.reason
    return ""


def fill(server: ServerHarness, queue_id: str, count: int, **task_fields: Any) -> None:
    """Creates `count` tasks whose payloads are their numbers, in batches of 1000."""
    requests = [task_service_pb2.CreateTaskRequest(task=task_pb2.Task(payload=str(i).encode(), **task_fields))
                for i in range(count)]
    for start in range(0, count, 1000):
        server.tasks.BatchCreateTasks(
            task_service_pb2.BatchCreateTasksRequest(parent=f"queues/{queue_id}", requests=requests[start:start + 1000])
        )


def eventually(condition, seconds: float = 30) -> None:
    """Waits until `condition()` holds (checked every 20 ms); fails if it does not in time."""
    import time

    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("the condition did not become true in time")
        time.sleep(0.02)


def push_queue(server: ServerHarness, queue_id: str = "push", **fields: Any) -> queue_pb2.Queue:
    return server.create_queue(queue_id, queue_pb2.QUEUE_TYPE_PUSH, **fields)


def open_stream(server: ServerHarness, streams: list[Stream], queue_id: str = "push", max_outstanding: int = 100) -> Stream:
    """A push stream on the queue, closed at the end of the test (the `streams` fixture)."""
    stream = Stream(server.channel, queue_id, max_outstanding)
    streams.append(stream)
    return stream


__all__ = [
    "ServerHarness", "FakeClock", "Stream", "seconds_to_duration", "error_reason", "stream_error_reason", "fill",
    "push_queue", "open_stream", "eventually",
]


class Stream:
    """A push worker's StreamTasks stream, driven from the test thread.

    Responses are collected by a background thread; `send` queues a request; `close` ends the
    stream from the client side (half-close); `cancel` drops it abruptly.
    """

    def __init__(self, channel: grpc.Channel, queue_id: str, max_outstanding: int = 100) -> None:
        import queue as queue_module

        self._requests: queue_module.Queue = queue_module.Queue()
        self.responses: queue_module.Queue = queue_module.Queue()
        self._requests.put(
            task_service_pb2.StreamTasksRequest(
                subscription=task_service_pb2.StreamSubscription(queue=f"queues/{queue_id}", max_outstanding=max_outstanding)
            )
        )
        stub = task_service_pb2_grpc.TaskServiceStub(channel)
        self.call = stub.StreamTasks(iter(self._requests.get, None))
        self.error: grpc.RpcError | None = None
        self.ended = threading.Event()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    @staticmethod
    def raw(channel: grpc.Channel, requests) -> Any:
        """A StreamTasks call sending `requests`, whose responses nobody reads until the caller
        iterates it."""
        return task_service_pb2_grpc.TaskServiceStub(channel).StreamTasks(requests)

    def _read(self) -> None:
        try:
            for response in self.call:
                self.responses.put(response)
        except grpc.RpcError as error:
            self.error = error
        finally:
            self.ended.set()

    def send(self, **fields: Any) -> None:
        self._requests.put(task_service_pb2.StreamTasksRequest(**fields))

    def ack(self, *tasks: task_pb2.Task) -> None:
        self.send(acks=[task_service_pb2.TaskAck(name=t.name, lease_token=t.lease_token) for t in tasks])

    def nack(self, task: task_pb2.Task, message: str = "failed", **fields: Any) -> None:
        from google.rpc import status_pb2

        nack = task_service_pb2.TaskNack(
            name=task.name, lease_token=task.lease_token, error=status_pb2.Status(code=13, message=message), **fields
        )
        self.send(nacks=[nack])

    def next(self, timeout: float = 10) -> task_service_pb2.StreamTasksResponse:
        return self.responses.get(timeout=timeout)

    def tasks(self, count: int, timeout: float = 10) -> list[task_pb2.Task]:
        """Waits for `count` tasks (skipping heartbeats); fails if they do not come in time."""
        import time

        received: list[task_pb2.Task] = []
        deadline = time.monotonic() + timeout
        while len(received) < count:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"got {len(received)} of {count} tasks")
            try:
                response = self.responses.get(timeout=remaining)
            except Exception:
                raise AssertionError(f"got {len(received)} of {count} tasks") from None
            received.extend(response.tasks)
        return received

    def quiet(self, seconds: float = 0.3) -> list[task_pb2.Task]:
        """The tasks that arrive within `seconds` (to check that none do)."""
        import time

        received: list[task_pb2.Task] = []
        deadline = time.monotonic() + seconds
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                received.extend(self.responses.get(timeout=remaining).tasks)
            except Exception:
                break
        return received

    def close(self) -> None:
        self._requests.put(None)

    def cancel(self) -> None:
        self.call.cancel()
        self.ended.wait(10)
