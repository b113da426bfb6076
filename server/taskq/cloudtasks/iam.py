"""The IAM methods of both Cloud Tasks versions (v2 and v2beta2 declare the same three).

taskq's access control is its own (taskq/auth: identities with roles on queue patterns, from
a tokens file, JWTs or client certificates), not IAM policies: there are none to get or set
(UNIMPLEMENTED, after NOT_FOUND for a missing queue). TestIamPermissions answers here with every
Cloud Tasks permission asked about on a queue that exists, and none on one that does not ("an
empty set of permissions, not a NOT_FOUND error", as Google documents); with authentication on,
the gate then keeps only those the caller's roles give on the queue (auth/policy.py)."""

from __future__ import annotations

from google.iam.v1 import iam_policy_pb2

from taskq.api.status import guarded
from taskq.cloudtasks import names
from taskq.core.errors import QueueNotFound, Unimplemented
from taskq.core.model import Queue

#: Cloud Tasks' permissions (TestIamPermissions answers which a caller has).
PERMISSIONS_PREFIX = "cloudtasks."


class IamMethods:
    """Mixed into a version's servicer, which finds queues by name with `_queue`."""

    async def _queue(self, name: str, field: str = "name") -> tuple[Queue, str]:
        raise NotImplementedError

    @guarded
    @names.cloud_names
    async def GetIamPolicy(self, request, context):
        await self._queue(request.resource, "resource")
        raise Unimplemented("taskq has no IAM policies: without authentication every caller may call every "
                            "method (TestIamPermissions says so); roles per queue come with taskq's auth settings")

    @guarded
    @names.cloud_names
    async def SetIamPolicy(self, request, context):
        await self._queue(request.resource, "resource")
        raise Unimplemented("taskq has no IAM policies to set; roles per queue come with taskq's auth settings")

    @guarded
    @names.cloud_names
    async def TestIamPermissions(self, request, context):
        try:
            await self._queue(request.resource, "resource")
        except QueueNotFound:
            return iam_policy_pb2.TestIamPermissionsResponse()
        held = [p for p in request.permissions if p.startswith(PERMISSIONS_PREFIX)]
        return iam_policy_pb2.TestIamPermissionsResponse(permissions=held)
