"""Every method of every surface (taskq.v1, Cloud Tasks v2 and v2beta2, the App Engine bridge)
called by every role: allowed where docs/security.md's table says so, refused otherwise with
PERMISSION_DENIED naming the role and the queue, and a refused call changes nothing. Calls
without credentials are UNAUTHENTICATED.

The roles are granted on `cat-*` (each case works on a queue of its own, cat-N); `root` is
admin on `*`, `stranger` is admin on `other-*` only. The expected role of each method is
written here, apart from taskq/auth/policy.py, so the two are checked against each other.
"""

from __future__ import annotations

import dataclasses
import itertools
import threading
import urllib.request
from collections.abc import Callable
from typing import Any

import grpc
import pytest
from google.appengine.api.taskqueue import taskqueue_service_bytes_pb2 as appengine_pb
from google.appengine.ext.remote_api import remote_api_bytes_pb2 as remote_api
from google.cloud import tasks_v2, tasks_v2beta2
from google.iam.v1 import iam_policy_pb2
from google.protobuf import duration_pb2, field_mask_pb2, timestamp_pb2
from support.auth_files import TokensFile, bearer, error_info

from harness import FakeClock, ServerHarness
from taskq.app import ADMIN_SERVICE, QUEUE_SERVICE, TASK_SERVICE
from taskq.appengine.taskqueue import TaskQueueService
from taskq.auth.policy import RULES
from taskq.auth.roles import INCLUDES, Role
from taskq.cloudtasks.service_v2 import CloudTasksV2
from taskq.cloudtasks.service_v2beta2 import CloudTasksV2Beta2
from taskq.v1 import (
    admin_service_pb2,
    queue_pb2,
    queue_service_pb2,
    task_pb2,
    task_service_pb2,
)

ROLES = {
    "viewer": ["viewer=cat-*"], "enqueuer": ["enqueuer=cat-*"], "worker": ["worker=cat-*"], "admin": ["admin=cat-*"],
    "root": ["admin"], "stranger": ["admin=other-*"],
}
#: A method any authenticated caller may call (its answer shows only what the caller may see).
ANY = "any"
#: A method that needs its role on every queue (a grant on *).
EVERY = "every"

V1_TASKS, V1_QUEUES, V1_ADMIN = f"/{TASK_SERVICE}/", f"/{QUEUE_SERVICE}/", f"/{ADMIN_SERVICE}/"
V2, V2BETA2, APPENGINE = "/google.cloud.tasks.v2.CloudTasks/", "/google.cloud.tasks.v2beta2.CloudTasks/", "/taskqueue/"
PARENT = "projects/p/locations/l"
_numbers = itertools.count()


@dataclasses.dataclass
class Setup:
    """What a case works on: its own queue (with a ready task, and in a pull queue a leased one)."""

    queue: str
    ready: task_pb2.Task
    leased: task_pb2.Task | None
    #: Where a backup may go (Backup's destination: a new directory in it).
    backups: str

    @property
    def v1(self) -> str:
        return f"queues/{self.queue}"

    @property
    def cloud(self) -> str:
        return f"{PARENT}/queues/{self.queue}"

    def cloud_task(self, task: task_pb2.Task) -> str:
        return f"{self.cloud}/tasks/{task.name.rpartition('/')[2]}"


@dataclasses.dataclass
class Case:
    method: str
    role: Role | str
    request: Callable[[Setup], Any]
    queue_type: str = "pull"
    #: The queue the refusal names, as the request names it (default: the case's queue).
    named: Callable[[Setup], str] | None = None


def _duration(seconds: int) -> duration_pb2.Duration:
    return duration_pb2.Duration(seconds=seconds)


def _lease_time(task: task_pb2.Task) -> timestamp_pb2.Timestamp:
    return task.schedule_time


V2_COMMON = [
    ("ListQueues", ANY, lambda s, m: m.ListQueuesRequest.pb()(parent=PARENT)),
    ("GetQueue", Role.VIEWER, lambda s, m: m.GetQueueRequest.pb()(name=s.cloud)),
    ("CreateQueue", Role.ADMIN, lambda s, m: m.CreateQueueRequest.pb()(
        parent=PARENT, queue=m.Queue.pb()(name=f"{s.cloud}-new"))),
    ("UpdateQueue", Role.ADMIN, lambda s, m: m.UpdateQueueRequest.pb()(queue=m.Queue.pb()(name=s.cloud))),
    ("DeleteQueue", Role.ADMIN, lambda s, m: m.DeleteQueueRequest.pb()(name=s.cloud)),
    ("PurgeQueue", Role.ADMIN, lambda s, m: m.PurgeQueueRequest.pb()(name=s.cloud)),
    ("PauseQueue", Role.ADMIN, lambda s, m: m.PauseQueueRequest.pb()(name=s.cloud)),
    ("ResumeQueue", Role.ADMIN, lambda s, m: m.ResumeQueueRequest.pb()(name=s.cloud)),
    ("GetIamPolicy", Role.VIEWER, lambda s, m: iam_policy_pb2.GetIamPolicyRequest(resource=s.cloud)),
    ("SetIamPolicy", Role.ADMIN, lambda s, m: iam_policy_pb2.SetIamPolicyRequest(resource=s.cloud)),
    ("TestIamPermissions", ANY, lambda s, m: iam_policy_pb2.TestIamPermissionsRequest(
        resource=s.cloud, permissions=["cloudtasks.tasks.create"])),
    ("ListTasks", Role.VIEWER, lambda s, m: m.ListTasksRequest.pb()(parent=s.cloud)),
    ("GetTask", Role.VIEWER, lambda s, m: m.GetTaskRequest.pb()(name=s.cloud_task(s.ready))),
    ("CreateTask", Role.ENQUEUER, lambda s, m: m.CreateTaskRequest.pb()(parent=s.cloud)),
    ("DeleteTask", Role.ADMIN, lambda s, m: m.DeleteTaskRequest.pb()(name=s.cloud_task(s.ready))),
    ("RunTask", Role.ADMIN, lambda s, m: m.RunTaskRequest.pb()(name=s.cloud_task(s.ready))),
]


def _cloud_case(prefix: str, module: Any, name: str, role: Role | str, build: Callable, queue_type: str) -> Case:
    named = (lambda s: f"{s.cloud}-new") if name == "CreateQueue" else (lambda s: s.cloud)
    return Case(prefix + name, role, lambda s: build(s, module), queue_type, named)


CASES: list[Case] = [
    # taskq.v1 TaskService
    Case(V1_TASKS + "CreateTask", Role.ENQUEUER, lambda s: task_service_pb2.CreateTaskRequest(parent=s.v1)),
    Case(V1_TASKS + "BatchCreateTasks", Role.ENQUEUER, lambda s: task_service_pb2.BatchCreateTasksRequest(
        parent=s.v1, requests=[task_service_pb2.CreateTaskRequest()])),
    Case(V1_TASKS + "GetTask", Role.VIEWER, lambda s: task_service_pb2.GetTaskRequest(name=s.ready.name)),
    Case(V1_TASKS + "ListTasks", Role.VIEWER, lambda s: task_service_pb2.ListTasksRequest(parent=s.v1)),
    Case(V1_TASKS + "DeleteTask", Role.ADMIN, lambda s: task_service_pb2.DeleteTaskRequest(name=s.ready.name)),
    Case(V1_TASKS + "DeleteTask", Role.WORKER, lambda s: task_service_pb2.DeleteTaskRequest(
        name=s.leased.name, lease_token=s.leased.lease_token)),
    Case(V1_TASKS + "BatchDeleteTasks", Role.ADMIN, lambda s: task_service_pb2.BatchDeleteTasksRequest(
        parent=s.v1, requests=[task_service_pb2.DeleteTaskRequest(name=s.ready.name)])),
    Case(V1_TASKS + "BatchDeleteTasks", Role.WORKER, lambda s: task_service_pb2.BatchDeleteTasksRequest(
        parent=s.v1, requests=[task_service_pb2.DeleteTaskRequest(name=s.leased.name, lease_token=s.leased.lease_token)])),
    Case(V1_TASKS + "LeaseTasks", Role.WORKER, lambda s: task_service_pb2.LeaseTasksRequest(
        parent=s.v1, lease_duration=_duration(60), max_tasks=5)),
    Case(V1_TASKS + "ModifyLease", Role.WORKER, lambda s: task_service_pb2.ModifyLeaseRequest(
        name=s.leased.name, lease_token=s.leased.lease_token, lease_duration=_duration(0))),
    Case(V1_TASKS + "RunTask", Role.ADMIN, lambda s: task_service_pb2.RunTaskRequest(name=s.ready.name)),
    # (StreamTasks: test_stream_tasks_needs_the_worker_role_on_the_subscribed_queue below.)
    # taskq.v1 QueueService
    Case(V1_QUEUES + "CreateQueue", Role.ADMIN, lambda s: queue_service_pb2.CreateQueueRequest(
        queue=queue_pb2.Queue(name=f"{s.v1}-new")), named=lambda s: f"{s.v1}-new"),
    Case(V1_QUEUES + "GetQueue", Role.VIEWER, lambda s: queue_service_pb2.GetQueueRequest(name=s.v1)),
    Case(V1_QUEUES + "ListQueues", ANY, lambda s: queue_service_pb2.ListQueuesRequest()),
    Case(V1_QUEUES + "UpdateQueue", Role.ADMIN, lambda s: queue_service_pb2.UpdateQueueRequest(
        queue=queue_pb2.Queue(name=s.v1, task_ttl=_duration(3600)), update_mask=field_mask_pb2.FieldMask(paths=["task_ttl"]))),
    Case(V1_QUEUES + "DeleteQueue", Role.ADMIN, lambda s: queue_service_pb2.DeleteQueueRequest(name=s.v1)),
    Case(V1_QUEUES + "PauseQueue", Role.ADMIN, lambda s: queue_service_pb2.PauseQueueRequest(name=s.v1)),
    Case(V1_QUEUES + "ResumeQueue", Role.ADMIN, lambda s: queue_service_pb2.ResumeQueueRequest(name=s.v1)),
    Case(V1_QUEUES + "PurgeQueue", Role.ADMIN, lambda s: queue_service_pb2.PurgeQueueRequest(name=s.v1)),
    Case(V1_QUEUES + "GetQueueStats", Role.VIEWER, lambda s: queue_service_pb2.GetQueueStatsRequest(name=s.v1)),
    # taskq.v1 AdminService (its destination is made absent by the test)
    Case(V1_ADMIN + "Backup", EVERY, lambda s: admin_service_pb2.BackupRequest(destination=f"{s.backups}/{s.queue}"),
         named=lambda s: "*"),
    # Cloud Tasks v2 (push queues) and v2beta2 (pull queues, with their lease methods)
    *[_cloud_case(V2, tasks_v2, name, role, build, "push") for name, role, build in V2_COMMON],
    _cloud_case(V2, tasks_v2, "BatchCreateTasks", Role.ENQUEUER, lambda s, m: m.BatchCreateTasksRequest.pb()(
        parent=s.cloud, requests=[m.CreateTaskRequest.pb()(parent=s.cloud)]), "push"),
    _cloud_case(V2, tasks_v2, "BatchDeleteTasks", Role.ADMIN, lambda s, m: m.BatchDeleteTasksRequest.pb()(
        parent=s.cloud, names=[s.cloud_task(s.ready)]), "push"),
    Case(V2 + "GetCmekConfig", EVERY, lambda s: tasks_v2.GetCmekConfigRequest.pb()(name=f"{PARENT}/cmekConfig"),
         named=lambda s: "*"),
    Case(V2 + "UpdateCmekConfig", EVERY, lambda s: tasks_v2.UpdateCmekConfigRequest.pb()(), named=lambda s: "*"),
    *[_cloud_case(V2BETA2, tasks_v2beta2, name, role, build, "pull") for name, role, build in V2_COMMON],
    Case(V2BETA2 + "UploadQueueYaml", EVERY, lambda s: tasks_v2beta2.UploadQueueYamlRequest.pb()(app_id="app"),
         named=lambda s: "*"),
    _cloud_case(V2BETA2, tasks_v2beta2, "LeaseTasks", Role.WORKER, lambda s, m: m.LeaseTasksRequest.pb()(
        parent=s.cloud, max_tasks=5, lease_duration=_duration(60)), "pull"),
    _cloud_case(V2BETA2, tasks_v2beta2, "AcknowledgeTask", Role.WORKER, lambda s, m: m.AcknowledgeTaskRequest.pb()(
        name=s.cloud_task(s.leased), schedule_time=_lease_time(s.leased)), "pull"),
    _cloud_case(V2BETA2, tasks_v2beta2, "RenewLease", Role.WORKER, lambda s, m: m.RenewLeaseRequest.pb()(
        name=s.cloud_task(s.leased), schedule_time=_lease_time(s.leased), lease_duration=_duration(60)), "pull"),
    _cloud_case(V2BETA2, tasks_v2beta2, "CancelLease", Role.WORKER, lambda s, m: m.CancelLeaseRequest.pb()(
        name=s.cloud_task(s.leased), schedule_time=_lease_time(s.leased)), "pull"),
    # App Engine's taskqueue service, on the HTTP port (named by its queue id)
    Case(APPENGINE + "BulkAdd", Role.ENQUEUER, lambda s: appengine_pb.TaskQueueBulkAddRequest(add_request=[
        appengine_pb.TaskQueueAddRequest(queue_name=s.queue.encode(), task_name=b"", eta_usec=0, body=b"x",
                                         mode=appengine_pb.TaskQueueMode.PULL)]), named=lambda s: s.queue),
    Case(APPENGINE + "Add", Role.ENQUEUER, lambda s: appengine_pb.TaskQueueAddRequest(
        queue_name=s.queue.encode(), task_name=b"", eta_usec=0, body=b"x", mode=appengine_pb.TaskQueueMode.PULL),
        named=lambda s: s.queue),
    Case(APPENGINE + "QueryAndOwnTasks", Role.WORKER, lambda s: appengine_pb.TaskQueueQueryAndOwnTasksRequest(
        queue_name=s.queue.encode(), lease_seconds=60, max_tasks=5), named=lambda s: s.queue),
    Case(APPENGINE + "ModifyTaskLease", Role.WORKER, lambda s: appengine_pb.TaskQueueModifyTaskLeaseRequest(
        queue_name=s.queue.encode(), task_name=s.leased.name.rpartition("/")[2].encode(),
        eta_usec=s.leased.schedule_time.ToMicroseconds(), lease_seconds=0), named=lambda s: s.queue),
    Case(APPENGINE + "Delete", Role.WORKER, lambda s: appengine_pb.TaskQueueDeleteRequest(
        queue_name=s.queue.encode(), task_name=[s.ready.name.rpartition("/")[2].encode()]), named=lambda s: s.queue),
    Case(APPENGINE + "PurgeQueue", Role.ADMIN, lambda s: appengine_pb.TaskQueuePurgeQueueRequest(
        queue_name=s.queue.encode()), named=lambda s: s.queue),
    Case(APPENGINE + "FetchQueueStats", Role.VIEWER, lambda s: appengine_pb.TaskQueueFetchQueueStatsRequest(
        queue_name=[s.queue.encode()], max_num_tasks=0), named=lambda s: s.queue),
]


def _allowed(holder: str, role: Role | str) -> bool:
    if role == ANY:
        return True
    if role == EVERY:
        return holder == "root"
    if holder == "stranger":
        return False
    return role in INCLUDES[Role(holder if holder != "root" else "admin")]


def _case_id(case: Case) -> str:
    return f"{case.method.strip('/')}[{case.role if isinstance(case.role, str) else case.role.value}]"


class Catalogue:
    """One server for the whole catalogue (each case works on queues of its own)."""

    def __init__(self, directory, tokens: TokensFile) -> None:
        self.tokens = {holder: tokens.token(holder, *roles) for holder, roles in ROLES.items()}
        self.server = ServerHarness(str(directory / "data"), clock=FakeClock(), http_listen="127.0.0.1:0",
                                    auth_tokens_file=str(tokens.path))
        self.root = bearer(self.tokens["root"])
        self.backups = directory / "backups"
        self.backups.mkdir()

    def setup(self, queue_type: str) -> Setup:
        queue = f"cat-{next(_numbers)}"
        kind = queue_pb2.QUEUE_TYPE_PULL if queue_type == "pull" else queue_pb2.QUEUE_TYPE_PUSH
        queues, tasks = self.server.queues, self.server.tasks
        queues.CreateQueue(queue_service_pb2.CreateQueueRequest(queue=queue_pb2.Queue(name=f"queues/{queue}", type=kind)),
                           metadata=self.root)
        create = task_service_pb2.CreateTaskRequest(parent=f"queues/{queue}", task=task_pb2.Task(payload=b"p"))
        leased = None
        if queue_type == "pull":
            tasks.CreateTask(create, metadata=self.root)
            [leased] = tasks.LeaseTasks(task_service_pb2.LeaseTasksRequest(
                parent=f"queues/{queue}", lease_duration=_duration(300), max_tasks=1), metadata=self.root).tasks
        ready = tasks.CreateTask(create, metadata=self.root).task
        return Setup(queue, ready, leased, str(self.backups))

    def snapshot(self, setup: Setup) -> tuple:
        """What a refused call must leave as it was: which queues exist, and the case's queue:
        its settings, counts and tasks (leases included)."""
        queues, tasks = self.server.queues, self.server.tasks
        names = [q.name for q in queues.ListQueues(queue_service_pb2.ListQueuesRequest(page_size=1000),
                                                   metadata=self.root).queues]
        queue = queues.GetQueue(queue_service_pb2.GetQueueRequest(name=setup.v1), metadata=self.root).queue
        stats = queues.GetQueueStats(queue_service_pb2.GetQueueStatsRequest(name=setup.v1), metadata=self.root).stats
        listed = tasks.ListTasks(task_service_pb2.ListTasksRequest(parent=setup.v1, view=task_pb2.TASK_VIEW_FULL),
                                 metadata=self.root).tasks
        return names, queue.SerializeToString(), stats.SerializeToString(), [t.SerializeToString() for t in listed]

    def call(self, case: Case, request: Any, token: str | None) -> tuple[str, str, dict]:
        """(code name, reason, ErrorInfo metadata) of the call; ("OK", "", {}) when it worked."""
        if case.method.startswith(APPENGINE):
            return self._appengine(case.method.rpartition("/")[2], request, token)
        method = self.server.channel.unary_unary(case.method, request_serializer=type(request).SerializeToString,
                                                 response_deserializer=lambda data: data)
        try:
            method(request, metadata=bearer(token) if token else None, timeout=10)
        except grpc.RpcError as error:
            code = error.code().name
            if code in ("PERMISSION_DENIED", "UNAUTHENTICATED"):
                info = error_info(error)
                return code, info.reason, dict(info.metadata)
            return code, "", {}
        return "OK", "", {}

    def _appengine(self, method: str, request: Any, token: str | None) -> tuple[str, str, dict]:
        assert self.server.server is not None and self.server.server.http_port is not None
        body = remote_api.Request(service_name="taskqueue", method=method, request=request.SerializeToString(),
                                  request_id=token or "").SerializeToString()
        answer = urllib.request.urlopen(urllib.request.Request(
            f"http://127.0.0.1:{self.server.server.http_port.port}/rpc_http", data=body), timeout=10)
        response = remote_api.Response.FromString(answer.read())
        if response.HasField("rpc_error"):
            assert response.rpc_error.code == remote_api.RpcError.SECURITY_VIOLATION, response
            return "UNAUTHENTICATED", response.rpc_error.detail.partition(":")[0], {}
        if response.HasField("application_error"):
            if response.application_error.code == appengine_pb.TaskQueueServiceError.PERMISSION_DENIED:
                return "PERMISSION_DENIED", "PERMISSION_DENIED", {"detail": response.application_error.detail}
            return f"APPLICATION_ERROR_{response.application_error.code}", "", {}
        return "OK", "", {}


@pytest.fixture(scope="module")
def catalogue(tmp_path_factory):
    directory = tmp_path_factory.mktemp("catalogue")
    catalogue = Catalogue(directory, TokensFile(directory / "tokens.yaml"))
    yield catalogue
    catalogue.server.close()


def test_the_catalogue_covers_every_method_of_every_surface():
    served = {f"/{TASK_SERVICE}/{m.name}" for m in task_service_pb2.DESCRIPTOR.services_by_name["TaskService"].methods}
    served |= {f"/{QUEUE_SERVICE}/{m.name}" for m in queue_service_pb2.DESCRIPTOR.services_by_name["QueueService"].methods}
    served |= {f"/{ADMIN_SERVICE}/{m.name}" for m in admin_service_pb2.DESCRIPTOR.services_by_name["AdminService"].methods}
    served |= {V2 + name for name, _, _ in CloudTasksV2.methods}
    served |= {V2BETA2 + name for name, _, _ in CloudTasksV2Beta2.methods}
    served |= {APPENGINE + name for name in _appengine_methods()}
    served |= {"GET /metrics"}  # the HTTP port's (tests/auth/test_tokens.py)
    covered = {case.method for case in CASES} | {V1_TASKS + "StreamTasks", "GET /metrics"}
    assert served - covered == set()
    assert set(RULES) == served


def _appengine_methods() -> list[str]:
    service = TaskQueueService.__new__(TaskQueueService)
    TaskQueueService.__init__(service, None, {})  # type: ignore[arg-type]
    return list(service.methods)


@pytest.mark.parametrize("holder", list(ROLES))
@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_each_method_is_allowed_exactly_to_the_roles_that_include_the_one_it_needs(catalogue, case, holder):
    setup = catalogue.setup(case.queue_type)
    request = case.request(setup)
    before = catalogue.snapshot(setup)
    code, reason, metadata = catalogue.call(case, request, catalogue.tokens[holder])
    if _allowed(holder, case.role):
        assert code not in ("PERMISSION_DENIED", "UNAUTHENTICATED"), (code, reason, metadata)
        return
    assert (code, reason) == ("PERMISSION_DENIED", "PERMISSION_DENIED")
    named = case.named(setup) if case.named else setup.v1
    if case.role == EVERY:
        assert metadata["queue"] == "*"
    elif "detail" in metadata:  # App Engine's error says the same in words
        assert f"the {case.role.value} role on {named}" in metadata["detail"]
    else:
        assert metadata == {"identity": holder, "role": case.role.value, "queue": named}
    assert catalogue.snapshot(setup) == before, "a refused call changed something"


@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_each_method_refuses_a_call_without_credentials_as_unauthenticated(catalogue, case):
    setup = catalogue.setup(case.queue_type)
    request = case.request(setup)
    before = catalogue.snapshot(setup)
    code, reason, _ = catalogue.call(case, request, None)
    assert (code, reason) == ("UNAUTHENTICATED", "UNAUTHENTICATED")
    assert catalogue.snapshot(setup) == before


def _open_stream(catalogue: Catalogue, queue: str, token: str | None):
    done = threading.Event()

    def requests():
        yield task_service_pb2.StreamTasksRequest(subscription=task_service_pb2.StreamSubscription(
            queue=f"queues/{queue}", max_outstanding=5))
        done.wait(10)

    method = catalogue.server.channel.stream_stream(V1_TASKS + "StreamTasks",
                                                    request_serializer=task_service_pb2.StreamTasksRequest.SerializeToString,
                                                    response_deserializer=task_service_pb2.StreamTasksResponse.FromString)
    return method(requests(), metadata=bearer(token) if token else None, timeout=10), done


@pytest.mark.parametrize("holder", [*ROLES, None])
def test_stream_tasks_needs_the_worker_role_on_the_subscribed_queue(catalogue, holder):
    setup = catalogue.setup("push")
    before = catalogue.snapshot(setup)
    call, done = _open_stream(catalogue, setup.queue, catalogue.tokens[holder] if holder else None)
    try:
        if holder in ("worker", "admin", "root"):
            first = next(call)
            assert [task.name for task in first.tasks] == [setup.ready.name]
            return
        with pytest.raises(grpc.RpcError) as refused:
            next(call)
        expected = "UNAUTHENTICATED" if holder is None else "PERMISSION_DENIED"
        assert refused.value.code().name == expected
        assert error_info(refused.value).reason == expected
        if holder is not None:
            assert dict(error_info(refused.value).metadata) == {"identity": holder, "role": "worker", "queue": setup.v1}
        assert catalogue.snapshot(setup) == before
    finally:
        done.set()
        call.cancel()
