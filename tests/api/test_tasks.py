"""Creating, naming, de-duplicating, inspecting and listing tasks through the real API."""

from __future__ import annotations

import grpc
import pytest
from google.protobuf import duration_pb2

from harness import error_reason
from taskq.v1 import task_pb2, task_service_pb2


def create(server, queue_id, **task_fields):
    request_id = task_fields.pop("request_id", "")
    view = task_fields.pop("response_view", 0)
    return server.tasks.CreateTask(
        task_service_pb2.CreateTaskRequest(
            parent=f"queues/{queue_id}", task=task_pb2.Task(**task_fields), request_id=request_id, response_view=view
        )
    ).task


def test_generated_names_are_unique_and_not_sequential(fake_server):
    fake_server.create_queue("q")
    names = [create(fake_server, "q", payload=b"x").name for _ in range(50)]
    assert len(set(names)) == 50
    ids = [name.rsplit("/", 1)[1] for name in names]
    assert ids != sorted(ids)
    assert all(name.startswith("queues/q/tasks/") for name in names)


def test_create_answers_without_the_payload_unless_asked(fake_server):
    fake_server.create_queue("q")
    basic = create(fake_server, "q", payload=b"body")
    assert basic.payload == b"" and basic.view == task_pb2.TASK_VIEW_BASIC
    full = create(fake_server, "q", payload=b"body", response_view=task_pb2.TASK_VIEW_FULL)
    assert full.payload == b"body"


def test_a_caller_chosen_name_that_exists_is_refused(fake_server):
    fake_server.create_queue("q")
    create(fake_server, "q", name="queues/q/tasks/once", payload=b"1")
    with pytest.raises(grpc.RpcError) as raised:
        create(fake_server, "q", name="queues/q/tasks/once", payload=b"2")
    assert raised.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert error_reason(raised.value) == "TASK_ALREADY_EXISTS"
    assert fake_server.get_task("queues/q/tasks/once").payload == b"1"


def test_a_finished_tasks_name_is_tombstoned_until_tombstone_ttl_passes(fake_server, clock):
    fake_server.create_queue("q", tombstone_ttl=duration_pb2.Duration(seconds=600))
    create(fake_server, "q", name="queues/q/tasks/once")
    [leased] = fake_server.lease("q")
    fake_server.ack(leased)
    with pytest.raises(grpc.RpcError) as raised:
        create(fake_server, "q", name="queues/q/tasks/once")
    assert raised.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert error_reason(raised.value) == "TASK_TOMBSTONED"
    clock.advance(601)
    fake_server.janitor()
    assert create(fake_server, "q", name="queues/q/tasks/once").name == "queues/q/tasks/once"


def test_deleting_a_named_task_tombstones_its_name_too(fake_server):
    fake_server.create_queue("q")
    create(fake_server, "q", name="queues/q/tasks/gone")
    fake_server.tasks.DeleteTask(task_service_pb2.DeleteTaskRequest(name="queues/q/tasks/gone"))
    with pytest.raises(grpc.RpcError) as raised:
        create(fake_server, "q", name="queues/q/tasks/gone")
    assert error_reason(raised.value) == "TASK_TOMBSTONED"


def test_zero_tombstone_ttl_frees_a_name_at_once(fake_server):
    fake_server.create_queue("q", tombstone_ttl=duration_pb2.Duration(seconds=0))
    create(fake_server, "q", name="queues/q/tasks/reuse")
    fake_server.tasks.DeleteTask(task_service_pb2.DeleteTaskRequest(name="queues/q/tasks/reuse"))
    create(fake_server, "q", name="queues/q/tasks/reuse")


def test_a_retried_create_with_the_same_request_id_adds_no_second_task(fake_server):
    fake_server.create_queue("q")
    first = create(fake_server, "q", payload=b"x", request_id="req-1")
    again = create(fake_server, "q", payload=b"x", request_id="req-1")
    assert again.name == first.name
    assert fake_server.stats("q").tasks_count == 1


def test_a_request_id_retry_after_the_task_finished_returns_its_name(fake_server):
    fake_server.create_queue("q")
    first = create(fake_server, "q", payload=b"x", request_id="req-2")
    [leased] = fake_server.lease("q")
    fake_server.ack(leased)
    again = create(fake_server, "q", payload=b"x", request_id="req-2")
    assert again.name == first.name
    assert again.state == task_pb2.TASK_STATE_UNSPECIFIED  # it has finished: no state
    assert fake_server.stats("q").tasks_count == 0


def test_request_ids_are_remembered_for_an_hour_and_forgotten_within_two(fake_server, clock):
    fake_server.create_queue("q")
    first = create(fake_server, "q", payload=b"x", request_id="req-3")
    clock.advance(3599)
    assert create(fake_server, "q", payload=b"x", request_id="req-3").name == first.name
    clock.advance(3602)
    fake_server.janitor()
    assert create(fake_server, "q", payload=b"x", request_id="req-3").name != first.name


def test_batch_create_gives_one_result_per_item_and_commits_the_good_ones(fake_server):
    fake_server.create_queue("q")
    requests = [
        task_service_pb2.CreateTaskRequest(task=task_pb2.Task(name="queues/q/tasks/a", payload=b"a")),
        task_service_pb2.CreateTaskRequest(task=task_pb2.Task(name="queues/q/tasks/a", payload=b"dup")),
        task_service_pb2.CreateTaskRequest(task=task_pb2.Task(name="queues/q/tasks/bad id")),
        task_service_pb2.CreateTaskRequest(task=task_pb2.Task(payload=b"c")),
    ]
    response = fake_server.tasks.BatchCreateTasks(
        task_service_pb2.BatchCreateTasksRequest(parent="queues/q", requests=requests)
    )
    kinds = [result.WhichOneof("result") for result in response.results]
    assert kinds == ["task", "error", "error", "task"]
    assert response.results[1].error.code == grpc.StatusCode.ALREADY_EXISTS.value[0]
    assert response.results[2].error.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert fake_server.stats("q").tasks_count == 2


def test_get_task_returns_the_full_view_by_default_and_basic_on_request(fake_server):
    fake_server.create_queue("q")
    created = create(fake_server, "q", payload=b"body", attributes={"content-type": "text/plain"}, tag="t")
    full = fake_server.get_task(created.name)
    assert (full.payload, full.attributes["content-type"], full.tag) == (b"body", "text/plain", "t")
    assert full.view == task_pb2.TASK_VIEW_FULL
    basic = fake_server.tasks.GetTask(
        task_service_pb2.GetTaskRequest(name=created.name, view=task_pb2.TASK_VIEW_BASIC)
    ).task
    assert basic.payload == b"" and basic.attributes["content-type"] == "text/plain"


def list_all(server, queue_id, **fields):
    names, token = [], ""
    while True:
        page = server.tasks.ListTasks(
            task_service_pb2.ListTasksRequest(parent=f"queues/{queue_id}", page_token=token, **fields)
        )
        names += [task.name for task in page.tasks]
        token = page.next_page_token
        if not token:
            return names


def test_list_tasks_pages_through_every_task_in_id_order(fake_server):
    fake_server.create_queue("q")
    created = sorted(create(fake_server, "q").name for _ in range(25))
    assert list_all(fake_server, "q", page_size=7) == created


def test_list_tasks_filters_by_state_and_tag(fake_server, clock):
    from harness import seconds_to_duration

    fake_server.create_queue("q")
    ready = create(fake_server, "q", tag="a")
    create(fake_server, "q", tag="b")
    scheduled = create(fake_server, "q", tag="a", schedule_time=fake_server.get_task(ready.name).schedule_time)
    future = task_pb2.Task(tag="a")
    future.schedule_time.FromMicroseconds(clock.now_us() + 60_000_000)
    scheduled = fake_server.tasks.CreateTask(
        task_service_pb2.CreateTaskRequest(parent="queues/q", task=future)
    ).task
    assert list_all(fake_server, "q", filter="state = SCHEDULED") == [scheduled.name]
    tagged_ready = list_all(fake_server, "q", filter='tag = "a" AND state = READY')
    assert ready.name in tagged_ready and scheduled.name not in tagged_ready
    fake_server.tasks.LeaseTasks(
        task_service_pb2.LeaseTasksRequest(
            parent="queues/q", lease_duration=seconds_to_duration(60), max_tasks=1, tag="b"
        )
    )
    assert len(list_all(fake_server, "q", filter="state = (LEASED OR SCHEDULED)")) == 2


def test_list_tasks_leaves_payloads_out_unless_asked(fake_server):
    fake_server.create_queue("q")
    create(fake_server, "q", payload=b"body")
    page = fake_server.tasks.ListTasks(task_service_pb2.ListTasksRequest(parent="queues/q"))
    assert page.tasks[0].payload == b""
    full = fake_server.tasks.ListTasks(task_service_pb2.ListTasksRequest(parent="queues/q", view=task_pb2.TASK_VIEW_FULL))
    assert full.tasks[0].payload == b"body"


def test_a_page_token_used_with_another_filter_is_refused(fake_server):
    fake_server.create_queue("q")
    for _ in range(3):
        create(fake_server, "q")
    page = fake_server.tasks.ListTasks(task_service_pb2.ListTasksRequest(parent="queues/q", page_size=1))
    with pytest.raises(grpc.RpcError) as raised:
        fake_server.tasks.ListTasks(
            task_service_pb2.ListTasksRequest(
                parent="queues/q", page_size=1, page_token=page.next_page_token, filter="state = READY"
            )
        )
    assert error_reason(raised.value) == "INVALID_PAGE_TOKEN"


def test_schedule_time_more_than_a_year_ahead_is_refused(fake_server, clock):
    fake_server.create_queue("q")
    task = task_pb2.Task()
    task.schedule_time.FromMicroseconds(clock.now_us() + 366 * 86400 * 1_000_000)
    with pytest.raises(grpc.RpcError) as raised:
        fake_server.tasks.CreateTask(task_service_pb2.CreateTaskRequest(parent="queues/q", task=task))
    assert error_reason(raised.value) == "SCHEDULE_TIME_TOO_FAR"
