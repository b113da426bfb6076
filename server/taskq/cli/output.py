"""What the client commands print: aligned tables and `key value` lines for people, one JSON
document for scripts (`--json`).

JSON is protobuf's JSON mapping with the proto field names (`max_burst_size`), every field
present even at its default (so `ready_count` is there when it is 0), and 64-bit counts as
numbers rather than strings. A task fetched without its payload has no `payload` key, so an
absent payload is not mistaken for an empty one.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Sequence
from typing import Any

from google.protobuf import duration_pb2, json_format, timestamp_pb2
from google.protobuf.message import Message
from google.rpc import code_pb2

from taskq.client.times import seconds, to_datetime
from taskq.v1 import http_pb2, queue_pb2, task_pb2

#: Shown for a value that is not set, or not fetched.
NOTHING = "-"


# JSON ----------------------------------------------------------------------------------------


def message_dict(message: Message) -> dict[str, Any]:
    document = json_format.MessageToDict(
        message,
        preserving_proto_field_name=True,
        always_print_fields_with_no_presence=True,
        unquote_int64_if_possible=True,
    )
    if isinstance(message, task_pb2.Task) and message.view != task_pb2.TASK_VIEW_FULL:
        document.pop("payload", None)
    # Fields at their defaults come last out of MessageToDict; put them back in proto order.
    order = {field.name: index for index, field in enumerate(message.DESCRIPTOR.fields)}
    return dict(sorted(document.items(), key=lambda item: order.get(item[0], len(order))))


def print_json(value: Message | Sequence[Message] | dict[str, Any]) -> None:
    if isinstance(value, Message):
        document: Any = message_dict(value)
    elif isinstance(value, dict):
        document = value
    else:
        document = [message_dict(message) for message in value]
    json.dump(document, sys.stdout, indent=2, ensure_ascii=False)
    sys.stdout.write("\n")


# Building blocks -----------------------------------------------------------------------------


def table(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """Left-aligned columns, two spaces apart, under upper-case headers."""
    rows = [list(map(str, row)) for row in rows]
    widths = [max([len(header)] + [len(row[index]) for row in rows]) for index, header in enumerate(headers)]
    lines = [[header.upper() for header in headers]] + rows
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip() for line in lines)


def key_values(pairs: Iterable[tuple[str, str]], indent: str = "") -> str:
    """`key  value` lines with the values aligned; continuation lines of a value are indented."""
    pairs = list(pairs)
    width = max((len(key) for key, _ in pairs), default=0)
    lines = []
    for key, value in pairs:
        continuation = "\n" + indent + " " * (width + 2)
        lines.append(f"{indent}{key.ljust(width)}  {str(value).replace(chr(10), continuation)}".rstrip())
    return "\n".join(lines)


def time_text(timestamp: timestamp_pb2.Timestamp | None, present: bool = True) -> str:
    """ISO 8601 in UTC to the second, as `--eta` accepts it; `-` when unset."""
    if timestamp is None or not present:
        return NOTHING
    return to_datetime(timestamp).strftime("%Y-%m-%dT%H:%M:%SZ")


def duration_text(value: duration_pb2.Duration | float) -> str:
    """The largest whole unit: `31d`, `2h`, `10m`, `30s`, else seconds like `0.1s`."""
    total = seconds(value) if isinstance(value, duration_pb2.Duration) else value
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if total >= size and total % size == 0:
            return f"{int(total // size)}{unit}"
    return f"{total:g}s"


def rate_text(per_second: float) -> str:
    """`5/s`, `30/m`, ...: the first unit in which the rate is a whole number of at least 1."""
    for unit, size in (("s", 1), ("m", 60), ("h", 3600), ("d", 86400)):
        amount = per_second * size
        if amount >= 1 and abs(amount - round(amount)) < 1e-9 * amount:
            return f"{round(amount)}/{unit}"
    return f"{per_second:g}/s"


def payload_text(payload: bytes) -> str:
    """The payload as text if it is printable UTF-8, else its size."""
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        return f"<{len(payload)} bytes, not UTF-8>"
    if not text:
        return "<empty>"
    if not all(character.isprintable() or character in "\n\t" for character in text):
        return f"<{len(payload)} bytes, not printable>"
    return text


def enum_text(enum: Any, value: int, prefix: str) -> str:
    """`pull` for QUEUE_TYPE_PULL, `ready` for TASK_STATE_READY; the number if unknown."""
    try:
        return enum.Name(value).removeprefix(prefix).lower()
    except ValueError:
        return str(value)


def http_method_text(method: int, default: str) -> str:
    """`PUT` for HTTP_METHOD_PUT; `default` when unset."""
    if method == http_pb2.HTTP_METHOD_UNSPECIFIED:
        return default
    return enum_text(http_pb2.HttpMethod, method, "HTTP_METHOD_").upper()


def _header_pairs(headers: Any) -> list[tuple[str, str]]:
    return [(f"http header {name}", value) for name, value in sorted(headers.items(), key=lambda item: item[0].lower())]


# Queues --------------------------------------------------------------------------------------


def _queue_type(queue: queue_pb2.Queue) -> str:
    return enum_text(queue_pb2.QueueType, queue.type, "QUEUE_TYPE_")


def _max_attempts(config: queue_pb2.RetryConfig) -> str:
    return str(config.max_attempts) if config.max_attempts > 0 else "unlimited"


def queue_row(queue: queue_pb2.Queue) -> list[str]:
    limits = queue.rate_limits
    push = queue.type != queue_pb2.QUEUE_TYPE_PULL
    rate = rate_text(limits.max_dispatches_per_second) if limits.HasField("max_dispatches_per_second") else "unlimited"
    return [
        queue.name,
        _queue_type(queue),
        enum_text(queue_pb2.QueueState, queue.state, "QUEUE_STATE_"),
        # Rate limits do not apply to pull queues; showing them would suggest they do.
        rate if push else NOTHING,
        str(limits.max_burst_size) if push else NOTHING,
        str(limits.max_concurrent_dispatches) if push else NOTHING,
        _max_attempts(queue.retry_config),
    ]


QUEUE_HEADERS = ("name", "type", "state", "rate", "burst", "max concurrent", "max attempts")


def queue_table(queues: Iterable[queue_pb2.Queue]) -> str:
    return table(QUEUE_HEADERS, (queue_row(queue) for queue in queues))


def queue_details(queue: queue_pb2.Queue) -> str:
    row = dict(zip(QUEUE_HEADERS, queue_row(queue)))
    retry = queue.retry_config
    pairs = list(row.items()) + [
        ("max retry duration", duration_text(retry.max_retry_duration) if seconds(retry.max_retry_duration)
         else "unlimited"),
        ("min backoff", duration_text(retry.min_backoff)),
        ("max backoff", duration_text(retry.max_backoff)),
        ("max doublings", str(retry.max_doublings)),
        ("dispatch deadline", duration_text(queue.dispatch_deadline)),
        ("dead letter queue", queue.dead_letter_queue or NOTHING),
        ("task ttl", duration_text(queue.task_ttl)),
        ("tombstone ttl", duration_text(queue.tombstone_ttl)),
        ("created", time_text(queue.create_time)),
        ("updated", time_text(queue.update_time)),
        ("purged", time_text(queue.purge_time, queue.HasField("purge_time"))),
    ]
    if queue.HasField("http_target"):
        target = queue.http_target
        pairs += [("http target", target.uri or "- (each task gives an absolute URL)"),
                  ("http method", http_method_text(target.http_method, "POST (default)"))]
        pairs += _header_pairs(target.headers)
    elif queue.type != queue_pb2.QUEUE_TYPE_PULL:
        pairs.append(("http target", "- (tasks are streamed to workers)"))
    return key_values(pairs)


def stats_lines(stats: queue_pb2.QueueStats) -> str:
    pairs = []
    for field in stats.DESCRIPTOR.fields:
        value = getattr(stats, field.name)
        if field.message_type is not None:
            text = time_text(value, stats.HasField(field.name))
        elif isinstance(value, float):
            text = f"{value:.3g}"
        else:
            text = str(value)
        pairs.append((field.name, text))
    return key_values(pairs)


# Tasks ---------------------------------------------------------------------------------------


def _payload_size(task: task_pb2.Task) -> str:
    # A basic view carries no payload, so its size is unknown rather than 0.
    return f"{len(task.payload)} B" if task.view == task_pb2.TASK_VIEW_FULL else NOTHING


def task_table(tasks: Iterable[task_pb2.Task]) -> str:
    headers = ("name", "state", "attempts", "tag", "schedule time", "payload")
    rows = (
        [task.name, enum_text(task_pb2.TaskState, task.state, "TASK_STATE_"), str(task.attempt_count),
         task.tag or NOTHING, time_text(task.schedule_time, task.HasField("schedule_time")), _payload_size(task)]
        for task in tasks
    )
    return table(headers, rows)


def task_details(task: task_pb2.Task, indent: str = "", name: bool = True) -> str:
    pairs = [("name", task.name)] if name else []
    pairs += [
        ("state", enum_text(task_pb2.TaskState, task.state, "TASK_STATE_")),
        ("attempts", str(task.attempt_count)),
        ("tag", task.tag or NOTHING),
        ("schedule time", time_text(task.schedule_time, task.HasField("schedule_time"))),
        ("created", time_text(task.create_time, task.HasField("create_time"))),
    ]
    if task.lease_token:
        pairs += [("lease token", task.lease_token),
                  ("lease expires", time_text(task.lease_expire_time, task.HasField("lease_expire_time")))]
    if task.HasField("first_attempt_time"):
        pairs.append(("first attempt", time_text(task.first_attempt_time)))
    if task.HasField("last_attempt") and task.last_attempt.HasField("error"):
        error = task.last_attempt.error
        pairs.append(("last error", f"{_code_name(error.code)}: {error.message}"))
    if task.HasField("last_attempt") and task.last_attempt.http_status:
        pairs.append(("last http status", str(task.last_attempt.http_status)))
    if task.HasField("http_request"):
        request = task.http_request
        pairs += [("http url", request.url or "(the queue's)"),
                  ("http method", http_method_text(request.http_method, "(the queue's)"))]
        pairs += _header_pairs(request.headers)
    if task.HasField("http_request") or task.response_count:
        pairs.append(("responses", str(task.response_count)))
    for key, value in sorted(task.attributes.items()):
        pairs.append((f"attribute {key}", value))
    if task.HasField("retry_config") and task.retry_config.HasField("max_attempts"):
        pairs.append(("max attempts", _max_attempts(task.retry_config)))
    if task.view == task_pb2.TASK_VIEW_FULL:
        pairs.append(("payload", payload_text(task.payload)))
    else:
        pairs.append(("payload", "(not fetched; add --full)"))
    return key_values(pairs, indent)


def leased_tasks(tasks: Sequence[task_pb2.Task]) -> str:
    """One block per task: its name, then its lease and payload indented below it."""
    return "\n\n".join(f"{task.name}\n{task_details(task, indent='  ', name=False)}" for task in tasks)


def _code_name(code: int) -> str:
    try:
        return code_pb2.Code.Name(code)
    except ValueError:
        return str(code)
