"""The taskq Python client: a thin layer over the generated stubs in `taskq.v1`.

    from taskq.client import Client, QueueNotFound

`Client` has one method per unary RPC; errors are `TaskqError` subclasses, one per gRPC code
and per common reason. `taskq.client.requests` builds request messages and
`taskq.client.channel` configures channels, for other transports to reuse.
"""

from taskq.client.client import DEFAULT_ADDRESS, Client
from taskq.client.errors import (
    Aborted,
    AlreadyExists,
    Cancelled,
    DeadlineExceeded,
    FailedPrecondition,
    FieldViolation,
    Internal,
    InvalidArgument,
    LeaseLost,
    NotFound,
    PermissionDenied,
    QueueAlreadyExists,
    QueueNotFound,
    QueuePaused,
    ResourceExhausted,
    TaskAlreadyExists,
    TaskLeased,
    TaskNotFound,
    TaskqError,
    TaskTombstoned,
    Unauthenticated,
    Unavailable,
    Unimplemented,
    UnknownError,
    WrongQueueType,
    from_rpc_error,
    from_status,
)

__all__ = [
    "Client", "DEFAULT_ADDRESS",
    "TaskqError", "FieldViolation", "from_rpc_error", "from_status",
    "InvalidArgument", "NotFound", "AlreadyExists", "FailedPrecondition", "ResourceExhausted", "Unavailable",
    "DeadlineExceeded", "Cancelled", "Aborted", "Internal", "Unimplemented", "PermissionDenied",
    "Unauthenticated", "UnknownError",
    "QueueNotFound", "TaskNotFound", "QueueAlreadyExists", "TaskAlreadyExists", "TaskTombstoned", "LeaseLost",
    "QueuePaused", "WrongQueueType", "TaskLeased",
]
