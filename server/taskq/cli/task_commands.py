"""`taskq task add|list|get|delete|lease|lease-modify|run`."""

from __future__ import annotations

import argparse
import itertools
import sys
from typing import Any

from taskq.cli import flags, output, values
from taskq.cli.connection import command, common_options
from taskq.cli.errors import UsageError
from taskq.client import Client

#: The options of `task add`, by the CreateTaskRequest fields they set.
ADD_FLAGS = (
    flags.Flag("task.name", "--name", "name"),
    flags.Flag("task.tag", "--tag", "tag"),
    flags.duration("task.schedule_time", "--delay", "delay"),
    flags.Flag("task.schedule_time", "--eta", "eta", lambda eta: eta.isoformat()),
    flags.Flag("task.attributes", "--attribute", "attribute"),
    flags.number("task.retry_config.max_attempts", "--max-attempts", "max_attempts"),
    flags.Flag("task.http_request.url", "--url", "url"),
    flags.Flag("task.http_request.http_method", "--method", "method"),
    flags.Flag("task.http_request.headers", "--header", "header"),
)
TOKEN_FLAG = flags.Flag("lease_token", "--lease-token", "lease_token")
LEASE_FLAGS = (
    flags.duration("lease_duration", "--lease", "lease"),
    flags.number("max_tasks", "--max", "max"),
    flags.duration("wait", "--wait", "wait"),
    flags.Flag("tag", "--tag", "tag"),
)


def add_parser(subparsers) -> None:
    common = common_options()
    task = subparsers.add_parser("task", help="add, inspect, lease and delete tasks",
                                 description="Add, inspect, lease and delete tasks.", parents=[common])
    actions = task.add_subparsers(dest="action", required=True, metavar="ACTION")

    def action(name: str, help: str, handler, fields: tuple[flags.Flag, ...] = ()) -> argparse.ArgumentParser:
        parser = actions.add_parser(name, help=help, description=help[0].upper() + help[1:] + ".",
                                    parents=[common])
        parser.set_defaults(run=command(flags.naming_flags(handler, fields)))
        return parser

    add = action("add", "add a task to a queue", _add, ADD_FLAGS)
    add.add_argument("queue", metavar="QUEUE", help="queue id or name")
    payload = add.add_mutually_exclusive_group()
    payload.add_argument("--payload", metavar="TEXT", help="the payload, as text (UTF-8)")
    payload.add_argument("--payload-file", metavar="PATH", help="read the payload from a file; - reads stdin")
    add.add_argument("--name", metavar="ID", help="task id, for de-duplication (default: generated)")
    add.add_argument("--tag", metavar="TAG", help="pull queues: the tag to lease it by")
    when = add.add_mutually_exclusive_group()
    when.add_argument("--delay", type=values.duration, metavar="DURATION", help="run no sooner than this from now")
    when.add_argument("--eta", type=values.time, metavar="TIME",
                      help="run no sooner than this ISO 8601 time (local time if it has no zone)")
    add.add_argument("--attribute", type=values.attribute, action="append", default=[], metavar="KEY=VALUE",
                     help="an attribute for the worker; repeat for more")
    add.add_argument("--max-attempts", type=values.count, metavar="N",
                     help="attempts this task gets, overriding the queue's; 0 for unlimited")
    http = add.add_argument_group("HTTP push", "queues with an HTTP target: the request this task becomes "
                                                "(its body is the payload); options not given take the queue's")
    http.add_argument("--url", metavar="URL_OR_PATH",
                      help="an absolute http(s) URL, or a path with an optional query sent under the queue's URL")
    http.add_argument("--method", type=values.http_method, metavar="METHOD",
                      help="POST, GET, HEAD, PUT, DELETE, PATCH or OPTIONS (GET, HEAD, DELETE and OPTIONS send no body)")
    http.add_argument("--header", type=values.header, action="append", metavar="NAME=VALUE",
                      help="a request header, e.g. Content-Type=application/json; repeat for more")

    listing = action("list", "list the tasks of a queue", _list, (flags.Flag("filter", "--filter", "filter"),))
    listing.add_argument("queue", metavar="QUEUE", help="queue id or name")
    listing.add_argument("--state", type=values.states, metavar="STATE",
                         help="only tasks in this state: scheduled, ready, leased or failed (comma-separated)")
    listing.add_argument("--tag", metavar="TAG", help="only tasks with this tag")
    listing.add_argument("--filter", metavar="EXPR", help='a raw filter, e.g. \'state = READY AND tag = "x"\'')
    listing.add_argument("--full", action="store_true", help="fetch payloads too")
    listing.add_argument("--limit", type=values.positive_count, metavar="N", help="show at most N tasks")

    get = action("get", "show one task", _get)
    get.add_argument("name", metavar="NAME", help="task name, queues/QUEUE/tasks/ID")
    get.add_argument("--full", action="store_true", help="include the payload")

    delete = action("delete", "delete a task, or acknowledge a leased one", _delete, (TOKEN_FLAG,))
    delete.add_argument("name", metavar="NAME", help="task name, queues/QUEUE/tasks/ID")
    delete.add_argument("--lease-token", metavar="TOKEN",
                        help="acknowledge the lease with this token (fails if the lease was lost)")

    lease = action("lease", "lease tasks from a pull queue", _lease, LEASE_FLAGS)
    lease.add_argument("queue", metavar="QUEUE", help="queue id or name")
    lease.add_argument("--lease", type=values.duration, default=60.0, metavar="DURATION",
                       help="how long the leases last (default 60s)")
    lease.add_argument("--max", type=values.positive_count, default=1, metavar="N",
                       help="lease at most N tasks (default 1)")
    by_tag = lease.add_mutually_exclusive_group()
    by_tag.add_argument("--tag", metavar="TAG", help="only tasks with this tag")
    by_tag.add_argument("--oldest-tag", action="store_true", help="only tasks with the oldest ready task's tag")
    lease.add_argument("--wait", type=values.duration, metavar="DURATION",
                       help="wait up to this long (at most 60s) for a task when none is ready")

    modify = action("lease-modify", "extend or release the lease on a pulled task", _modify_lease,
                    (flags.duration("lease_duration", "--lease", "lease"), TOKEN_FLAG))
    modify.add_argument("name", metavar="NAME", help="task name, queues/QUEUE/tasks/ID")
    modify.add_argument("--lease-token", required=True, metavar="TOKEN", help="the token `task lease` printed")
    length = modify.add_mutually_exclusive_group(required=True)
    length.add_argument("--lease", type=values.duration, metavar="DURATION",
                        help="end the lease this long from now (at most 7d); 0 releases the task")
    length.add_argument("--release", action="store_true",
                        help="release the task now: it is ready for another worker (the attempt still counts)")

    run = action("run", "make a scheduled or failed task ready now", _run)
    run.add_argument("name", metavar="NAME", help="task name, queues/QUEUE/tasks/ID")


def _show_task(task, arguments: argparse.Namespace) -> None:
    if arguments.json:
        output.print_json(task)
    else:
        print(output.task_details(task))


def _read_payload(arguments: argparse.Namespace) -> bytes:
    if arguments.payload is not None:
        return arguments.payload.encode()
    if arguments.payload_file is None:
        return b""
    if arguments.payload_file == "-":
        return sys.stdin.buffer.read()
    try:
        with open(arguments.payload_file, "rb") as file:
            return file.read()
    except OSError as error:
        raise UsageError(f"cannot read --payload-file {arguments.payload_file}: {error.strerror}") from None


def _http_request(arguments: argparse.Namespace) -> dict[str, Any] | None:
    if arguments.url is None and arguments.method is None and arguments.header is None:
        return None
    return {"url": arguments.url or "", "http_method": arguments.method, "headers": dict(arguments.header or [])}


def _add(client: Client, arguments: argparse.Namespace) -> None:
    retry = {} if arguments.max_attempts is None else {"max_attempts": arguments.max_attempts}
    task = client.create_task(
        arguments.queue,
        _read_payload(arguments),
        name=arguments.name,
        tag=arguments.tag,
        delay=arguments.delay,
        schedule_time=arguments.eta,
        attributes=dict(arguments.attribute),
        http_request=_http_request(arguments),
        **retry,
    )
    _show_task(task, arguments)


def _list(client: Client, arguments: argparse.Namespace) -> None:
    tasks = client.list_tasks(arguments.queue, state=arguments.state, tag=arguments.tag, filter=arguments.filter,
                              view="full" if arguments.full else "basic")
    # With --limit, stop fetching pages as soon as enough tasks have arrived.
    listed = list(itertools.islice(tasks, arguments.limit))
    if arguments.json:
        output.print_json(listed)
    elif listed:
        print(output.task_table(listed))
    else:
        print("no tasks")


def _get(client: Client, arguments: argparse.Namespace) -> None:
    _show_task(client.get_task(arguments.name, view="full" if arguments.full else "basic"), arguments)


def _delete(client: Client, arguments: argparse.Namespace) -> None:
    client.delete_task(arguments.name, lease_token=arguments.lease_token or "")
    if arguments.json:
        output.print_json({})
    else:
        print(f"{'acknowledged' if arguments.lease_token else 'deleted'} {arguments.name}")


def _lease(client: Client, arguments: argparse.Namespace) -> None:
    tasks = client.lease_tasks(arguments.queue, lease_duration=arguments.lease, max_tasks=arguments.max,
                               tag=arguments.tag, oldest_tag=arguments.oldest_tag, wait=arguments.wait)
    if arguments.json:
        output.print_json(tasks)
    elif tasks:
        print(output.leased_tasks(tasks))
    else:
        print("no task was ready")


def _modify_lease(client: Client, arguments: argparse.Namespace) -> None:
    duration = 0.0 if arguments.release else arguments.lease
    _show_task(client.modify_lease(arguments.name, lease_duration=duration, lease_token=arguments.lease_token),
               arguments)


def _run(client: Client, arguments: argparse.Namespace) -> None:
    _show_task(client.run_task(arguments.name), arguments)
