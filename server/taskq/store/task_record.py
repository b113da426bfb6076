"""The stored form of a task (the value of an `R` key): a fixed header, then sections.

Every task is encoded when it is created and when it is leased, and decoded when it is
leased and when it is acknowledged, so this is the hottest code of the store. A packed
header costs a tenth of building a protobuf message and a half of parsing one.

Layout, version 3 (integers big-endian):

    header   B version=3 (2 without a trace section) | B stage | B flags | i attempt_count
             | q schedule_time_us | q create_time_us | q first_attempt_time_us
             | q lease_expire_us | q dispatch_deadline_us | q retain_until_us
    token    B length | lease token (ASCII)
    tag      H length | tag (UTF-8)
    attempt  (flag LAST_ATTEMPT) q dispatch_time_us | q response_time_us | i error_code
             | H http_status | H length | error message (UTF-8)
    retry    (flag RETRY) B which fields are set (bit n = field n below)
             | i max_attempts | q max_retry_duration_us | q min_backoff_us
             | q max_backoff_us | i max_doublings
    attributes (flag ATTRIBUTES) H count, then per entry H length | key | I length | value
    http     (flag HTTP) B method (0: the queue's) | H length | url | H count, then per header
             H length | name | H length | value
    responses (flag RESPONSES) i response_count
    trace    (flag TRACE) B length | traceparent (ASCII) | H length | tracestate (ASCII)
    payload  everything after the sections

Version 2 (written before tracing) is the same without the trace section, and version 1
(before HTTP push) also without `http_status` in the attempt and without the http and
responses sections; both are still read. A new section needs a new version even though it
has a flag of its own: a server that does not know the flag would take the section for the
start of the payload, whereas an unknown version is refused. A task without a trace context
is still written as version 2, which it is byte for byte: servers of the previous release
sharing a PostgreSQL database during a rolling upgrade then read every task but the traced
ones. Changing it: add a new version number and keep decoding the old ones (records are
rewritten on every lease, so old versions fade out), or bump KEY_SCHEMA_VERSION in keys.py.
"""

from __future__ import annotations

import struct

from taskq.core.model import Attempt, HttpMethod, HttpRequest, RetryPolicy, Stage, Task
from taskq.store.base import StoreError

VERSION = 3
#: The version of records without a trace section (see the module docstring).
UNTRACED_VERSION = 2
#: Versions this code reads.
READABLE = (1, 2, 3)

NAMED = 1
LAST_ATTEMPT = 2
RETRY = 4
ATTRIBUTES = 8
HTTP = 16
RESPONSES = 32
TRACE = 64

_HEADER = struct.Struct(">BBBiqqqqqq")
_ATTEMPT_V1 = struct.Struct(">qqiH")
_ATTEMPT = struct.Struct(">qqiHH")
_I32 = struct.Struct(">i")
_RETRY = struct.Struct(">Biqqqi")
_U8 = struct.Struct(">B")
_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")

_STAGES = {stage.value: stage for stage in Stage}
_METHODS = {method.value: method for method in HttpMethod}
_RETRY_FIELDS = ("max_attempts", "max_retry_duration_us", "min_backoff_us", "max_backoff_us", "max_doublings")


def encode_task(task: Task) -> bytes:
    flags = NAMED if task.named else 0
    token = task.lease_token.encode()
    tag = task.tag.encode()
    parts = [b"", _U8.pack(len(token)), token, _U16.pack(len(tag)), tag]
    attempt = task.last_attempt
    if attempt is not None:
        flags |= LAST_ATTEMPT
        message = attempt.error_message.encode()[:65535]
        parts.append(_ATTEMPT.pack(
            attempt.dispatch_time_us, attempt.response_time_us, attempt.error_code, attempt.http_status, len(message)
        ))
        parts.append(message)
    if task.retry is not None:
        flags |= RETRY
        values = [getattr(task.retry, name) for name in _RETRY_FIELDS]
        present = sum(1 << index for index, value in enumerate(values) if value is not None)
        parts.append(_RETRY.pack(present, *(value or 0 for value in values)))
    if task.attributes:
        flags |= ATTRIBUTES
        parts.append(_U16.pack(len(task.attributes)))
        for key, value in task.attributes.items():
            key_bytes, value_bytes = key.encode(), value.encode()
            parts += (_U16.pack(len(key_bytes)), key_bytes, _U32.pack(len(value_bytes)), value_bytes)
    if task.http is not None:
        flags |= HTTP
        url = task.http.url.encode()
        parts += (_U8.pack(task.http.method.value if task.http.method else 0), _U16.pack(len(url)), url,
                  _U16.pack(len(task.http.headers)))
        for key, value in task.http.headers.items():
            key_bytes, value_bytes = key.encode(), value.encode()
            parts += (_U16.pack(len(key_bytes)), key_bytes, _U16.pack(len(value_bytes)), value_bytes)
    if task.response_count:
        flags |= RESPONSES
        parts.append(_I32.pack(task.response_count))
    if task.trace_parent:
        flags |= TRACE
        # Both are ASCII by the API's checks (api/trace_context.py): traceparent is 55
        # characters, tracestate at most 512.
        parent, state = task.trace_parent.encode(), task.trace_state.encode()
        parts += (_U8.pack(len(parent)), parent, _U16.pack(len(state)), state)
    parts[0] = _HEADER.pack(
        VERSION if flags & TRACE else UNTRACED_VERSION, task.stage.value, flags, task.attempt_count,
        task.schedule_time_us, task.create_time_us,
        task.first_attempt_time_us, task.lease_expire_us, task.dispatch_deadline_us, task.retain_until_us,
    )
    parts.append(task.payload)
    return b"".join(parts)


def decode_task(task_id: str, data: bytes, payload: bool = True) -> Task:
    """The task stored in `data`; without `payload`, with an empty payload (not copied out)."""
    try:
        (version, stage, flags, attempt_count, schedule_us, create_us, first_attempt_us, lease_expire_us,
         deadline_us, retain_until_us) = _HEADER.unpack_from(data)
        if version not in READABLE:
            raise StoreError(f"task {task_id} is stored in record version {version}; this server reads {READABLE}")
        offset = _HEADER.size
        length = data[offset]
        token = data[offset + 1 : offset + 1 + length].decode()
        offset += 1 + length
        length = _U16.unpack_from(data, offset)[0]
        tag = data[offset + 2 : offset + 2 + length].decode()
        offset += 2 + length
        last_attempt = None
        if flags & LAST_ATTEMPT:
            if version == 1:
                dispatch_us, response_us, code, length = _ATTEMPT_V1.unpack_from(data, offset)
                http_status = 0
                offset += _ATTEMPT_V1.size
            else:
                dispatch_us, response_us, code, http_status, length = _ATTEMPT.unpack_from(data, offset)
                offset += _ATTEMPT.size
            last_attempt = Attempt(
                dispatch_us, response_us, code, data[offset : offset + length].decode(errors="replace"), http_status
            )
            offset += length
        retry = None
        if flags & RETRY:
            present, *values = _RETRY.unpack_from(data, offset)
            offset += _RETRY.size
            retry = RetryPolicy(*(value if present & (1 << index) else None for index, value in enumerate(values)))
        attributes: dict[str, str] = {}
        if flags & ATTRIBUTES:
            count = _U16.unpack_from(data, offset)[0]
            offset += 2
            for _ in range(count):
                length = _U16.unpack_from(data, offset)[0]
                key = data[offset + 2 : offset + 2 + length].decode()
                offset += 2 + length
                length = _U32.unpack_from(data, offset)[0]
                attributes[key] = data[offset + 4 : offset + 4 + length].decode()
                offset += 4 + length
        http = None
        if flags & HTTP:
            method = _METHODS.get(data[offset])
            length = _U16.unpack_from(data, offset + 1)[0]
            url = data[offset + 3 : offset + 3 + length].decode()
            offset += 3 + length
            count = _U16.unpack_from(data, offset)[0]
            offset += 2
            headers: dict[str, str] = {}
            for _ in range(count):
                length = _U16.unpack_from(data, offset)[0]
                key = data[offset + 2 : offset + 2 + length].decode()
                offset += 2 + length
                length = _U16.unpack_from(data, offset)[0]
                headers[key] = data[offset + 2 : offset + 2 + length].decode()
                offset += 2 + length
            http = HttpRequest(url, method, headers)
        response_count = 0
        if flags & RESPONSES:
            response_count = _I32.unpack_from(data, offset)[0]
            offset += _I32.size
        trace_parent = trace_state = ""
        if flags & TRACE:
            length = data[offset]
            trace_parent = data[offset + 1 : offset + 1 + length].decode()
            offset += 1 + length
            length = _U16.unpack_from(data, offset)[0]
            trace_state = data[offset + 2 : offset + 2 + length].decode()
            offset += 2 + length
        body = data[offset:] if payload else b""
    except (struct.error, UnicodeDecodeError, IndexError) as error:
        raise StoreError(f"the stored record of task {task_id} is corrupt: {error}") from error
    return Task(
        task_id, schedule_us, create_us, body, attributes, tag, _STAGES[stage], attempt_count, first_attempt_us,
        last_attempt, token, lease_expire_us, retry, deadline_us, bool(flags & NAMED), retain_until_us, False, http,
        response_count, None, trace_parent, trace_state,
    )
