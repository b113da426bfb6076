"""When a worker extends the leases it holds.

A task reaches a worker leased for some time (a push queue's dispatch deadline, a pull
worker's `lease_duration`). While the worker still holds it, the worker extends the lease
before it runs out: by default when half of it is left, asking for the same length again, so
a late extension still leaves half a lease of margin for a slow network or a busy loop.

Times here are this machine's monotonic clock; the lease length comes from the server's own
timestamps (expiry minus dispatch time), so clock skew between the machines does not matter.
"""

from __future__ import annotations

import dataclasses
import time

from taskq.v1 import task_pb2

#: A push lease when the task says nothing of its length: the shortest dispatch deadline.
FALLBACK_LEASE_SECONDS = 15.0


def lease_seconds(task: task_pb2.Task) -> float:
    """The length of the lease the task was delivered with, by the server's clock."""
    if task.HasField("lease_expire_time") and task.last_attempt.HasField("dispatch_time"):
        length = (task.lease_expire_time.ToNanoseconds() - task.last_attempt.dispatch_time.ToNanoseconds()) / 1e9
        if length > 0:
            return length
    if task.HasField("dispatch_deadline"):
        return task.dispatch_deadline.ToNanoseconds() / 1e9
    return FALLBACK_LEASE_SECONDS


@dataclasses.dataclass(eq=False)
class HeldLease:
    """A task this worker holds, and when its lease is next due for an extension."""

    task: task_pb2.Task
    #: Seconds each extension asks for (the lease's original length).
    length: float
    #: Seconds between extensions.
    interval: float
    #: time.monotonic() of the next extension.
    due: float
    #: Set once the server refused the lease (LEASE_LOST): no more extensions.
    lost: bool = False

    @classmethod
    def start(cls, task: task_pb2.Task, length: float, interval: float | None = None) -> HeldLease:
        """A lease just received; `interval` None means half the lease."""
        every = interval if interval is not None else length / 2
        return cls(task, length, every, time.monotonic() + every)

    def extended(self, now: float) -> None:
        self.due = now + self.interval


__all__ = ["HeldLease", "lease_seconds", "FALLBACK_LEASE_SECONDS"]
