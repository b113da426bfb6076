"""Bearer tokens from the tokens file: accepted, refused, expired, reloaded when the file changes
(looked at on use once the reload interval has passed on the server's clock: no sleeping), and
what a caller sees of queue lists, IAM answers, health and reflection."""

from __future__ import annotations

import asyncio
import datetime
import logging
import re
import urllib.error
import urllib.request

import grpc
import pytest
from google.cloud import tasks_v2
from google.iam.v1 import iam_policy_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from support.auth_files import bearer, error_info

from harness import FakeClock, ServerHarness
from taskq.app import StartupError, build_server
from taskq.config import Config
from taskq.v1 import queue_pb2, queue_service_pb2, task_pb2, task_service_pb2


def list_queues(server: ServerHarness, token: str) -> list[str]:
    response = server.queues.ListQueues(queue_service_pb2.ListQueuesRequest(), metadata=bearer(token))
    return [queue.name for queue in response.queues]


def refusal(call) -> tuple[str, str]:
    with pytest.raises(grpc.RpcError) as refused:
        call()
    return refused.value.code().name, error_info(refused.value).reason


def create_queue(server: ServerHarness, token: str, queue_id: str, **fields) -> None:
    server.queues.CreateQueue(queue_service_pb2.CreateQueueRequest(queue=queue_pb2.Queue(name=f"queues/{queue_id}",
                                                                                         **fields)),
                              metadata=bearer(token))


def test_a_token_of_the_file_calls_as_its_name_with_its_roles(auth_server, tokens_file):
    admin = tokens_file.token("ops", "admin")
    auth_server.clock.advance(10)  # the file is looked at again once the interval has passed
    create_queue(auth_server, admin, "emails")
    assert list_queues(auth_server, admin) == ["queues/emails"]


def test_an_unknown_token_a_malformed_header_and_no_header_are_unauthenticated(auth_server):
    request = queue_service_pb2.ListQueuesRequest()
    for metadata in (bearer("taskq_not-a-token"), [("authorization", "Basic dXNlcjpwYXNz")], None):
        code, reason = refusal(lambda metadata=metadata: auth_server.queues.ListQueues(request, metadata=metadata))
        assert (code, reason) == ("UNAUTHENTICATED", "UNAUTHENTICATED")


def test_an_expired_token_is_refused_with_token_expired(auth_server, tokens_file):
    now = datetime.datetime.fromtimestamp(auth_server.clock.now_us() / 1e6, datetime.UTC)
    token = tokens_file.token("old", "admin", expires=now + datetime.timedelta(seconds=30))
    auth_server.clock.advance(10)
    list_queues(auth_server, token)
    auth_server.clock.advance(30)
    code, reason = refusal(lambda: list_queues(auth_server, token))
    assert (code, reason) == ("UNAUTHENTICATED", "TOKEN_EXPIRED")


def test_the_file_is_read_again_when_it_changes_once_the_interval_has_passed(auth_server, tokens_file):
    first = tokens_file.token("first", "admin")
    auth_server.clock.advance(10)
    assert list_queues(auth_server, first) == []
    second = tokens_file.token("second", "viewer")
    tokens_file.tokens = [entry for entry in tokens_file.tokens if entry["name"] != "first"]
    tokens_file.write()
    # Before the interval passes the server has not looked: the change is not seen yet.
    assert list_queues(auth_server, first) == []
    assert refusal(lambda: list_queues(auth_server, second))[1] == "UNAUTHENTICATED"
    auth_server.clock.advance(5)
    assert list_queues(auth_server, second) == []
    assert refusal(lambda: list_queues(auth_server, first))[1] == "UNAUTHENTICATED"


def test_a_broken_file_leaves_the_tokens_read_before_in_use_and_is_logged_once(auth_server, tokens_file, caplog):
    token = tokens_file.token("ops", "admin")
    auth_server.clock.advance(10)
    assert list_queues(auth_server, token) == []
    tokens_file.path.write_text("tokens: [{name: ops, sha256: 'not hex', roles: [admin]}]\n")
    with caplog.at_level(logging.ERROR, logger="taskq.auth.auth_file"):
        for _ in range(3):
            auth_server.clock.advance(10)
            assert list_queues(auth_server, token) == []
    errors = [record.getMessage() for record in caplog.records if record.name == "taskq.auth.auth_file"]
    assert len(errors) == 1 and "tokens[0]: sha256 must be" in errors[0] and "previous tokens and roles stay" in errors[0]


@pytest.mark.parametrize("content, reason", [
    ("tokens: {name: x}\n", "tokens: must be a list"),
    ("tokens: [{name: x, sha256: " + "a" * 64 + ", roles: [boss]}]\n", "tokens[0]: 'boss': the role must be one of"),
    ("tokens: [{name: x, sha256: " + "a" * 64 + ", roles: [admin], secret: s}]\n", "tokens[0]: unknown key 'secret'"),
    ("identities: [{name: a, roles: [viewer]}, {name: a, roles: [admin]}]\n", "identities[1]: a is listed twice"),
    ("tokens: [: x\n", "is not valid YAML"),
])
def test_a_tokens_file_that_cannot_be_used_stops_the_start_naming_the_entry(tmp_path, content, reason):
    path = tmp_path / "tokens.yaml"
    path.write_text(content)
    config = Config(listen="127.0.0.1:0", data_dir=str(tmp_path / "data"), auth_tokens_file=str(path))

    async def start() -> None:
        server = build_server(config)
        try:
            await server.start()
        finally:
            await server.stop(0)

    with pytest.raises(StartupError, match=re.escape(reason)):
        asyncio.run(start())


def test_queue_lists_show_only_the_queues_the_caller_may_view(auth_server, tokens_file):
    admin = tokens_file.token("ops", "admin")
    mailer = tokens_file.token("mailer", "worker=mail-*", "enqueuer=reports")
    auth_server.clock.advance(10)
    for queue_id in ("mail-in", "mail-out", "reports", "billing"):
        create_queue(auth_server, admin, queue_id)
    assert list_queues(auth_server, mailer) == ["queues/mail-in", "queues/mail-out"]
    cloud = auth_server.channel.unary_unary("/google.cloud.tasks.v2.CloudTasks/ListQueues",
                                            request_serializer=tasks_v2.ListQueuesRequest.pb().SerializeToString,
                                            response_deserializer=tasks_v2.ListQueuesResponse.pb().FromString)
    response = cloud(tasks_v2.ListQueuesRequest.pb()(parent="projects/p/locations/l"), metadata=bearer(mailer))
    assert [q.name.rpartition("/")[2] for q in response.queues] == ["mail-in", "mail-out"]


def test_test_iam_permissions_answers_the_permissions_the_callers_roles_give_on_the_queue(auth_server, tokens_file):
    admin = tokens_file.token("ops", "admin")
    producer = tokens_file.token("producer", "enqueuer=jobs")
    auth_server.clock.advance(10)
    create_queue(auth_server, admin, "jobs", type=queue_pb2.QUEUE_TYPE_PUSH)
    asked = ["cloudtasks.tasks.create", "cloudtasks.tasks.list", "cloudtasks.queues.purge"]
    test = auth_server.channel.unary_unary("/google.cloud.tasks.v2.CloudTasks/TestIamPermissions",
                                           request_serializer=iam_policy_pb2.TestIamPermissionsRequest.SerializeToString,
                                           response_deserializer=iam_policy_pb2.TestIamPermissionsResponse.FromString)
    request = iam_policy_pb2.TestIamPermissionsRequest(resource="projects/p/locations/l/queues/jobs", permissions=asked)
    assert list(test(request, metadata=bearer(producer)).permissions) == ["cloudtasks.tasks.create"]
    assert list(test(request, metadata=bearer(admin)).permissions) == asked


def test_a_dead_letter_queue_needs_the_enqueuer_role_where_failed_tasks_will_go(auth_server, tokens_file):
    root = tokens_file.token("root", "admin")
    team = tokens_file.token("team", "admin=team-*")
    auth_server.clock.advance(10)
    create_queue(auth_server, root, "elsewhere")
    code, reason = refusal(lambda: create_queue(auth_server, team, "team-work", dead_letter_queue="queues/elsewhere"))
    assert (code, reason) == ("PERMISSION_DENIED", "PERMISSION_DENIED")
    create_queue(auth_server, team, "team-dead")
    create_queue(auth_server, team, "team-work", dead_letter_queue="queues/team-dead")


def test_health_and_reflection_are_open_by_default_and_need_any_identity_when_closed(tmp_path, tokens_file):
    token = tokens_file.token("prober", "viewer=nothing")
    for open_services, needs_credentials in (("health,reflection", False), ("none", True)):
        server = ServerHarness(str(tmp_path / open_services), clock=FakeClock(), auth_tokens_file=str(tokens_file.path),
                               auth_open_services=open_services)
        try:
            health = health_pb2_grpc.HealthStub(server.channel)
            reflection = reflection_pb2_grpc.ServerReflectionStub(server.channel)
            ask = reflection_pb2.ServerReflectionRequest(list_services="")
            if needs_credentials:
                assert refusal(lambda health=health: health.Check(health_pb2.HealthCheckRequest()))[0] == "UNAUTHENTICATED"
                assert refusal(lambda reflection=reflection, ask=ask: list(reflection.ServerReflectionInfo(iter([ask]))))[0] \
                    == "UNAUTHENTICATED"
            metadata = bearer(token) if needs_credentials else None
            assert health.Check(health_pb2.HealthCheckRequest(), metadata=metadata).status == health_pb2.HealthCheckResponse.SERVING
            [answer] = list(reflection.ServerReflectionInfo(iter([ask]), metadata=metadata))
            assert "taskq.v1.TaskService" in [service.name for service in answer.list_services_response.service]
        finally:
            server.close()


def test_queue_file_acl_gives_its_addresses_roles_on_their_queue(tmp_path, tokens_file):
    queues = tmp_path / "queue.yaml"
    queues.write_text("queue:\n- name: inbox\n  mode: pull\n  acl:\n  - user_email: ann@example.com\n"
                      "  - writer_email: bob@example.com\n")
    ann = tokens_file.token("ann@example.com")
    bob = tokens_file.token("bob@example.com")
    server = ServerHarness(str(tmp_path / "data"), clock=FakeClock(), auth_tokens_file=str(tokens_file.path),
                           queues_file=str(queues))
    try:
        create = task_service_pb2.CreateTaskRequest(parent="queues/inbox", task=task_pb2.Task(payload=b"x"))
        server.tasks.CreateTask(create, metadata=bearer(bob))
        assert refusal(lambda: server.tasks.CreateTask(create, metadata=bearer(ann)))[0] == "PERMISSION_DENIED"
        lease = task_service_pb2.LeaseTasksRequest(parent="queues/inbox", max_tasks=1)
        lease.lease_duration.seconds = 60
        assert len(server.tasks.LeaseTasks(lease, metadata=bearer(ann)).tasks) == 1
        assert refusal(lambda: server.tasks.LeaseTasks(lease, metadata=bearer(bob)))[0] == "PERMISSION_DENIED"
        assert list_queues(server, ann) == ["queues/inbox"] and list_queues(server, bob) == []
    finally:
        server.close()


def test_metrics_need_the_viewer_role_on_every_queue_unless_left_open(tmp_path, tokens_file):
    viewer = tokens_file.token("prometheus", "viewer")
    partial = tokens_file.token("team", "viewer=team-*")
    for open_services, answers in (("health,reflection", {None: 401, "partial": 403, "viewer": 200}),
                                   ("metrics", {None: 200})):
        server = ServerHarness(str(tmp_path / open_services), clock=FakeClock(), auth_tokens_file=str(tokens_file.path),
                               http_listen="127.0.0.1:0", auth_open_services=open_services)
        try:
            assert server.server is not None and server.server.http_port is not None
            url = f"http://127.0.0.1:{server.server.http_port.port}/metrics"
            for holder, status in answers.items():
                token = {"viewer": viewer, "partial": partial}.get(holder or "")
                headers = {"Authorization": f"Bearer {token}"} if token else {}
                try:
                    with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=10) as answer:
                        got = answer.status
                except urllib.error.HTTPError as error:
                    got = error.code
                assert got == status, holder
        finally:
            server.close()
