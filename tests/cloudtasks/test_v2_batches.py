"""v2 BatchCreateTasks and BatchDeleteTasks through Google's official Python client, which reads
their answers as google.longrunning.Operations: taskq's are done when answered."""

from __future__ import annotations

import pytest
from cloudtasks.helpers import PARENT, ahead
from google.api_core import exceptions
from google.cloud import tasks_v2
from google.protobuf import empty_pb2

from harness import eventually

CREATE_STATE = tasks_v2.BatchCreateTasksMetadata.State
DELETE_STATE = tasks_v2.BatchDeleteTasksMetadata.State


def make_queue(client, queue_id="q"):
    return client.create_queue(parent=PARENT, queue={"name": f"{PARENT}/queues/{queue_id}"})


def create_request(queue, name=""):
    task = {"http_request": {"url": "https://worker.example.com/t"}, "schedule_time": ahead(3600)}
    if name:
        task["name"] = f"{queue.name}/tasks/{name}"
    return {"parent": queue.name, "task": task}


def test_batch_create_answers_a_done_operation_with_the_tasks_created(v2_client):
    client = v2_client
    queue = make_queue(client)
    operation = client.batch_create_tasks(parent=queue.name, requests=[create_request(queue, "a"), create_request(queue)])
    assert operation.done() and operation.operation.name.startswith(f"{PARENT}/operations/")
    created = operation.result()
    assert [task.name for task in created.tasks][0] == f"{queue.name}/tasks/a"
    assert sorted(t.name for t in client.list_tasks(parent=queue.name)) == sorted(t.name for t in created.tasks)
    metadata = operation.metadata
    assert metadata.state == CREATE_STATE.SUCCEEDED and not metadata.failed_requests
    assert metadata.start_time <= metadata.end_time


def test_batch_create_reports_each_task_it_could_not_create(v2_client):
    client = v2_client
    queue = make_queue(client)
    client.create_task(parent=queue.name, task=create_request(queue, "taken")["task"])
    operation = client.batch_create_tasks(parent=queue.name, requests=[
        create_request(queue, "new"), create_request(queue, "taken")])
    assert [task.name for task in operation.result().tasks] == [f"{queue.name}/tasks/new"]
    metadata = operation.metadata
    assert metadata.state == CREATE_STATE.PARTIALLY_SUCCEEDED
    assert list(metadata.failed_requests) == [1]
    failure = metadata.failed_requests[1]
    assert failure.code == 6 and f"{queue.name}/tasks/taken" in failure.message  # ALREADY_EXISTS, named as asked
    # When none succeeds, the Operation fails (ABORTED), as Google documents for BatchDeleteTasks.
    again = client.batch_create_tasks(parent=queue.name, requests=[create_request(queue, "taken")])
    with pytest.raises(exceptions.Aborted):
        again.result()
    assert list(again.metadata.failed_requests) == [0]
    # A malformed request fails the call, before any task is created.
    with pytest.raises(exceptions.InvalidArgument):
        client.batch_create_tasks(parent=queue.name, requests=[create_request(queue, "fine"), {"task": {}}])
    with pytest.raises(exceptions.NotFound):
        client.get_task(name=f"{queue.name}/tasks/fine")


def test_a_batch_create_retried_with_its_request_id_creates_nothing_again(v2_client):
    client = v2_client
    queue = make_queue(client)
    request = {"parent": queue.name, "requests": [create_request(queue), create_request(queue)], "request_id": "r-1"}
    first = client.batch_create_tasks(request=request)
    retry = client.batch_create_tasks(request=request)
    assert retry.operation.name == first.operation.name
    assert [t.name for t in retry.result().tasks] == [t.name for t in first.result().tasks]
    assert len(list(client.list_tasks(parent=queue.name))) == 2
    other = client.batch_create_tasks(request={**request, "request_id": "r-2"})
    assert other.operation.name != first.operation.name
    assert len(list(client.list_tasks(parent=queue.name))) == 4


def test_a_batch_create_retried_after_its_tasks_ran_answers_them_and_runs_nothing_again(v2_client, worker):
    client = v2_client
    queue = make_queue(client)
    request = {"parent": queue.name, "request_id": "r-1",
               "requests": [{"task": {"http_request": {"url": worker.url + "/once"}}}]}
    [task] = client.batch_create_tasks(request=request).result().tasks
    eventually(lambda: worker.received("/once") and list(client.list_tasks(parent=queue.name)) == [])
    [again] = client.batch_create_tasks(request=request).result().tasks
    # The same task, done since: its request is no longer known.
    assert again.name == task.name and "http_request" not in again and "app_engine_http_request" not in again
    assert list(client.list_tasks(parent=queue.name)) == []


def test_batch_delete_answers_a_done_operation_and_reports_each_task_it_could_not_delete(v2_client):
    client = v2_client
    queue = make_queue(client)
    created = client.batch_create_tasks(parent=queue.name, requests=[create_request(queue) for _ in range(3)]).result()
    names = [task.name for task in created.tasks]
    operation = client.batch_delete_tasks(request={"parent": queue.name, "names": names[:2]})
    assert operation.done() and operation.result() == empty_pb2.Empty()
    assert operation.metadata.state == DELETE_STATE.SUCCEEDED
    assert [t.name for t in client.list_tasks(parent=queue.name)] == names[2:]
    partly = client.batch_delete_tasks(request={"parent": queue.name, "names": [names[2], names[0]]})
    partly.result()
    assert partly.metadata.state == DELETE_STATE.PARTIALLY_SUCCEEDED
    assert list(partly.metadata.failed_requests) == [1] and partly.metadata.failed_requests[1].code == 5  # NOT_FOUND
    assert list(client.list_tasks(parent=queue.name)) == []
    # "When all requests in the batch fail, Operation.error will be set with code = ABORTED".
    with pytest.raises(exceptions.Aborted):
        client.batch_delete_tasks(request={"parent": queue.name, "names": names[:1]}).result()
