"""What the Cloud Tasks tests share (imported as cloudtasks.helpers: tests/ is on the path):
the v2beta2 Python client on a server, names, pull-queue calls, times, error reasons."""

from __future__ import annotations

import datetime

import grpc
from google.api_core import exceptions
from google.cloud import tasks_v2beta2
from google.cloud.tasks_v2beta2.services.cloud_tasks.transports import CloudTasksGrpcTransport
from google.protobuf import duration_pb2

from harness import ServerHarness, error_reason

PARENT = "projects/my-project/locations/us-central1"
FULL = tasks_v2beta2.Task.View.FULL
BASIC = tasks_v2beta2.Task.View.BASIC


def client_for(server: ServerHarness) -> tasks_v2beta2.CloudTasksClient:
    channel = grpc.insecure_channel(server.address)
    return tasks_v2beta2.CloudTasksClient(transport=CloudTasksGrpcTransport(channel=channel))


def queue_name(queue_id: str) -> str:
    return f"{PARENT}/queues/{queue_id}"


def pull_queue(client, queue_id: str = "pull", **fields) -> tasks_v2beta2.Queue:
    queue = tasks_v2beta2.Queue(name=queue_name(queue_id), pull_target=tasks_v2beta2.PullTarget(), **fields)
    return client.create_queue(parent=PARENT, queue=queue)


def pull_task(client, queue_id: str, payload: bytes = b"", tag: str = "", name: str = "", **fields) -> tasks_v2beta2.Task:
    task = tasks_v2beta2.Task(pull_message=tasks_v2beta2.PullMessage(payload=payload, tag=tag), **fields)
    if name:
        task.name = f"{queue_name(queue_id)}/tasks/{name}"
    return client.create_task(parent=queue_name(queue_id), task=task)


def lease(client, queue_id: str = "pull", seconds: int = 60, max_tasks: int = 10, filter: str = "",
          view=FULL) -> list[tasks_v2beta2.Task]:
    response = client.lease_tasks(request=tasks_v2beta2.LeaseTasksRequest(
        parent=queue_name(queue_id), lease_duration=duration_pb2.Duration(seconds=seconds), max_tasks=max_tasks,
        filter=filter, response_view=view,
    ))
    return list(response.tasks)


def ago(seconds: float) -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC) - datetime.timedelta(seconds=seconds)


def ahead(seconds: float) -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=seconds)


def reason(error: exceptions.GoogleAPICallError) -> str:
    assert isinstance(error.response, grpc.RpcError)
    return error_reason(error.response)
