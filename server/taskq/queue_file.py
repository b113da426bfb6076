"""Queues declared in a YAML file at start-up (`taskq serve --queues FILE`).

The file may be an App Engine application's `queue.yaml` exactly as it is: its fields are
translated as `gcloud app deploy` translates them for Cloud Tasks (`rate` to tasks per second,
`bucket_size` to the burst size, `task_retry_limit` retries to attempts, `rate: 0` to a
paused queue), and unset fields get App Engine's defaults (bucket 5, names reserved 9 days).
When the server knows the application's URL (`--appengine-url`, `--appengine-targets`), push
queues deliver their tasks to it over HTTP, to the URL of their `target:` if they name one.
`acl` entries give roles on their queue (`user_email`: worker, `writer_email`: enqueuer), as
App Engine's pull-queue acl did, to identities of that name; `total_storage_limit` is
refused (taskq does not count the bytes its queues store; the disk reserve bounds them). A few
taskq settings are accepted in the same style (`dead_letter_queue`, `dispatch_deadline`,
`task_ttl`, `tombstone_ttl`, `paused`).

Every queue is built as a `taskq.v1.Queue` message and checked by the same
`taskq.api.validate.queue` as CreateQueue, so a file gets the API's defaults and cannot
declare what the API would refuse. Whatever is wrong is reported as `{path}:{line}: {reason}`,
the line being the offending key or value, which is why the file is read with `yaml.compose`
(nodes keep their positions) rather than `yaml.safe_load`.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import re
from fractions import Fraction

import yaml

from taskq.api import convert, validate
from taskq.auth.roles import Grant, Role
from taskq.core import limits
from taskq.core.errors import InvalidArgument
from taskq.core.limits import DAY, HOUR, MINUTE, SECOND
from taskq.core.model import Queue
from taskq.v1 import queue_pb2

log = logging.getLogger(__name__)


class QueueFileError(Exception):
    """The queue file cannot be used; the message is `{path}:{line}: {reason}`."""


#: App Engine's bucket_size when a queue.yaml leaves it out.
APP_ENGINE_DEFAULT_BUCKET_SIZE = 5
#: How long App Engine reserved the name of a finished task.
APP_ENGINE_TOMBSTONE_TTL_US = 9 * DAY

#: App Engine top-level keys with no meaning here: a file's queues are declared whatever their
#: previous state, and there is one application.
_IGNORED_TOP_LEVEL = ("resume_paused_queues", "application")


@dataclasses.dataclass(frozen=True)
class AppEngineRouting:
    """Where an App Engine application's push tasks go: its base URL, and the URLs of the
    services (`target:`) its queues name."""

    url: str | None = None
    targets: dict[str, str] = dataclasses.field(default_factory=dict)

    @property
    def configured(self) -> bool:
        return bool(self.url or self.targets)

#: queue.yaml acl keys -> the role each gives on the queue.
_ACL_ROLES = {"user_email": Role.WORKER, "writer_email": Role.ENQUEUER}

#: Queue keys and the taskq.v1.Queue field each sets (None: none). validate.queue names
#: fields by these paths in its errors, which is how an error finds its line.
_QUEUE_KEYS: dict[str, str | None] = {
    "name": "name",
    "mode": "type",
    "rate": "rate_limits.max_dispatches_per_second",
    "bucket_size": "rate_limits.max_burst_size",
    "max_concurrent_requests": "rate_limits.max_concurrent_dispatches",
    "retry_parameters": "retry_config",
    "target": None,
    "acl": None,
    "dead_letter_queue": "dead_letter_queue",
    "dispatch_deadline": "dispatch_deadline",
    "task_ttl": "task_ttl",
    "tombstone_ttl": "tombstone_ttl",
    "paused": None,
}
_RETRY_KEYS: dict[str, str] = {
    "task_retry_limit": "retry_config.max_attempts",
    "task_age_limit": "retry_config.max_retry_duration",
    "min_backoff_seconds": "retry_config.min_backoff",
    "max_backoff_seconds": "retry_config.max_backoff",
    "max_doublings": "retry_config.max_doublings",
}
#: What App Engine refuses on a pull queue, refused here too so that a file valid for taskq
#: stays valid for App Engine and nobody believes a pull queue is rate-limited.
_PUSH_ONLY = frozenset(
    {"rate", "bucket_size", "max_concurrent_requests", "task_age_limit", "min_backoff_seconds",
     "max_backoff_seconds", "max_doublings"}
)

_NAME = re.compile(limits.QUEUE_ID_PATTERN)
#: App Engine's rate syntax: 0, or a number of tasks per second, minute, hour or day.
_RATE = re.compile(r"0|([0-9]+(?:\.[0-9]*)?)/([smhd])")
#: App Engine's task_age_limit syntax, used for every duration of the file.
_DURATION = re.compile(r"([0-9]+(?:\.[0-9]*)?|\.[0-9]+)([smhd])")
_UNIT_US = {"s": SECOND, "m": MINUTE, "h": HOUR, "d": DAY}
#: The longest google.protobuf.Duration; longer values could not even be put in a message.
_MAX_DURATION_US = 315_576_000_000 * SECOND


def load_queue_file(path: str, routing: AppEngineRouting | None = None) -> list[tuple[Queue, bool | None]]:
    """The queues a file declares, in file order, each with whether it is declared paused.
    With `routing`, push queues deliver over HTTP to the application. For files other than
    the server's own --queues (an upload): their acl entries give no roles (logged)."""
    declared, acl = load_queue_file_and_acl(path, routing)
    if acl:
        log.warning("%s: acl entries give roles only in the queue file the server reads at start-up (--queues); "
                    "these are not applied: %s", path, ", ".join(sorted(acl)))
    return declared


def load_queue_file_and_acl(
    path: str, routing: AppEngineRouting | None = None,
) -> tuple[list[tuple[Queue, bool | None]], dict[str, tuple[Grant, ...]]]:
    """The queues a file declares (as load_queue_file) and the roles its acl entries give:
    identity -> grants."""
    try:
        with open(path, "rb") as handle:
            document = yaml.compose(handle, Loader=yaml.SafeLoader)
    except OSError as error:
        raise QueueFileError(f"{path}: cannot read the queue file: {error.strerror}") from None
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        problem = error.problem or error.context
        where = f":{mark.line + 1}" if mark is not None else ""
        raise QueueFileError(f"{path}{where}: not valid YAML: {problem}") from None
    except yaml.YAMLError as error:  # undecodable bytes: the reader knows no line
        raise QueueFileError(f"{path}: not valid YAML: {' '.join(str(error).split())}") from None
    reader = _QueueFile(path, routing or AppEngineRouting())
    declared = reader.document(document)
    return declared, {identity: tuple(grants) for identity, grants in reader.acl.items()}


class _QueueFile:
    def __init__(self, path: str, routing: AppEngineRouting) -> None:
        self.path = path
        self.routing = routing
        self._constructor = yaml.constructor.SafeConstructor()
        #: For the queue being read: message field path -> (file key, value node), which puts
        #: validate.queue's errors on the right line.
        self.origins: dict[str, tuple[str, yaml.Node]] = {}
        #: identity -> the grants the acl entries give it.
        self.acl: dict[str, list[Grant]] = {}

    def error(self, node: yaml.Node, reason: str) -> QueueFileError:
        return QueueFileError(f"{self.path}:{node.start_mark.line + 1}: {reason}")

    # Structure -------------------------------------------------------------------------------

    def document(self, root: yaml.Node | None) -> list[tuple[Queue, bool | None]]:
        if root is None or _is_null(root):  # an empty file declares nothing
            return []
        entries = self.mapping(root, "the queue file")
        for key, (key_node, _) in entries.items():
            if key == "total_storage_limit":
                raise self.error(
                    key_node, "total_storage_limit is not enforced by taskq (it does not count the bytes its queues "
                    "store; --min-free-disk-mb keeps the disk from filling): remove it",
                )
            if key != "queue" and key not in _IGNORED_TOP_LEVEL:
                raise self.error(key_node, f"unknown top-level key {key!r}; expected queue")
        if "queue" not in entries or _is_null(entries["queue"][1]):
            return []
        queue_list = entries["queue"][1]
        if not isinstance(queue_list, yaml.SequenceNode):
            raise self.error(queue_list, "queue must be a list of queues (each item starting with '- name:')")
        declared = []
        first_line: dict[str, int] = {}
        for item in queue_list.value:
            queue, paused, name_node = self.queue(item)
            if queue.queue_id in first_line:
                raise self.error(
                    name_node, f"queue {queue.queue_id!r} is declared twice (first on line {first_line[queue.queue_id]})"
                )
            first_line[queue.queue_id] = name_node.start_mark.line + 1
            declared.append((queue, paused))
        return declared

    def mapping(self, node: yaml.Node, what: str) -> dict[str, tuple[yaml.Node, yaml.Node]]:
        """key -> (key node, value node). PyYAML keeps duplicate keys silently; a second
        `rate:` would win unnoticed, so it is an error here."""
        if not isinstance(node, yaml.MappingNode):
            raise self.error(node, f"{what} must be a mapping of keys to values")
        entries: dict[str, tuple[yaml.Node, yaml.Node]] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                raise self.error(key_node, f"keys of {what} must be plain names")
            key = key_node.value
            if key in entries:
                raise self.error(key_node, f"{key} is given twice in {what}")
            entries[key] = (key_node, value_node)
        return entries

    # One queue -------------------------------------------------------------------------------

    def queue(self, node: yaml.Node) -> tuple[Queue, bool | None, yaml.Node]:
        entries = self.mapping(node, "a queue")
        if "name" not in entries:
            raise self.error(node, "a queue needs a name")
        name_node = entries["name"][1]
        name = self.text(name_node, "name")
        if not _NAME.fullmatch(name):
            raise self.error(name_node, f"queue name {name!r} must be 1 to 100 characters of A-Z a-z 0-9 -")
        what = f"queue {name}"
        retry = {}
        if "retry_parameters" in entries and not _is_null(entries["retry_parameters"][1]):
            retry = self.mapping(entries["retry_parameters"][1], f"retry_parameters of {what}")
        for keys, allowed, where in ((entries, _QUEUE_KEYS, what), (retry, _RETRY_KEYS, f"retry_parameters of {what}")):
            for key, (key_node, _) in keys.items():
                if key not in allowed:
                    raise self.error(key_node, f"unknown key {key!r} in {where}; allowed: {', '.join(allowed)}")

        mode = self.text(entries["mode"][1], "mode") if "mode" in entries else "push"
        if mode not in ("push", "pull"):
            raise self.error(entries["mode"][1], f"mode must be push or pull, not {mode!r}")
        if mode == "pull":
            for key, (key_node, _) in [*entries.items(), *retry.items()]:
                if key in _PUSH_ONLY:
                    raise self.error(key_node, f"{key} is for push queues; {what} is a pull queue")

        message = queue_pb2.Queue(
            name=f"queues/{name}", type=queue_pb2.QUEUE_TYPE_PULL if mode == "pull" else queue_pb2.QUEUE_TYPE_PUSH
        )
        self.origins = {"name": ("name", name_node)}
        self.take(entries, "mode")
        paused = self.rate_limits(message, entries, what)
        self.retry_config(message.retry_config, retry)
        paused = self.taskq_settings(message, entries, what, paused)
        try:
            queue = validate.queue(message, "queue")
        except InvalidArgument as error:
            raise self.invalid(error, node) from None
        return queue, paused, name_node

    def take(self, entries: dict[str, tuple[yaml.Node, yaml.Node]], key: str) -> yaml.Node | None:
        """The value node of `key` if given, remembered as the origin of the field it sets."""
        if key not in entries:
            return None
        node = entries[key][1]
        field = _QUEUE_KEYS.get(key) or _RETRY_KEYS.get(key)
        if field:
            self.origins[field] = (key, node)
        return node

    def rate_limits(self, message: queue_pb2.Queue, entries: dict, what: str) -> bool | None:
        """Sets the rate limits; returns True for `rate: 0`, False for another rate, None
        without a rate: App Engine's rate was its pause switch."""
        paused = None
        if (value := self.take(entries, "rate")) is not None:
            rate = self.rate(value)
            # App Engine pauses a queue with rate 0. The rate stays unset (unlimited), which is
            # what the queue gets if someone resumes it through the API.
            paused = rate == 0
            if not paused:
                message.rate_limits.max_dispatches_per_second = rate
        if (value := self.take(entries, "bucket_size")) is not None:
            message.rate_limits.max_burst_size = self.integer(value, "bucket_size", 0, limits.MAX_BURST_SIZE)
        elif message.type != queue_pb2.QUEUE_TYPE_PULL:
            # App Engine's bucket_size defaulted to 5 whatever the rate; a file written for it
            # must behave as it did there (the API's own default is max(1, rate / 5)).
            message.rate_limits.max_burst_size = APP_ENGINE_DEFAULT_BUCKET_SIZE
        if (value := self.take(entries, "max_concurrent_requests")) is not None:
            message.rate_limits.max_concurrent_dispatches = self.integer(
                value, "max_concurrent_requests", 1, limits.MAX_CONCURRENT_DISPATCHES
            )
        self.http_target(message, entries, what)
        if (value := self.take(entries, "acl")) is not None:
            self.queue_acl(value, message.name.removeprefix("queues/"))
        return paused

    def queue_acl(self, node: yaml.Node, queue_id: str) -> None:
        """App Engine's acl: a `user_email` could list, get, lease, delete and update the
        queue's tasks (taskq's worker role, which includes viewer), a `writer_email` could
        insert them (enqueuer). The address is matched against the caller's identity: a
        token's name, a JWT's identity claim, a client certificate's identity."""
        if _is_null(node):
            return
        if not isinstance(node, yaml.SequenceNode):
            raise self.error(node, "acl must be a list of '- user_email: ...' and '- writer_email: ...' entries")
        for item in node.value:
            entries = self.mapping(item, "an acl entry")
            if len(entries) != 1 or next(iter(entries)) not in _ACL_ROLES:
                raise self.error(item, "an acl entry is one user_email: or writer_email: address")
            [(key, (_, value))] = entries.items()
            identity = self.text(value, key)
            if not identity:
                raise self.error(value, f"{key} must not be empty")
            self.acl.setdefault(identity, []).append(Grant(_ACL_ROLES[key], queue_id))

    def http_target(self, message: queue_pb2.Queue, entries: dict, what: str) -> None:
        """With the application's URL configured, a push queue delivers there (to its target's
        URL if it names one); without, `target:` is ignored with a warning."""
        value = self.take(entries, "target")
        if not self.routing.configured:
            if value is not None:
                log.warning(
                    "%s:%d: target of %s ignored: no application URL is configured (--appengine-url, "
                    "--appengine-targets), so the queue's tasks go to the workers that stream it",
                    self.path, value.start_mark.line + 1, what,
                )
            return
        if message.type == queue_pb2.QUEUE_TYPE_PULL:
            if value is not None:
                raise self.error(value, f"target is for push queues; {what} is a pull queue")
            return
        url = self.routing.url
        if value is not None:
            target = self.text(value, "target")
            # App Engine's target may name a version of a service (v1.worker): route by the service.
            service = target.rsplit(".", 1)[-1]
            url = self.routing.targets.get(target) or self.routing.targets.get(service)
            if url is None:
                raise self.error(value, f"target {target!r} has no URL: add {service}=URL to --appengine-targets")
        if url is None:
            raise self.error(entries["name"][1], f"{what} names no target and --appengine-url is not set")
        message.http_target.uri = url

    def retry_config(self, config: queue_pb2.RetryConfig, retry: dict) -> None:
        if (value := self.take(retry, "task_retry_limit")) is not None:
            # App Engine counts retries, taskq (like Cloud Tasks) attempts: the first one is extra.
            config.max_attempts = self.integer(value, "task_retry_limit", 0, limits.MAX_ATTEMPTS_LIMIT - 1) + 1
        if (value := self.take(retry, "task_age_limit")) is not None:
            age_us = self.duration(value, "task_age_limit")
            if age_us == 0:
                raise self.error(value, "task_age_limit must be greater than 0")
            config.max_retry_duration.CopyFrom(convert.duration(age_us))
        for key, field in (("min_backoff_seconds", "min_backoff"), ("max_backoff_seconds", "max_backoff")):
            if (value := self.take(retry, key)) is not None:
                getattr(config, field).CopyFrom(convert.duration(self.seconds(value, key)))
        # The App Engine rule for a lone min or max backoff is validate.queue's too.
        if (value := self.take(retry, "max_doublings")) is not None:
            config.max_doublings = self.integer(value, "max_doublings", 0, limits.MAX_DOUBLINGS_LIMIT)

    def taskq_settings(
        self, message: queue_pb2.Queue, entries: dict, what: str, paused_by_rate: bool | None
    ) -> bool | None:
        """Sets taskq's own keys; returns whether the queue is declared paused (True), running
        (False) or neither (None: an existing queue keeps its state)."""
        if (value := self.take(entries, "dead_letter_queue")) is not None:
            target = self.text(value, "dead_letter_queue").removeprefix("queues/")
            # Caught here so that it has a line; declare_all would refuse it without one.
            if target == message.name.removeprefix("queues/"):
                raise self.error(value, f"{what} cannot be its own dead_letter_queue")
            message.dead_letter_queue = f"queues/{target}"
        for key in ("dispatch_deadline", "task_ttl", "tombstone_ttl"):
            if (value := self.take(entries, key)) is not None:
                getattr(message, key).CopyFrom(convert.duration(self.duration(value, key)))
        if not message.HasField("tombstone_ttl"):
            message.tombstone_ttl.CopyFrom(convert.duration(APP_ENGINE_TOMBSTONE_TTL_US))
        if (value := self.take(entries, "paused")) is None:
            return paused_by_rate
        paused = self.boolean(value, "paused")
        if paused_by_rate is True and not paused:
            raise self.error(value, f"paused: false contradicts rate 0, which pauses {what}")
        return paused

    def invalid(self, error: InvalidArgument, queue_node: yaml.Node) -> QueueFileError:
        """validate.queue's error, reworded with the file's key and put on its line."""
        if not error.violations:
            return self.error(queue_node, error.message)
        violation = error.violations[0]
        field = violation.field.removeprefix("queue.")
        key, node = self.origins.get(field, (field, queue_node))
        return self.error(node, f"{key}: {violation.description}")

    # Values ----------------------------------------------------------------------------------

    def value(self, node: yaml.Node, key: str) -> object:
        if not isinstance(node, yaml.ScalarNode):
            raise self.error(node, f"{key} must be a single value, not a list or mapping")
        try:
            return self._constructor.construct_object(node)
        except (yaml.YAMLError, ValueError, OverflowError):  # an explicit tag such as !!int on a word
            raise self.error(node, f"{key}: {node.value!r} is not a valid {node.tag.rsplit(':', 1)[-1]}") from None

    def text(self, node: yaml.Node, key: str) -> str:
        """The value as written: `name: 123` is the name "123", not a number."""
        self.value(node, key)
        return node.value.strip()

    def integer(self, node: yaml.Node, key: str, low: int, high: int) -> int:
        value = self.value(node, key)
        if isinstance(value, str) and re.fullmatch(r"[0-9]+", value.strip()):
            value = int(value)  # App Engine converted quoted numbers too
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
            raise self.error(node, f"{key} must be a whole number from {low} to {high}, not {node.value!r}")
        return value

    def seconds(self, node: yaml.Node, key: str) -> int:
        """A number of seconds (App Engine's float fields), in microseconds."""
        value = self.value(node, key)
        seconds = None
        if isinstance(value, (int, float, str)) and not isinstance(value, bool):
            # Strings too: PyYAML reads 1e-3 (no dot) as one, and App Engine converted them.
            try:
                number = float(value)
            except ValueError:
                number = math.nan
            if math.isfinite(number):
                seconds = Fraction(str(number))
        if seconds is None or seconds < 0 or seconds * SECOND > _MAX_DURATION_US:
            raise self.error(node, f"{key} must be a number of seconds, 0 or more, not {node.value!r}")
        return math.ceil(seconds * SECOND)

    def duration(self, node: yaml.Node, key: str) -> int:
        """`30s`, `10m`, `2h`, `3d` (decimals allowed; `0` alone is zero), in microseconds,
        rounded up as App Engine rounds task_age_limit."""
        text = self.text(node, key)
        if text == "0":
            return 0
        match = _DURATION.fullmatch(text)
        if match is None:
            raise self.error(node, f"{key} must be a number and a unit s, m, h or d (like 30s or 2h), not {text!r}")
        duration_us = math.ceil(Fraction(match.group(1)) * _UNIT_US[match.group(2)])
        if duration_us > _MAX_DURATION_US:
            raise self.error(node, f"{key} {text!r} is too long")
        return duration_us

    def rate(self, node: yaml.Node) -> float:
        """Tasks per second; 0 means paused."""
        text = self.text(node, "rate")
        match = _RATE.fullmatch(text)
        if match is None:
            raise self.error(
                node, f"rate must be 0 or a number of tasks per s, m, h or d (like 5/s or 0.5/m), not {text!r}"
            )
        if text == "0":
            return 0.0
        return float(Fraction(match.group(1)) / (_UNIT_US[match.group(2)] // SECOND))

    def boolean(self, node: yaml.Node, key: str) -> bool:
        value = self.value(node, key)
        if not isinstance(value, bool):
            raise self.error(node, f"{key} must be true or false, not {node.value!r}")
        return value


def _is_null(node: yaml.Node) -> bool:
    return isinstance(node, yaml.ScalarNode) and node.tag == "tag:yaml.org,2002:null"
