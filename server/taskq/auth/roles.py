"""The roles, the one table of what each includes, grants of a role on queue id patterns, and
the principal a call runs as.

| role       | may                                                                  | includes           |
|------------|----------------------------------------------------------------------|--------------------|
| `viewer`   | read: get and list queues and tasks, queue stats                     | -                  |
| `enqueuer` | create tasks                                                         | -                  |
| `worker`   | lease, stream, acknowledge (delete with the lease token), nack,      | viewer             |
|            | extend or release leases                                             |                    |
| `admin`    | everything: queue life cycle, purge, delete any task, run, backups   | worker, enqueuer,  |
|            |                                                                      | viewer             |

A worker reads the queues it works on (App Engine's `user_email` could list and get tasks as
well as lease them). An enqueuer sees only what its creates return: producers that cannot read
other producers' payloads. A grant names a glob pattern on queue ids (`*`, `emails-*`,
`team-[ab]-*`); what needs a role on every queue at once (AdminService.Backup) needs a grant
whose pattern is exactly `*`.
"""

from __future__ import annotations

import dataclasses
import enum
import fnmatch
import re


class Role(enum.Enum):
    VIEWER = "viewer"
    ENQUEUER = "enqueuer"
    WORKER = "worker"
    ADMIN = "admin"


#: The hierarchy: each role and the roles it includes (itself among them).
INCLUDES: dict[Role, frozenset[Role]] = {
    Role.VIEWER: frozenset({Role.VIEWER}),
    Role.ENQUEUER: frozenset({Role.ENQUEUER}),
    Role.WORKER: frozenset({Role.WORKER, Role.VIEWER}),
    Role.ADMIN: frozenset({Role.ADMIN, Role.WORKER, Role.ENQUEUER, Role.VIEWER}),
}

#: The pattern of a grant on every queue.
EVERY_QUEUE = "*"

#: Queue ids are A-Z a-z 0-9 and -; a pattern adds glob's * ? [ ] and ! (negation in a set).
_PATTERN = re.compile(r"[A-Za-z0-9*?\[\]!-]{1,200}")


class InvalidGrant(ValueError):
    """A grant that is not `role` or `role=pattern`; the message says why."""


@dataclasses.dataclass(frozen=True, slots=True)
class Grant:
    """A role on the queues whose ids match `pattern`."""

    role: Role
    pattern: str = EVERY_QUEUE

    def allows(self, role: Role, queue_id: str | None) -> bool:
        """Whether this grant gives `role` on `queue_id` (None: on every queue at once)."""
        if role not in INCLUDES[self.role]:
            return False
        if queue_id is None:
            return self.pattern == EVERY_QUEUE
        return fnmatch.fnmatchcase(queue_id, self.pattern)

    def __str__(self) -> str:
        return f"{self.role.value}={self.pattern}"


def parse_grant(text: str) -> Grant:
    """`admin` (on every queue) or `worker=emails-*`."""
    name, separator, pattern = text.strip().partition("=")
    try:
        role = Role(name.strip())
    except ValueError:
        raise InvalidGrant(f"{text!r}: the role must be one of {', '.join(r.value for r in Role)}") from None
    pattern = pattern.strip() if separator else EVERY_QUEUE
    if not _PATTERN.fullmatch(pattern):
        raise InvalidGrant(f"{text!r}: the queue pattern must be 1 to 200 of A-Z a-z 0-9 - and the glob characters "
                           "* ? [ ] !")
    return Grant(role, pattern)


@dataclasses.dataclass(frozen=True)
class Principal:
    """Who a call runs as: an identity (a token's name, a JWT's subject, a client
    certificate's identity), how it proved it, and its grants."""

    name: str
    #: "token", "jwt" or "certificate".
    method: str
    grants: tuple[Grant, ...]

    def allows(self, role: Role, queue_id: str | None) -> bool:
        return any(grant.allows(role, queue_id) for grant in self.grants)


__all__ = ["Role", "INCLUDES", "EVERY_QUEUE", "Grant", "InvalidGrant", "parse_grant", "Principal"]
