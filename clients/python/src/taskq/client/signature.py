"""Verifying the `X-Taskq-Signature` header of HTTP push requests (signature version v1).

A server with signing secrets signs each request it pushes to a queue's HTTP target:

    X-Taskq-Signature: t=1767225600,v1=5257a869...,v1=9f86d081...

`t` is the signing time (Unix seconds); each `v1` is the lowercase hex HMAC-SHA256, keyed with
one of the server's secrets (UTF-8), of the UTF-8 message

    t "\\n" METHOD "\\n" target "\\n" queue id "\\n" task id "\\n" hex SHA-256 of the body

where METHOD is upper case, the target is the request target exactly as sent (the path, then
"?" and the query if there is one, percent-encoding untouched), the queue and task ids are the
`X-AppEngine-QueueName` and `X-AppEngine-TaskName` header values, and the body hash is that of
the raw body bytes (of b"" when there is none). The server sends one `v1` per secret it signs
with, so secrets can be rotated: add the new one to the verifier, then to the server, then
remove the old one from both.

    if not verify_wsgi_request(environ, os.environ["TASKQ_SIGNING_SECRET"]):
        start_response("401 Unauthorized", [])
        ...

The target is compared as the worker receives it: a proxy in front of the worker that rewrites
the path or the query makes every signature fail.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import re
import time
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import quote

#: The request header carrying the signature.
SIGNATURE_HEADER = "X-Taskq-Signature"
#: The request header carrying the queue id, signed.
QUEUE_NAME_HEADER = "X-AppEngine-QueueName"
#: The request header carrying the task id, signed.
TASK_NAME_HEADER = "X-AppEngine-TaskName"
#: How far, in seconds, a signature's time may be from the verifier's clock by default.
DEFAULT_TOLERANCE = 300

#: Secrets a verifier accepts: one, or several while they are rotated.
Secrets = str | bytes | Iterable[str | bytes]

_TIMESTAMP = re.compile(r"[0-9]{1,18}")
_HEX_SHA256 = re.compile(r"[0-9a-f]{64}")
# Characters kept as they are when a target is rebuilt from PATH_INFO: RFC 3986's pchar and "/"
# (letters, digits and "-._~" are always kept).
_PATH_SAFE = "/:@!$&'()*+,;="


def signed_message(timestamp: int, *, method: str, target: str, queue: str, task: str, body: bytes | None) -> bytes:
    """The bytes that v1 signs (see the module's docstring)."""
    body_hash = hashlib.sha256(bytes(body or b"")).hexdigest()
    return "\n".join((str(timestamp), method.upper(), target, queue, task, body_hash)).encode()


def _keys(secret: Secrets) -> list[bytes]:
    secrets = [secret] if isinstance(secret, (str, bytes)) else list(secret)
    keys = [one.encode() if isinstance(one, str) else bytes(one) for one in secrets]
    if not keys or not all(keys):
        # An empty key would make signatures anyone can compute: a configuration error.
        raise ValueError("a signing secret must be a non-empty string (or a list of them)")
    return keys


def sign(secret: Secrets, *, method: str, target: str, queue: str, task: str, body: bytes | None = b"",
         timestamp: int | None = None) -> str:
    """An `X-Taskq-Signature` value, with one v1 per secret, as the server computes it: for
    testing a worker's verification."""
    when = int(time.time()) if timestamp is None else int(timestamp)
    message = signed_message(when, method=method, target=target, queue=queue, task=task, body=body)
    signatures = [hmac.new(key, message, hashlib.sha256).hexdigest() for key in _keys(secret)]
    return ",".join([f"t={when}", *(f"v1={one}" for one in signatures)])


def parse_header(header: str | None) -> tuple[int, list[str]] | None:
    """(t, the well-formed v1 values) of a header value; None when it is missing or malformed
    (an entry that is not key=value, no t or more than one, a t that is not whole seconds).
    Spaces around entries and empty entries are allowed; entries of other versions are
    ignored."""
    if not header:
        return None
    timestamp: int | None = None
    signatures: list[str] = []
    for entry in header.split(","):
        entry = entry.strip()
        if not entry:
            continue
        key, separator, value = entry.partition("=")
        if not separator or not key:
            return None
        if key == "t":
            if timestamp is not None or not _TIMESTAMP.fullmatch(value):
                return None
            timestamp = int(value)
        elif key == "v1" and _HEX_SHA256.fullmatch(value):
            signatures.append(value)
    if timestamp is None:
        return None
    return timestamp, signatures


def verify_signature(header: str | None, secret: Secrets, *, method: str, target: str, queue: str, task: str,
                     body: bytes | None, now: float | None = None, tolerance: float = DEFAULT_TOLERANCE) -> bool:
    """Whether `header` (the X-Taskq-Signature value) signs this request with `secret` (or one
    of a list of secrets) and was made within `tolerance` seconds of `now` (default: this
    machine's clock).

    `target` is the request target exactly as received: path, then "?" and the query if any,
    percent-encoding untouched. `queue` and `task` are the X-AppEngine-QueueName and
    X-AppEngine-TaskName header values; `body` the raw body. False for a missing or malformed
    header, a stale or future time, or no matching v1. Raises ValueError for an empty secret.
    """
    keys = _keys(secret)
    parsed = parse_header(header)
    if parsed is None:
        return False
    timestamp, signatures = parsed
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance:
        return False
    message = signed_message(timestamp, method=method, target=target, queue=queue, task=task, body=body)
    expected = [hmac.new(key, message, hashlib.sha256).hexdigest() for key in keys]
    # Every comparison is made, so the time taken says nothing about which one matched.
    matches = [hmac.compare_digest(given, wanted) for given in signatures for wanted in expected]
    return any(matches)


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is not None:
        return value
    lowered = name.lower()
    for key, value in headers.items():
        if key.lower() == lowered:
            return value
    return None


def verify_request(headers: Mapping[str, str], secret: Secrets, *, method: str, target: str, body: bytes | None,
                   now: float | None = None, tolerance: float = DEFAULT_TOLERANCE) -> bool:
    """`verify_signature` for a request whose headers are at hand (looked up case-insensitively):
    the signature, queue and task headers are read from them. For frameworks other than WSGI;
    `target` must still be the request target as received."""
    # Without its queue or task header, a request cannot match: the server always sends both.
    return verify_signature(_header(headers, SIGNATURE_HEADER), secret, method=method, target=target,
                            queue=_header(headers, QUEUE_NAME_HEADER) or "", task=_header(headers, TASK_NAME_HEADER) or "",
                            body=body, now=now, tolerance=tolerance)


def wsgi_target(environ: Mapping[str, Any]) -> str:
    """The request target of a WSGI request: RAW_URI (gunicorn) or REQUEST_URI (uWSGI, mod_wsgi,
    Werkzeug) as the server received it when present (the path and query of an absolute-form
    one), else rebuilt from SCRIPT_NAME, PATH_INFO
    and QUERY_STRING, which is exact only for paths percent-encoded the usual way."""
    for key in ("RAW_URI", "REQUEST_URI"):
        raw = str(environ.get(key) or "")
        if raw.startswith("/"):
            return raw
        if "://" in raw:
            # An absolute-form target (sent to proxies): its path and query.
            rest = raw.split("://", 1)[1]
            start = min((index for index in (rest.find("/"), rest.find("?")) if index >= 0), default=len(rest))
            target = rest[start:]
            return target if target.startswith("/") else "/" + target
    # PATH_INFO is percent-decoded, its bytes carried as latin-1 characters (PEP 3333).
    path = quote(str(environ.get("SCRIPT_NAME", "")) + str(environ.get("PATH_INFO", "")), safe=_PATH_SAFE,
                 encoding="latin-1")
    query = str(environ.get("QUERY_STRING", ""))
    return f"{path or '/'}?{query}" if query else (path or "/")


def read_wsgi_body(environ: dict[str, Any]) -> bytes:
    """The body of a WSGI request, read from wsgi.input and put back (as an io.BytesIO) so
    that the application can read it again."""
    stream = environ.get("wsgi.input")
    if stream is None:
        return b""
    try:
        length = int(environ.get("CONTENT_LENGTH") or -1)
    except ValueError:
        length = -1
    if length >= 0:
        chunks = []
        remaining = length
        while remaining > 0:
            chunk = stream.read(remaining)
            if not chunk:
                break
            chunks.append(chunk)
            remaining -= len(chunk)
        body = b"".join(chunks)
    elif environ.get("wsgi.input_terminated"):
        body = stream.read()
        environ["CONTENT_LENGTH"] = str(len(body))
    else:
        body = b""
    environ["wsgi.input"] = io.BytesIO(body)
    return body


def verify_wsgi_request(environ: dict[str, Any], secret: Secrets, *, now: float | None = None,
                        tolerance: float = DEFAULT_TOLERANCE) -> bool:
    """Whether a WSGI request carries a valid X-Taskq-Signature for `secret` (or one of a list
    of secrets). The body is read and put back in `environ["wsgi.input"]`, so the application
    can still read it; the target is the one the server received (see `wsgi_target`)."""
    body = read_wsgi_body(environ)
    return verify_signature(environ.get("HTTP_X_TASKQ_SIGNATURE"), secret, method=str(environ.get("REQUEST_METHOD", "")),
                            target=wsgi_target(environ), queue=environ.get("HTTP_X_APPENGINE_QUEUENAME", ""),
                            task=environ.get("HTTP_X_APPENGINE_TASKNAME", ""), body=body, now=now, tolerance=tolerance)


__all__ = [
    "SIGNATURE_HEADER", "QUEUE_NAME_HEADER", "TASK_NAME_HEADER", "DEFAULT_TOLERANCE",
    "verify_signature", "verify_request", "verify_wsgi_request", "sign", "signed_message", "parse_header",
    "wsgi_target", "read_wsgi_body",
]
