"""The signature taskq puts on every HTTP push request, so a handler can tell that a request
came from taskq (App Engine stripped its task headers from outside requests; a self-hosted
handler has no such front end).

    X-Taskq-Signature: t=<unix seconds>,v1=<hex>[,v1=<hex>...]

v1 = hex(HMAC-SHA256(secret, t "\\n" METHOD "\\n" target "\\n" queue "\\n" task "\\n" hex(SHA-256(body))))
where target is the request target as sent (path and query), queue and task the values of
X-AppEngine-QueueName and X-AppEngine-TaskName. One v1 per configured secret, so secrets can
be rotated: add the new one, update the handlers, remove the old one. docs/http-push.md shows
how to verify it; the clients ship a verifier.
"""

from __future__ import annotations

import hashlib
import hmac

HEADER = "X-Taskq-Signature"


def signed_message(timestamp: int, method: str, target: str, queue: str, task: str, body: bytes) -> bytes:
    digest = hashlib.sha256(body).hexdigest()
    return f"{timestamp}\n{method.upper()}\n{target}\n{queue}\n{task}\n{digest}".encode()


def signature(secrets: list[bytes], timestamp: int, method: str, target: str, queue: str, task: str, body: bytes) -> str:
    """The header's value (secrets must not be empty)."""
    message = signed_message(timestamp, method, target, queue, task, body)
    parts = [f"t={timestamp}"]
    parts += [f"v1={hmac.new(secret, message, hashlib.sha256).hexdigest()}" for secret in secrets]
    return ",".join(parts)
