"""Where Cloud Tasks' App Engine tasks go, for both API versions.

Google routes an App Engine task by its AppEngineRouting (service, version, instance) to a
part of the project's app. taskq's app is --appengine-url; --appengine-targets names its parts:
`service`, `version.service`, `instance.version.service` or `version` -> base URL. A routing
names the most specific entry that exists; one that names none goes to the app's own URL, as
Cloud Tasks sends a task whose service, version or instance is not available to the default
version of the default service. A queue's routing override (its base URL is a target's) wins
over every task's routing.

A task is stored with the URL it goes to: a path under its queue's base URL (the app's, or the
override's), or the absolute URL of the target its routing named. Reading a task back turns an
absolute URL under a target's base URL into that target's routing and the path again.
"""

from __future__ import annotations

import dataclasses
from typing import Any
from urllib.parse import urlsplit

from taskq.core import http_push
from taskq.core.errors import FailedPrecondition, InvalidArgument
from taskq.core.model import Queue


@dataclasses.dataclass(frozen=True)
class AppEngine:
    """Where App Engine tasks go: the app's URL (--appengine-url, "" when unset) and its
    services' (--appengine-targets: target name -> base URL)."""

    url: str
    targets: dict[str, str]

    def base(self, service: str, version: str = "", instance: str = "") -> str:
        """The base URL of a routing: the --appengine-targets entry it names, else the app's."""
        for name in _target_names(service, version, instance):
            if name in self.targets:
                return self.targets[name]
        return self.url

    def target_of_base(self, uri: str) -> str:
        """The target whose base URL a queue's uri is ("" for the app's own or none)."""
        if uri == self.url:
            return ""
        return next((name for name, base in self.targets.items() if base == uri), "")

    def target_of_url(self, url: str) -> tuple[str, str]:
        """(target, path) of an absolute URL under a target's base URL; ("", "") if none."""
        found = ("", "")
        longest = -1
        for name, base in self.targets.items():
            prefix = base.rstrip("/")
            if url.startswith(prefix + "/") and len(prefix) > longest:
                found, longest = (name, url[len(prefix):]), len(prefix)
        return found

    def url_of(self, path: str, path_field: str, routing: Any | None, queue: Queue) -> str:
        """Where a task with this path and routing (an AppEngineRouting, None when unset) goes:
        an absolute URL when its routing names a target other than the queue's base, else the
        path (under the queue's base URL)."""
        if not path.startswith("/"):
            raise InvalidArgument.field(path_field, "must start with /", "INVALID_URL")
        queue_base = queue.http_target.uri if queue.http_target is not None else ""
        url = path
        # A queue's routing override wins over the task's routing.
        if routing is not None and not self.target_of_base(queue_base):
            base = self.base(routing.service, routing.version, routing.instance)
            if base and base != queue_base:
                url = base.rstrip("/") + path
        if url == path and queue.http_target is not None and not queue_base:
            raise FailedPrecondition(
                "App Engine tasks need the app's URL: start the server with --appengine-url (or route the task to a "
                "service of --appengine-targets)", reason="APP_ENGINE_URL_UNSET",
            )
        # One URL check, taskq's (at most 2,048 bytes), on the URL the task will be sent to.
        http_push.check_url(url, path_field, path_allowed=True)
        return url


def _target_names(service: str, version: str, instance: str) -> list[str]:
    if service == "default":
        service = ""
    candidates = [".".join(part for part in (instance, version, service) if part)]
    if version and service:
        candidates.append(f"{version}.{service}")
    candidates += [service, version]
    return [name for name in candidates if name]


def routing_to_pb(routing: Any, target: str, base_url: str) -> None:
    """AppEngineRouting of a target name (`[instance.][version.]service`) and its host."""
    parts = target.split(".") if target else []
    if len(parts) == 1:
        routing.service = parts[0]
    elif len(parts) == 2:
        routing.version, routing.service = parts
    elif len(parts) >= 3:
        routing.instance, routing.version, routing.service = parts[0], parts[1], ".".join(parts[2:])
    if base_url:
        routing.host = urlsplit(base_url).netloc
