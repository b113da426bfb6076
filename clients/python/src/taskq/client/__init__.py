"""The taskq Python client: a thin layer over the generated stubs in `taskq.v1`.

    from taskq.client import Client, QueueNotFound

`Client` has one method per unary RPC, `AsyncClient` the same for asyncio; both coalesce
`create_task` calls made close together into batches (`BatchSettings`) and retry calls that
fail with UNAVAILABLE, across a restart of the server (`CallRetry`). Errors are
`TaskqError` subclasses, one per gRPC code and per common reason. `Worker` runs a handler for
each task of a push queue, `PullWorker` for each task of a pull queue; a handler raises
`Retry` or `PermanentError` to say how its task failed. `verify_signature` (and
`verify_wsgi_request`) check the `X-Taskq-Signature` of HTTP push requests a worker service
receives (see `taskq.client.signature`). Addresses follow the rules of
`taskq.client.address` (InvalidAddress for a malformed one); `TlsSettings` connect over TLS
or mTLS; a `token` (or TASKQ_TOKEN) is sent to servers that check callers
(`taskq.client.bearer`). `taskq.client.requests` builds request messages and `taskq.client.channel`
configures channels, for other transports to reuse.
"""

from taskq.client.address import DEFAULT_PORT, InvalidAddress
from taskq.client.async_client import AsyncClient
from taskq.client.batching import BatchSettings
from taskq.client.bearer import InvalidToken, PlaintextToken
from taskq.client.call_retry import CallRetry
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
from taskq.client.failures import PermanentError, Retry
from taskq.client.pull import PullWorker
from taskq.client.signature import verify_request, verify_signature, verify_wsgi_request
from taskq.client.tls import InvalidTlsSettings, TlsSettings
from taskq.client.worker import Worker

__all__ = [
    "Client", "AsyncClient", "BatchSettings", "CallRetry", "DEFAULT_ADDRESS", "DEFAULT_PORT",
    "TlsSettings", "InvalidAddress", "InvalidTlsSettings", "PlaintextToken", "InvalidToken",
    "Worker", "PullWorker", "PermanentError", "Retry",
    "TaskqError", "FieldViolation", "from_rpc_error", "from_status",
    "InvalidArgument", "NotFound", "AlreadyExists", "FailedPrecondition", "ResourceExhausted", "Unavailable",
    "DeadlineExceeded", "Cancelled", "Aborted", "Internal", "Unimplemented", "PermissionDenied",
    "Unauthenticated", "UnknownError",
    "QueueNotFound", "TaskNotFound", "QueueAlreadyExists", "TaskAlreadyExists", "TaskTombstoned", "LeaseLost",
    "QueuePaused", "WrongQueueType", "TaskLeased",
    "verify_signature", "verify_request", "verify_wsgi_request",
]
