"""v2 tasks' requests through Google's official Python client: App Engine routing (the same as
v2beta2's), bodies, sizes and URLs, with the limits Cloud Tasks documents."""

from __future__ import annotations

from urllib.parse import urlsplit

import grpc
import pytest
from cloudtasks.helpers import PARENT, ahead, reason
from google.api_core import exceptions
from google.cloud import tasks_v2
from google.cloud.tasks_v2.services.cloud_tasks.transports import CloudTasksGrpcTransport
from support.engines import engine_settings

from harness import ServerHarness, eventually

FULL = tasks_v2.Task.View.FULL


def make_queue(client, queue_id="q"):
    return client.create_queue(parent=PARENT, queue={"name": f"{PARENT}/queues/{queue_id}"})


@pytest.fixture
def versioned_server(request, tmp_path, engine, worker, other_worker):
    """App Engine app `worker`; version v2 of its service `api` at `other_worker`, and no entry
    for the service itself."""
    harness = ServerHarness(
        str(tmp_path / "data"), appengine_url=worker.url, appengine_targets=f"v2.api={other_worker.url}",
        http_allow_networks="127.0.0.0/8", **engine_settings(request, engine),
    )
    yield harness
    harness.close()


def test_app_engine_tasks_routed_to_a_service_go_there_and_read_back_with_their_routing(v2_client, other_worker):
    client = v2_client
    queue = make_queue(client)
    task = client.create_task(request={"parent": queue.name, "response_view": FULL, "task": {
        "schedule_time": ahead(3600),
        "app_engine_http_request": {"relative_uri": "/resize?size=2", "app_engine_routing": {"service": "worker"},
                                    "body": b"img"},
    }})
    assert "http_request" not in task
    request = task.app_engine_http_request
    assert (request.relative_uri, request.body, request.http_method) == ("/resize?size=2", b"img", tasks_v2.HttpMethod.POST)
    assert request.app_engine_routing.service == "worker"
    assert request.app_engine_routing.host == urlsplit(other_worker.url).netloc
    assert client.get_task(name=task.name).app_engine_http_request.app_engine_routing.service == "worker"
    client.run_task(name=task.name)
    eventually(lambda: other_worker.received("/resize"))
    assert other_worker.received("/resize")[0].body == b"img"
    # An HTTP task to the same service's URL is still an HTTP task.
    direct = client.create_task(parent=queue.name, task={"schedule_time": ahead(3600),
                                                         "http_request": {"url": other_worker.url + "/direct"}})
    assert "app_engine_http_request" not in direct and direct.http_request.url == other_worker.url + "/direct"


def test_app_engine_routing_names_versions_and_a_service_nobody_serves_goes_to_the_app(
    versioned_server, worker, other_worker,
):
    client = tasks_v2.CloudTasksClient(transport=CloudTasksGrpcTransport(channel=grpc.insecure_channel(
        versioned_server.address)))
    queue = make_queue(client)
    versioned = client.create_task(parent=queue.name, task={"app_engine_http_request": {
        "relative_uri": "/v2-only", "app_engine_routing": {"service": "api", "version": "v2", "instance": "7"}}})
    assert versioned.app_engine_http_request.app_engine_routing.version == "v2"
    assert versioned.app_engine_http_request.app_engine_routing.service == "api"
    # As Cloud Tasks does with a service, version or instance that is not available: the
    # default version of the default service (the app) gets the task.
    for routing in ({"service": "api"}, {"service": "billing", "version": "v9"}):
        client.create_task(parent=queue.name, task={"app_engine_http_request": {
            "relative_uri": "/fallback", "app_engine_routing": routing}})
    eventually(lambda: len(other_worker.received("/v2-only")) == 1 and len(worker.received("/fallback")) == 2)
    assert other_worker.received("/fallback") == [] and worker.received("/v2-only") == []


def test_an_app_engine_body_needs_post_or_put_and_x_google_headers_are_refused(v2_client):
    client = v2_client
    queue = make_queue(client)
    client.create_task(parent=queue.name, task={"schedule_time": ahead(3600), "app_engine_http_request": {
        "relative_uri": "/put", "http_method": tasks_v2.HttpMethod.PUT, "body": b"x"}})
    for request in (
        {"relative_uri": "/patch", "http_method": tasks_v2.HttpMethod.PATCH, "body": b"x"},
        {"relative_uri": "/x", "headers": {"X-Google-Thing": "y"}},
        {"relative_uri": "no-slash"},
    ):
        with pytest.raises(exceptions.InvalidArgument):
            client.create_task(parent=queue.name, task={"app_engine_http_request": request})
    # An HTTP task may have a PATCH body.
    client.create_task(parent=queue.name, task={"schedule_time": ahead(3600), "http_request": {
        "url": "https://worker.example.com/patch", "http_method": tasks_v2.HttpMethod.PATCH, "body": b"x"}})


def test_task_size_is_limited_as_cloud_tasks_does(v2_client):
    client = v2_client
    queue = make_queue(client)
    url = "https://worker.example.com/big"
    app_engine_limit = 100 * 1024  # body, URL and headers together
    client.create_task(parent=queue.name, task={"schedule_time": ahead(3600), "app_engine_http_request": {
        "relative_uri": "/big", "body": b"x" * (app_engine_limit - len("/big"))}})
    with pytest.raises(exceptions.InvalidArgument) as refused:
        client.create_task(parent=queue.name, task={"app_engine_http_request": {
            "relative_uri": "/big", "body": b"x" * (app_engine_limit - len("/big") + 1)}})
    assert reason(refused.value) == "TASK_TOO_LARGE"
    # HTTP tasks: the server's --max-task-bytes (1 MiB), their URL and User-Agent included.
    headers = len(url) + len("User-Agent") + len("Google-Cloud-Tasks")
    client.create_task(parent=queue.name, task={"schedule_time": ahead(3600), "http_request": {
        "url": url, "body": b"x" * (1024 * 1024 - headers)}})
    with pytest.raises(exceptions.InvalidArgument) as refused:
        client.create_task(parent=queue.name, task={"http_request": {"url": url, "body": b"x" * (3 * 1024 * 1024)}})
    assert reason(refused.value) == "TASK_TOO_LARGE"


def test_urls_may_be_2048_bytes_long(v2_client):
    client = v2_client
    queue = make_queue(client)
    base = "https://worker.example.com/"
    client.create_task(parent=queue.name, task={"http_request": {"url": base + "a" * (2048 - len(base))},
                                                "schedule_time": ahead(3600)})
    for task in ({"http_request": {"url": base + "a" * (2049 - len(base))}},
                 {"app_engine_http_request": {"relative_uri": "/" + "a" * 2048}}):
        with pytest.raises(exceptions.InvalidArgument) as refused:
            client.create_task(parent=queue.name, task=task)
        assert reason(refused.value) == "URL_TOO_LONG" and "2048 bytes" in refused.value.message


def test_a_queue_http_method_overrides_its_http_tasks_methods_also_after_it_changes(v2_client, worker):
    client = v2_client
    put = tasks_v2.HttpMethod.PUT
    queue = client.create_queue(parent=PARENT, queue={"name": f"{PARENT}/queues/q", "http_target": {"http_method": put}})
    assert queue.http_target.http_method == put
    client.pause_queue(name=queue.name)
    own = client.create_task(parent=queue.name, task={"http_request": {
        "url": worker.url + "/own", "http_method": tasks_v2.HttpMethod.POST, "body": b"a"}})
    unset = client.create_task(parent=queue.name, task={"http_request": {"url": worker.url + "/unset"}})
    assert own.http_request.http_method == put and unset.http_request.http_method == put

    def set_method(name, value):
        client.update_queue(queue={"name": name, "http_target": {"http_method": value}},
                            update_mask={"paths": ["http_target"]})

    # The queue's method changes while the tasks wait: they go with the new one.
    set_method(queue.name, tasks_v2.HttpMethod.PATCH)
    assert client.get_task(name=own.name).http_request.http_method == tasks_v2.HttpMethod.PATCH
    client.resume_queue(name=queue.name)
    eventually(lambda: worker.received("/own") and worker.received("/unset"))
    assert [(r.method, r.body) for r in worker.received("/own") + worker.received("/unset")] == [
        ("PATCH", b"a"), ("PATCH", b"")]

    # GET: "the body of the task will be ignored".
    set_method(queue.name, tasks_v2.HttpMethod.GET)
    ignored = client.create_task(request={"parent": queue.name, "response_view": FULL, "task": {"http_request": {
        "url": worker.url + "/get", "http_method": tasks_v2.HttpMethod.POST, "body": b"ignored"}}})
    assert (ignored.http_request.http_method, ignored.http_request.body) == (tasks_v2.HttpMethod.GET, b"")
    eventually(lambda: worker.received("/get"))
    assert (worker.received("/get")[0].method, worker.received("/get")[0].body) == ("GET", b"")

    # A task created while its queue had no method keeps its own when the queue gets one.
    plain = make_queue(client, "plain")
    client.pause_queue(name=plain.name)
    kept = client.create_task(parent=plain.name, task={"http_request": {
        "url": worker.url + "/kept", "http_method": tasks_v2.HttpMethod.DELETE}})
    set_method(plain.name, put)
    assert client.get_task(name=kept.name).http_request.http_method == tasks_v2.HttpMethod.DELETE
