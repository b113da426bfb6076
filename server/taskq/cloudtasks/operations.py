"""The google.longrunning.Operation v2's BatchCreateTasks and BatchDeleteTasks answer with, as
the API declares (google-cloud-tasks' transport reads nothing else).

taskq finishes a batch within the call (one durable commit), so the Operation is already done:
`done` true, `response` an Any of BatchCreateTasksResponse (the tasks created) or Empty, and
`metadata` an Any of the Batch*TasksMetadata Google documents: start and end time, state
SUCCEEDED or PARTIALLY_SUCCEEDED, and `failed_requests`, each failed item's google.rpc.Status
by its index. When every item failed, `error` is ABORTED ("None of the requests succeeded ...",
as Google documents for BatchDeleteTasks; BatchCreateTasks does the same) and there is no
response. The clients never poll a done Operation; google.longrunning.Operations is not served.

Names: `projects/P/locations/L/operations/<32 hex digits>`. `request_id` "identifies the long
running operation, avoiding duplication when user retries": the same request id (for the same
call and queue) names the same Operation, and each item of a BatchCreateTasks with one becomes a
taskq.v1 request id (task_request_id), so a retry within taskq's request-id window (an hour)
answers the tasks the first call created instead of creating them again.
"""

from __future__ import annotations

import hashlib
import uuid
from typing import Any

from google.cloud import tasks_v2
from google.longrunning import operations_pb2
from google.protobuf import any_pb2
from google.rpc import code_pb2, status_pb2

from taskq.api import convert
from taskq.api.status import to_status
from taskq.cloudtasks import names
from taskq.core.errors import TaskqError

CreateMetadataPb: Any = tasks_v2.BatchCreateTasksMetadata.pb()
DeleteMetadataPb: Any = tasks_v2.BatchDeleteTasksMetadata.pb()


def _digest(*parts: str) -> str:
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:32]


def operation_name(parent: str, method: str, queue_name: str, request_id: str) -> str:
    """The Operation's name: one per request id (of this call on this queue), else new."""
    operation_id = _digest(method, queue_name, request_id) if request_id else uuid.uuid4().hex
    return f"{parent}/operations/{operation_id}"


def task_request_id(request_id: str, index: int) -> str:
    """The taskq.v1 request id of a batch's `index`th task (request ids are per queue; the
    digest keeps any request id Cloud Tasks accepts within taskq's form)."""
    return f"cloudtasks-batch-{_digest(request_id)}-{index}"


def _packed(message: Any) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)
    return packed


def done(
    name: str, response: Any, metadata_class: Any, times_us: tuple[int, int], items: int,
    failed: dict[int, TaskqError], parent: str,
) -> operations_pb2.Operation:
    """A done Operation for a batch of `items` that ran from times_us[0] to times_us[1]:
    `response` unless every item failed, the metadata of `metadata_class` (CreateMetadataPb or
    DeleteMetadataPb) with the `failed` items by index, their errors naming queues and tasks
    under `parent`."""
    state = "PARTIALLY_SUCCEEDED" if failed else "SUCCEEDED"
    metadata = metadata_class(state=metadata_class.State.Value(state))
    metadata.start_time.CopyFrom(convert.timestamp(times_us[0]))
    metadata.end_time.CopyFrom(convert.timestamp(times_us[1]))
    for index, error in failed.items():
        metadata.failed_requests[index].CopyFrom(to_status(names.as_caller_named(error, parent)))
    operation = operations_pb2.Operation(name=name, done=True, metadata=_packed(metadata))
    if len(failed) < items:
        operation.response.CopyFrom(_packed(response))
    else:
        operation.error.CopyFrom(status_pb2.Status(
            code=code_pb2.ABORTED, message=f"None of the requests succeeded, refer to "
            f"{metadata_class.DESCRIPTOR.name}.failed_requests for individual error details",
        ))
    return operation
