"""The one exception hierarchy of taskq.

Every refusal the server gives is one of these. Each carries a canonical code (named here
without importing gRPC), a stable UPPER_SNAKE `reason` for machines, a message for people,
and what a standard `google.rpc` detail needs. `taskq.api.status` maps them to
`google.rpc.Status` in one place.
"""

from __future__ import annotations

import dataclasses
import enum


class Code(enum.Enum):
    """The canonical codes (the names of google.rpc.Code): what taskq answers with, and what an
    attempt's error records (an HTTP worker's status is mapped to one)."""

    CANCELLED = 1
    UNKNOWN = 2
    INVALID_ARGUMENT = 3
    DEADLINE_EXCEEDED = 4
    NOT_FOUND = 5
    ALREADY_EXISTS = 6
    PERMISSION_DENIED = 7
    RESOURCE_EXHAUSTED = 8
    FAILED_PRECONDITION = 9
    ABORTED = 10
    OUT_OF_RANGE = 11
    UNIMPLEMENTED = 12
    INTERNAL = 13
    UNAVAILABLE = 14
    DATA_LOSS = 15
    UNAUTHENTICATED = 16


#: The ErrorInfo domain of every taskq error.
DOMAIN = "taskq.dev"


@dataclasses.dataclass(frozen=True, slots=True)
class FieldViolation:
    """One invalid field of a request: `field` is a dotted path such as `task.schedule_time`."""

    field: str
    description: str
    reason: str = ""


@dataclasses.dataclass(frozen=True, slots=True)
class PreconditionViolation:
    """One failed precondition, as in google.rpc.PreconditionFailure.Violation."""

    type: str
    subject: str
    description: str


class TaskqError(Exception):
    """Base of every error taskq reports to callers."""

    code: Code = Code.INTERNAL
    reason: str = "INTERNAL"

    def __init__(
        self,
        message: str,
        *,
        reason: str | None = None,
        metadata: dict[str, str] | None = None,
        violations: list[FieldViolation] | None = None,
        preconditions: list[PreconditionViolation] | None = None,
        resource: tuple[str, str] | None = None,
        retry_delay_seconds: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if reason is not None:
            self.reason = reason
        self.metadata = metadata or {}
        self.violations = violations or []
        self.preconditions = preconditions or []
        #: (resource type, resource name) for google.rpc.ResourceInfo.
        self.resource = resource
        #: For google.rpc.RetryInfo on UNAVAILABLE and RESOURCE_EXHAUSTED.
        self.retry_delay_seconds = retry_delay_seconds


class InvalidArgument(TaskqError):
    """The request is malformed: a field is missing, out of range or of the wrong form."""

    code = Code.INVALID_ARGUMENT
    reason = "INVALID_ARGUMENT"

    @classmethod
    def field(cls, field: str, description: str, reason: str = "INVALID_ARGUMENT") -> InvalidArgument:
        return cls(
            f"{field}: {description}",
            reason=reason,
            violations=[FieldViolation(field, description, reason)],
        )


class NotFound(TaskqError):
    code = Code.NOT_FOUND
    reason = "NOT_FOUND"


class QueueNotFound(NotFound):
    reason = "QUEUE_NOT_FOUND"

    def __init__(self, queue_name: str) -> None:
        super().__init__(
            f"queue {queue_name} does not exist",
            metadata={"queue": queue_name},
            resource=("taskq.dev/Queue", queue_name),
        )


class TaskNotFound(NotFound):
    reason = "TASK_NOT_FOUND"

    def __init__(self, task_name: str) -> None:
        super().__init__(
            f"task {task_name} does not exist",
            metadata={"task": task_name},
            resource=("taskq.dev/Task", task_name),
        )


class AlreadyExists(TaskqError):
    code = Code.ALREADY_EXISTS
    reason = "ALREADY_EXISTS"


class QueueAlreadyExists(AlreadyExists):
    reason = "QUEUE_ALREADY_EXISTS"

    def __init__(self, queue_name: str) -> None:
        super().__init__(
            f"queue {queue_name} already exists",
            metadata={"queue": queue_name},
            resource=("taskq.dev/Queue", queue_name),
        )


class TaskAlreadyExists(AlreadyExists):
    reason = "TASK_ALREADY_EXISTS"

    def __init__(self, task_name: str) -> None:
        super().__init__(
            f"task {task_name} already exists",
            metadata={"task": task_name},
            resource=("taskq.dev/Task", task_name),
        )


class TaskTombstoned(AlreadyExists):
    reason = "TASK_TOMBSTONED"

    def __init__(self, task_name: str, until: str) -> None:
        super().__init__(
            f"task {task_name} finished recently; its name is reserved until {until}",
            metadata={"task": task_name, "reserved_until": until},
            resource=("taskq.dev/Task", task_name),
        )


class FailedPrecondition(TaskqError):
    code = Code.FAILED_PRECONDITION
    reason = "FAILED_PRECONDITION"


class LeaseLost(FailedPrecondition):
    """The caller's lease token no longer names the task's current lease."""

    reason = "LEASE_LOST"

    def __init__(self, task_name: str, why: str) -> None:
        super().__init__(
            f"the lease on {task_name} is no longer held: {why}",
            metadata={"task": task_name},
            preconditions=[PreconditionViolation("LEASE", task_name, why)],
        )


class QueuePaused(FailedPrecondition):
    reason = "QUEUE_PAUSED"

    def __init__(self, queue_name: str) -> None:
        super().__init__(
            f"queue {queue_name} is paused; resume it to hand out tasks",
            metadata={"queue": queue_name},
            preconditions=[PreconditionViolation("QUEUE_STATE", queue_name, "the queue is paused")],
        )


class WrongQueueType(FailedPrecondition):
    reason = "WRONG_QUEUE_TYPE"

    def __init__(self, queue_name: str, actual: str, call: str) -> None:
        super().__init__(
            f"queue {queue_name} is a {actual} queue; {call} is not available on it",
            metadata={"queue": queue_name, "queue_type": actual},
            preconditions=[
                PreconditionViolation("QUEUE_TYPE", queue_name, f"{call} needs the other queue type")
            ],
        )


class HttpQueue(FailedPrecondition):
    """StreamTasks on a queue that the server delivers over HTTP itself."""

    reason = "HTTP_QUEUE"

    def __init__(self, queue_name: str) -> None:
        super().__init__(
            f"queue {queue_name} delivers its tasks as HTTP requests (it has an http_target); streams cannot "
            "subscribe to it",
            metadata={"queue": queue_name},
            preconditions=[PreconditionViolation("QUEUE_TYPE", queue_name, "the queue has an http_target")],
        )


class TaskLeased(FailedPrecondition):
    reason = "TASK_LEASED"

    def __init__(self, task_name: str) -> None:
        super().__init__(
            f"task {task_name} is leased to a worker",
            metadata={"task": task_name},
            preconditions=[PreconditionViolation("TASK_STATE", task_name, "the task is leased")],
        )


class BackupNotSupported(FailedPrecondition):
    """The storage engine has no online copy of its own (PostgreSQL: pg_dump, PITR)."""

    reason = "BACKUP_NOT_SUPPORTED"


class BackupDestinationExists(AlreadyExists):
    reason = "BACKUP_DESTINATION_EXISTS"


class BackupFailed(FailedPrecondition):
    """The copy could not be written (the destination's filesystem refused it); nothing of
    the database changed."""

    reason = "BACKUP_FAILED"


class Unavailable(TaskqError):
    code = Code.UNAVAILABLE
    reason = "UNAVAILABLE"


class Unimplemented(TaskqError):
    """A method or field taskq does not serve; the message says why and what to do instead."""

    code = Code.UNIMPLEMENTED
    reason = "UNIMPLEMENTED"


class StorageUnavailable(Unavailable):
    reason = "STORAGE_UNAVAILABLE"


class ShuttingDown(Unavailable):
    reason = "SHUTTING_DOWN"

    def __init__(self) -> None:
        super().__init__("the server is shutting down; retry on another connection", retry_delay_seconds=1.0)


class ResourceExhausted(TaskqError):
    code = Code.RESOURCE_EXHAUSTED
    reason = "RESOURCE_EXHAUSTED"


class QueueInUse(FailedPrecondition):
    """A queue others name as their dead-letter queue cannot be deleted."""

    reason = "QUEUE_IN_USE"

    def __init__(self, queue_name: str, referrers: list[str]) -> None:
        shown = ", ".join(referrers[:10]) + (f" and {len(referrers) - 10} more" if len(referrers) > 10 else "")
        super().__init__(
            f"queue {queue_name} is the dead-letter queue of {shown}; change their dead_letter_queue first",
            metadata={"queue": queue_name, "referrers": ",".join(referrers[:10])},
            preconditions=[
                PreconditionViolation("DEAD_LETTER_QUEUE", referrer, f"names {queue_name} as its dead-letter queue")
                for referrer in referrers[:10]
            ],
        )


class DiskFull(ResourceExhausted):
    """The data directory's disk is below its reserve: taskq takes no more tasks until there
    is room again (store/disk.py)."""

    reason = "DISK_FULL"

    def __init__(self, free_bytes: int, reserve_bytes: int) -> None:
        super().__init__(
            f"the server's disk is almost full ({free_bytes // 2**20} MiB free, {reserve_bytes // 2**20} MiB "
            "kept in reserve): new tasks are refused until space is freed (acknowledging and deleting "
            "tasks frees space)",
            metadata={"free_bytes": str(free_bytes), "reserve_bytes": str(reserve_bytes)},
            retry_delay_seconds=5.0,
        )


class Unauthenticated(TaskqError):
    """The call carries no credentials, or credentials taskq does not accept (an unknown or
    malformed token, a JWT with a bad signature, issuer or audience)."""

    code = Code.UNAUTHENTICATED
    reason = "UNAUTHENTICATED"


class TokenExpired(Unauthenticated):
    """The caller's token was good once: its expiry time has passed (get a new one)."""

    reason = "TOKEN_EXPIRED"


class PermissionDenied(TaskqError):
    """The caller is known but its roles do not allow the call on this queue."""

    code = Code.PERMISSION_DENIED
    reason = "PERMISSION_DENIED"

    def __init__(self, identity: str, role: str, queue_name: str, what: str) -> None:
        where = "every queue (a grant on *)" if queue_name == "*" else queue_name
        super().__init__(
            f"{identity} may not {what}: that needs the {role} role on {where}",
            metadata={"identity": identity, "role": role, "queue": queue_name},
        )
