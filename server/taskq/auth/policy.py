"""Who may call what: for every method of every service taskq serves, the role it needs on
which queue, read from the decoded request (docs/security.md has the table for people).

Queue names are read with the functions the servicers use (api/validate.py, cloudtasks/
names.py), so a name the servicer would refuse as INVALID_ARGUMENT is refused the same way
here, before anything runs. A method missing from RULES cannot be registered while
authentication is on (auth/gate.py): nothing is served unchecked.

`answers` filter what a caller may see of a response: the queue lists (only queues the caller
may view) and TestIamPermissions (only permissions the caller's roles give on the queue).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from taskq.api import validate
from taskq.auth.roles import EVERY_QUEUE, Principal, Role
from taskq.cloudtasks import names
from taskq.core import limits
from taskq.core.errors import InvalidArgument, PermissionDenied

VIEWER, ENQUEUER, WORKER, ADMIN = Role.VIEWER, Role.ENQUEUER, Role.WORKER, Role.ADMIN


@dataclasses.dataclass(frozen=True)
class Need:
    """A role on a queue (queue_id None: on every queue, a grant on `*`)."""

    role: Role
    queue_id: str | None
    #: The queue as the caller named it, for the error.
    named: str


Needs = Callable[[Any], list[Need]]


@dataclasses.dataclass(frozen=True)
class Rule:
    needs: Needs
    #: Removes from a response what the caller may not see: (principal, request, response).
    answer: Callable[[Principal, Any, Any], None] | None = None


def check(principal: Principal, method: str, rule: Rule, request: Any) -> None:
    """Raises PermissionDenied unless the principal holds every role the request needs."""
    for need in rule.needs(request):
        if not principal.allows(need.role, need.queue_id):
            raise PermissionDenied(principal.name, need.role.value, need.named, f"call {method.rpartition('/')[2]}")


# Reading queues from requests -----------------------------------------------------------------


def _v1_queue(role: Role, field: str) -> Needs:
    """The queue of a `queues/Q` field (a dotted path: subscription.queue)."""

    def needs(request: Any) -> list[Need]:
        name = _field(request, field)
        return [Need(role, validate.queue_id(name, field), name)]

    return needs


def _v1_task(role: Role, field: str = "name") -> Needs:
    def needs(request: Any) -> list[Need]:
        queue_id, _ = validate.task_ids(_field(request, field), field)
        return [Need(role, queue_id, f"queues/{queue_id}")]

    return needs


def _v1_queue_settings(request: Any) -> list[Need]:
    """CreateQueue, UpdateQueue: admin on the queue, and enqueuer on its dead-letter queue, where
    its failed tasks will be added."""
    needs = _v1_queue(ADMIN, "queue.name")(request)
    if request.queue.dead_letter_queue:
        needs += _v1_queue(ENQUEUER, "queue.dead_letter_queue")(request)
    return needs


def _v1_delete(request: Any) -> list[Need]:
    """Deleting with the lease token acknowledges a leased task (worker); without, it removes a
    task in any state (admin)."""
    return _v1_task(WORKER if request.lease_token else ADMIN)(request)


def _v1_batch_delete(request: Any) -> list[Need]:
    role = WORKER if request.requests and all(item.lease_token for item in request.requests) else ADMIN
    return _v1_queue(role, "parent")(request)


def _v1_stream(request: Any) -> list[Need]:
    """The first message of a stream subscribes to the queue; answers that follow name tasks of
    that queue only (the stream refuses others), so only the subscription is checked. A first
    message without one is refused by the stream itself."""
    if not request.HasField("subscription"):
        return []
    return _v1_queue(WORKER, "subscription.queue")(request)


def _cloud_queue(role: Role, field: str = "name") -> Needs:
    def needs(request: Any) -> list[Need]:
        name = _field(request, field)
        _, queue_id = names.queue(name, field)
        return [Need(role, queue_id, name)]

    return needs


def _cloud_task(role: Role, field: str = "name") -> Needs:
    def needs(request: Any) -> list[Need]:
        parent, queue_id, _ = names.task(_field(request, field), field)
        return [Need(role, queue_id, f"{parent}/queues/{queue_id}")]

    return needs


def _every_queue(role: Role) -> Needs:
    return lambda request: [Need(role, None, EVERY_QUEUE)]


def _any_caller(request: Any) -> list[Need]:
    """Any authenticated caller; the answer shows only what its roles let it see."""
    return []


def _field(message: Any, path: str) -> str:
    for part in path.split("."):
        message = getattr(message, part)
    return message


# Filtering answers ----------------------------------------------------------------------------


def _queue_id_of(name: str) -> str:
    """The queue id at the end of queues/Q or projects/P/locations/L/queues/Q."""
    return name.rpartition("/")[2]


def _visible_queues(principal: Principal, request: Any, response: Any) -> None:
    """ListQueues answers only the queues the caller may view. A page may so hold fewer queues
    than asked, even none, with a next_page_token: the pages are cut before filtering, so that
    page tokens stay what they are without authentication."""
    shown = [queue for queue in response.queues if principal.allows(VIEWER, _queue_id_of(queue.name))]
    del response.queues[:]
    response.queues.extend(shown)


#: Cloud Tasks permissions -> the taskq role that gives them. Other cloudtasks.* permissions
#: come with admin only.
CLOUD_TASKS_PERMISSIONS: dict[str, Role] = {
    "cloudtasks.queues.get": VIEWER,
    "cloudtasks.queues.list": VIEWER,
    "cloudtasks.queues.getIamPolicy": VIEWER,
    "cloudtasks.tasks.get": VIEWER,
    "cloudtasks.tasks.list": VIEWER,
    "cloudtasks.tasks.fullView": VIEWER,
    "cloudtasks.tasks.create": ENQUEUER,
    "cloudtasks.tasks.lease": WORKER,
}


def _held_permissions(principal: Principal, request: Any, response: Any) -> None:
    """TestIamPermissions: of the permissions the servicer found on the queue, those the
    caller's roles give there."""
    try:
        _, queue_id = names.queue(request.resource, "resource")
    except InvalidArgument:
        queue_id = None
    held = [
        permission for permission in response.permissions
        if queue_id is not None and principal.allows(CLOUD_TASKS_PERMISSIONS.get(permission, ADMIN), queue_id)
    ]
    del response.permissions[:]
    response.permissions.extend(held)


# App Engine's taskqueue service (the bridge on the HTTP port) ---------------------------------


def _appengine_queues(role: Role, *, repeated: str | None = None) -> Needs:
    """The queue_name of the request, or of each of its `repeated` items (BulkAdd's add_request);
    FetchQueueStats names several in queue_name itself."""

    def needs(request: Any) -> list[Need]:
        values = [item.queue_name for item in getattr(request, repeated)] if repeated else request.queue_name
        if isinstance(values, bytes):
            values = [values]
        result = []
        for value in values:
            queue_id = value.decode(errors="replace")
            if not limits.QUEUE_ID_RE.fullmatch(queue_id):
                raise InvalidArgument.field("queue_name", f"{queue_id[:120]!r} is not a queue name",
                                            "INVALID_QUEUE_NAME")
            result.append(Need(role, queue_id, queue_id))
        return result

    return needs


TASKS = "/taskq.v1.TaskService/"
QUEUES = "/taskq.v1.QueueService/"
ADMIN_SERVICE = "/taskq.v1.AdminService/"
V2 = "/google.cloud.tasks.v2.CloudTasks/"
V2BETA2 = "/google.cloud.tasks.v2beta2.CloudTasks/"
#: The App Engine bridge's methods are named like gRPC's: /taskqueue/BulkAdd.
APPENGINE = "/taskqueue/"

_CLOUD_TASKS_COMMON: dict[str, Rule] = {
    "ListQueues": Rule(_any_caller, _visible_queues),
    "GetQueue": Rule(_cloud_queue(VIEWER)),
    "CreateQueue": Rule(_cloud_queue(ADMIN, "queue.name")),
    "UpdateQueue": Rule(_cloud_queue(ADMIN, "queue.name")),
    "DeleteQueue": Rule(_cloud_queue(ADMIN)),
    "PurgeQueue": Rule(_cloud_queue(ADMIN)),
    "PauseQueue": Rule(_cloud_queue(ADMIN)),
    "ResumeQueue": Rule(_cloud_queue(ADMIN)),
    "GetIamPolicy": Rule(_cloud_queue(VIEWER, "resource")),
    "SetIamPolicy": Rule(_cloud_queue(ADMIN, "resource")),
    "TestIamPermissions": Rule(_any_caller, _held_permissions),
    "ListTasks": Rule(_cloud_queue(VIEWER, "parent")),
    "GetTask": Rule(_cloud_task(VIEWER)),
    "CreateTask": Rule(_cloud_queue(ENQUEUER, "parent")),
    "DeleteTask": Rule(_cloud_task(ADMIN)),
    "RunTask": Rule(_cloud_task(ADMIN)),
}

#: Method path -> its rule.
RULES: dict[str, Rule] = {
    TASKS + "CreateTask": Rule(_v1_queue(ENQUEUER, "parent")),
    TASKS + "BatchCreateTasks": Rule(_v1_queue(ENQUEUER, "parent")),
    TASKS + "GetTask": Rule(_v1_task(VIEWER)),
    TASKS + "ListTasks": Rule(_v1_queue(VIEWER, "parent")),
    TASKS + "DeleteTask": Rule(_v1_delete),
    TASKS + "BatchDeleteTasks": Rule(_v1_batch_delete),
    TASKS + "LeaseTasks": Rule(_v1_queue(WORKER, "parent")),
    TASKS + "ModifyLease": Rule(_v1_task(WORKER)),
    TASKS + "RunTask": Rule(_v1_task(ADMIN)),
    TASKS + "StreamTasks": Rule(_v1_stream),
    QUEUES + "CreateQueue": Rule(_v1_queue_settings),
    QUEUES + "GetQueue": Rule(_v1_queue(VIEWER, "name")),
    QUEUES + "ListQueues": Rule(_any_caller, _visible_queues),
    QUEUES + "UpdateQueue": Rule(_v1_queue_settings),
    QUEUES + "DeleteQueue": Rule(_v1_queue(ADMIN, "name")),
    QUEUES + "PauseQueue": Rule(_v1_queue(ADMIN, "name")),
    QUEUES + "ResumeQueue": Rule(_v1_queue(ADMIN, "name")),
    QUEUES + "PurgeQueue": Rule(_v1_queue(ADMIN, "name")),
    QUEUES + "GetQueueStats": Rule(_v1_queue(VIEWER, "name")),
    ADMIN_SERVICE + "Backup": Rule(_every_queue(ADMIN)),
    **{V2 + name: rule for name, rule in _CLOUD_TASKS_COMMON.items()},
    V2 + "BatchCreateTasks": Rule(_cloud_queue(ENQUEUER, "parent")),
    V2 + "BatchDeleteTasks": Rule(_cloud_queue(ADMIN, "parent")),
    V2 + "GetCmekConfig": Rule(_every_queue(VIEWER)),
    V2 + "UpdateCmekConfig": Rule(_every_queue(ADMIN)),
    **{V2BETA2 + name: rule for name, rule in _CLOUD_TASKS_COMMON.items()},
    V2BETA2 + "UploadQueueYaml": Rule(_every_queue(ADMIN)),
    V2BETA2 + "LeaseTasks": Rule(_cloud_queue(WORKER, "parent")),
    V2BETA2 + "AcknowledgeTask": Rule(_cloud_task(WORKER)),
    V2BETA2 + "RenewLease": Rule(_cloud_task(WORKER)),
    V2BETA2 + "CancelLease": Rule(_cloud_task(WORKER)),
    APPENGINE + "BulkAdd": Rule(_appengine_queues(ENQUEUER, repeated="add_request")),
    APPENGINE + "Add": Rule(_appengine_queues(ENQUEUER)),
    APPENGINE + "QueryAndOwnTasks": Rule(_appengine_queues(WORKER)),
    APPENGINE + "ModifyTaskLease": Rule(_appengine_queues(WORKER)),
    # App Engine's pull workers delete the tasks they leased by name (the SDK sends no lease),
    # so the bridge cannot tell an acknowledgement from a removal: worker, as App Engine's
    # user_email could delete.
    APPENGINE + "Delete": Rule(_appengine_queues(WORKER)),
    APPENGINE + "PurgeQueue": Rule(_appengine_queues(ADMIN)),
    APPENGINE + "FetchQueueStats": Rule(_appengine_queues(VIEWER)),
    # The HTTP port's GET paths: the metrics show every queue's depth and rates.
    "GET /metrics": Rule(_every_queue(VIEWER)),
}


__all__ = ["Need", "Rule", "RULES", "CLOUD_TASKS_PERMISSIONS", "check"]
