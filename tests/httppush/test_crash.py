"""kill -9 of the server while HTTP deliveries are in flight: after the restart every task
is delivered again, none is lost."""

from __future__ import annotations

import signal

from harness import eventually
from processes import ServerProcess
from taskq.v1 import (
    http_pb2,
    queue_pb2,
    queue_service_pb2,
    queue_service_pb2_grpc,
    task_pb2,
    task_service_pb2,
    task_service_pb2_grpc,
)

ALLOW = ("--http-allow-networks", "127.0.0.0/8")


def test_deliveries_in_flight_at_a_kill_are_all_delivered_again(tmp_path, worker):
    worker.answer("/work", 200, delay=120)  # handlers that are still working when the server dies
    first = ServerProcess(tmp_path / "data", *ALLOW)
    queues = queue_service_pb2_grpc.QueueServiceStub(first.channel)
    tasks = task_service_pb2_grpc.TaskServiceStub(first.channel)
    queue = queue_pb2.Queue(name="queues/web", type=queue_pb2.QUEUE_TYPE_PUSH,
                            http_target=http_pb2.HttpTarget(uri=worker.url + "/work"))
    queues.CreateQueue(queue_service_pb2.CreateQueueRequest(queue=queue))
    created = tasks.BatchCreateTasks(task_service_pb2.BatchCreateTasksRequest(
        parent="queues/web",
        requests=[task_service_pb2.CreateTaskRequest(task=task_pb2.Task(payload=str(i).encode())) for i in range(30)],
    ))
    names = {result.task.name.rsplit("/", 1)[1] for result in created.results}
    eventually(lambda: len(worker.received("/work")) == 30)
    first.stop(signal.SIGKILL)

    worker.answer("/work", 200)  # the handlers answer at once now
    second = ServerProcess(tmp_path / "data", *ALLOW)
    try:
        eventually(lambda: len(worker.received("/work")) >= 60)
        again = worker.received("/work")[30:]
        assert {request.header("X-AppEngine-TaskName") for request in again} == names
        assert {request.body for request in again} == {str(i).encode() for i in range(30)}
        assert all(request.header("X-AppEngine-TaskRetryCount") == "1" for request in again)
        stats = queue_service_pb2_grpc.QueueServiceStub(second.channel).GetQueueStats
        eventually(lambda: stats(queue_service_pb2.GetQueueStatsRequest(name="queues/web")).stats.tasks_count == 0)
    finally:
        second.stop()
