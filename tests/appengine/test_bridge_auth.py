"""The App Engine API bridge on a server that checks callers, through Google's own SDK: the app
authenticates with a taskq token as its API ticket (or a proxy's Authorization header), and
the SDK needs nothing else; a refusal arrives as the SDK's own exceptions."""

from __future__ import annotations

import urllib.request

import pytest
from support.auth_files import TokensFile, bearer

from harness import ServerHarness
from taskq.client.appengine import TICKET_ENVIRON_KEY, with_api_ticket
from taskq.v1 import queue_pb2, queue_service_pb2

pytestmark = pytest.mark.engines("rocksdb")


@pytest.fixture
def tokens(tmp_path) -> dict[str, str]:
    """The tokens file, written before the server starts: an operator's token, and the app's
    (it may add to any queue and work on `pull`)."""
    file = TokensFile(tmp_path / "tokens.yaml")
    return {"file": str(file.path), "ops": file.token("ops", "admin"), "app": file.token("shop-app", "enqueuer", "worker=pull")}


@pytest.fixture
def bridge_server(tmp_path, worker, tokens):
    """Overrides the conftest's: the same server, checking callers against `tokens`."""
    harness = ServerHarness(str(tmp_path / "data"), http_listen="127.0.0.1:0", appengine_url=worker.url,
                            http_allow_networks="127.0.0.0/8", auth_tokens_file=tokens["file"])
    harness.queues.CreateQueue(queue_service_pb2.CreateQueueRequest(queue=queue_pb2.Queue(
        name="queues/pull", type=queue_pb2.QUEUE_TYPE_PULL)), metadata=bearer(tokens["ops"]))
    yield harness
    harness.close()


@pytest.fixture
def app_token(tokens, bridge_server, monkeypatch) -> str:
    """The app's token, set as the SDK's API ticket (as with_api_ticket does from TASKQ_TOKEN)."""
    monkeypatch.setenv("HTTP_X_APPENGINE_API_TICKET", tokens["app"])
    return tokens["app"]


def test_an_app_whose_api_ticket_is_its_token_uses_the_sdk_unchanged(sdk, app_token):
    assert sdk.add(url="/worker", payload="hello").was_enqueued
    queue = sdk.Queue("pull")
    queue.add(sdk.Task(payload="work", method="PULL"))
    [task] = queue.lease_tasks(60, 10)
    queue.delete_tasks([task])
    assert task.was_deleted


def test_what_the_apps_roles_do_not_allow_raises_permission_denied(sdk, app_token):
    with pytest.raises(sdk.PermissionDeniedError, match="shop-app may not call PurgeQueue: that needs the admin role"):
        sdk.Queue("pull").purge()
    with pytest.raises(sdk.PermissionDeniedError, match="needs the worker role on default"):
        sdk.Queue("default").lease_tasks(60, 1)


def test_a_ticket_that_is_not_a_token_raises_rpc_failed_saying_unauthenticated(sdk, app_token, monkeypatch):
    from google.appengine.runtime import apiproxy_errors

    monkeypatch.setenv("HTTP_X_APPENGINE_API_TICKET", "ticket-of-a-test")
    with pytest.raises(apiproxy_errors.RPCFailedError, match="UNAUTHENTICATED: the bearer token is not one of"):
        sdk.add(url="/worker")


def test_a_proxys_authorization_header_is_used_before_the_ticket(bridge_server, app_token):
    from google.appengine.api.taskqueue import taskqueue_service_bytes_pb2 as pb
    from google.appengine.ext.remote_api import remote_api_bytes_pb2 as remote_api

    stats = pb.TaskQueueFetchQueueStatsRequest(queue_name=[b"pull"], max_num_tasks=0)
    body = remote_api.Request(service_name="taskqueue", method="FetchQueueStats", request=stats.SerializeToString(),
                              request_id="not-a-token").SerializeToString()
    port = bridge_server.server.http_port.port
    for headers, answered in (({"Authorization": f"Bearer {app_token}"}, "response"), ({}, "rpc_error")):
        request = urllib.request.Request(f"http://127.0.0.1:{port}/rpc_http", data=body, headers=headers)
        with urllib.request.urlopen(request, timeout=10) as answer:
            assert remote_api.Response.FromString(answer.read()).HasField(answered)


def test_with_api_ticket_gives_every_request_the_apps_token_from_the_environment(monkeypatch, tmp_path):
    seen = []

    def app(environ, start_response):
        seen.append(environ.get(TICKET_ENVIRON_KEY))
        return [b""]

    monkeypatch.delenv("TASKQ_TOKEN", raising=False)
    monkeypatch.delenv("TASKQ_TOKEN_FILE", raising=False)
    with_api_ticket(app)({TICKET_ENVIRON_KEY: "from-the-request"}, None)
    with_api_ticket(app)({}, None)
    monkeypatch.setenv("TASKQ_TOKEN", "taskq_app-token")
    with_api_ticket(app)({TICKET_ENVIRON_KEY: "taskq-push-ticket"}, None)  # replaced: a ticket is no credential
    token_file = tmp_path / "token"
    token_file.write_text("taskq_from-a-file\n")
    monkeypatch.delenv("TASKQ_TOKEN")
    monkeypatch.setenv("TASKQ_TOKEN_FILE", str(token_file))
    with_api_ticket(app)({}, None)
    assert seen == ["from-the-request", "taskq", "taskq_app-token", "taskq_from-a-file"]
