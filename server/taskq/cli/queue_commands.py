"""`taskq queue create|list|get|update|pause|resume|purge|delete|stats`."""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Callable
from typing import Any

from taskq.cli import confirmation, flags, output, values
from taskq.cli.connection import command, common_options
from taskq.cli.errors import UsageError
from taskq.client import Client
from taskq.client.names import queue_name
from taskq.v1 import http_pb2


@dataclasses.dataclass(frozen=True)
class SettingOption:
    """One command-line option for a queue setting (a `Client.create_queue` keyword)."""

    flag: str
    setting: str
    parse: Callable[[str], Any]
    metavar: str
    help: str


SETTING_OPTIONS = (
    SettingOption("--rate", "max_dispatches_per_second", values.rate, "RATE",
                  "push: dispatch rate, as N/s, N/m, N/h, N/d or a number per second; 'unlimited' for none"),
    SettingOption("--burst", "max_burst_size", values.count, "N",
                  "push: token bucket size, the most tasks an idle queue dispatches at once (default, or 0: the "
                  "rate / 5 rounded up, at least 1, as the API and Cloud Tasks do; 5 without a rate)"),
    SettingOption("--max-concurrent", "max_concurrent_dispatches", values.count, "N",
                  "push: most tasks dispatched and unanswered at once (0: 1000)"),
    SettingOption("--max-attempts", "max_attempts", values.count, "N",
                  "attempts a task gets, the first included; 0 for unlimited"),
    SettingOption("--max-retry-duration", "max_retry_duration", values.duration, "DURATION",
                  "how long after its first attempt a task is retried (e.g. 2h); 0 for unlimited"),
    SettingOption("--min-backoff", "min_backoff", values.duration, "DURATION", "delay before the first retry"),
    SettingOption("--max-backoff", "max_backoff", values.duration, "DURATION", "longest delay between attempts"),
    SettingOption("--max-doublings", "max_doublings", values.count, "N",
                  "times the delay doubles before growing linearly"),
    SettingOption("--dispatch-deadline", "dispatch_deadline", values.duration, "DURATION",
                  "push: how long a worker has to answer a task (15s to 24h)"),
    SettingOption("--dead-letter-queue", "dead_letter_queue", str, "QUEUE",
                  "queue receiving tasks whose retries are exhausted; '' for none"),
    SettingOption("--task-ttl", "task_ttl", values.duration, "DURATION", "how long failed tasks are kept"),
    SettingOption("--tombstone-ttl", "tombstone_ttl", values.duration, "DURATION",
                  "how long a finished task's name stays reserved"),
)


#: How an option's value reads in an error message, by the function that parsed it.
_SHOWN_AS: dict[Callable[[str], Any], Callable[[Any], str]] = {
    values.duration: output.duration_text, values.count: str, values.rate: output.rate_text,
}
#: The options of create and update, by the Queue fields they set (setting names are field names).
SETTING_FLAGS = tuple(flags.Flag(option.setting, option.flag, option.setting, _SHOWN_AS.get(option.parse))
                      for option in SETTING_OPTIONS) + (
    flags.Flag("http_target.uri", "--http-uri", "http_uri"),
    flags.Flag("http_target.http_method", "--http-method", "http_method"),
    flags.Flag("http_target.headers", "--http-header", "http_header"),
)


def _add_setting_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("queue settings")
    for option in SETTING_OPTIONS:
        # SUPPRESS leaves options not given out of the namespace, so `--rate unlimited`
        # (None) stays distinguishable from no --rate at all.
        group.add_argument(option.flag, dest=option.setting, type=option.parse, metavar=option.metavar,
                           help=option.help, default=argparse.SUPPRESS)


def _given_settings(arguments: argparse.Namespace) -> dict[str, Any]:
    return {option.setting: getattr(arguments, option.setting)
            for option in SETTING_OPTIONS if hasattr(arguments, option.setting)}


def _add_http_options(parser: argparse.ArgumentParser, *, update: bool) -> None:
    group = parser.add_argument_group(
        "HTTP push", "push: deliver each task as an HTTP request to a worker service instead of streaming it to workers"
        + ("; options not given keep their current values" if update else ""))
    group.add_argument("--http-uri", metavar="URL",
                       help="the worker service's base URL (http:// or https://); tasks with a path are sent under it")
    group.add_argument("--http-method", type=values.http_method, metavar="METHOD",
                       help="the method of tasks that do not choose one: POST (the default), GET, HEAD, PUT, DELETE, "
                            "PATCH or OPTIONS")
    group.add_argument("--http-header", type=values.header, action="append", metavar="NAME=VALUE",
                       help="a header added to every request; repeat for more"
                            + (" (given, they replace all the current ones)" if update else ""))
    if update:
        group.add_argument("--no-http-target", action="store_true",
                           help="remove the HTTP target: tasks are streamed to workers again")


def _http_options_given(arguments: argparse.Namespace) -> bool:
    return any(value is not None for value in (arguments.http_uri, arguments.http_method, arguments.http_header))


def _http_target(arguments: argparse.Namespace, current: http_pb2.HttpTarget | None = None) -> dict[str, Any]:
    """The target the HTTP options describe, over `current` (a queue's target, on update)."""
    target: dict[str, Any] = {"uri": "", "http_method": None, "headers": {}}
    if current is not None:
        target = {"uri": current.uri, "http_method": current.http_method, "headers": dict(current.headers)}
    if arguments.http_uri is not None:
        target["uri"] = arguments.http_uri
    if arguments.http_method is not None:
        target["http_method"] = arguments.http_method
    if arguments.http_header is not None:
        target["headers"] = dict(arguments.http_header)
    return target


def add_parser(subparsers) -> None:
    common = common_options()
    queue = subparsers.add_parser("queue", help="create, inspect and manage queues",
                                  description="Create, inspect and manage queues.", parents=[common])
    actions = queue.add_subparsers(dest="action", required=True, metavar="ACTION")

    def action(name: str, help: str, handler, *, takes_name: bool = True,
               fields: tuple[flags.Flag, ...] = ()) -> argparse.ArgumentParser:
        parser = actions.add_parser(name, help=help, description=help[0].upper() + help[1:] + ".",
                                    parents=[common])
        if takes_name:
            parser.add_argument("queue", metavar="QUEUE", help="queue id or name (queues/ID)")
        parser.set_defaults(run=command(flags.naming_flags(handler, fields)))
        return parser

    create = action("create", "create a queue", _create, fields=SETTING_FLAGS)
    create.add_argument("--type", type=values.queue_type, default="push", help="push (default) or pull")
    _add_setting_options(create)
    _add_http_options(create, update=False)
    action("list", "list all queues", _list, takes_name=False)
    action("get", "show a queue's settings", _get)
    update = action("update", "change the given settings of a queue", _update, fields=SETTING_FLAGS)
    _add_setting_options(update)
    _add_http_options(update, update=True)
    action("pause", "stop a queue handing out tasks", _pause)
    action("resume", "let a paused queue hand out tasks again", _resume)
    confirmation.add_option(action("purge", "delete every task of a queue", _purge))
    confirmation.add_option(action("delete", "delete a queue and all its tasks", _delete))
    action("stats", "show a queue's counts and rates", _stats)


def _show_queue(queue, arguments: argparse.Namespace) -> None:
    if arguments.json:
        output.print_json(queue)
    else:
        print(output.queue_details(queue))


def _create(client: Client, arguments: argparse.Namespace) -> None:
    settings = _given_settings(arguments)
    if _http_options_given(arguments):
        settings["http_target"] = _http_target(arguments)
    _show_queue(client.create_queue(arguments.queue, type=arguments.type, **settings), arguments)


def _list(client: Client, arguments: argparse.Namespace) -> None:
    queues = list(client.list_queues())
    if arguments.json:
        output.print_json(queues)
    elif queues:
        print(output.queue_table(queues))
    else:
        print("no queues")


def _get(client: Client, arguments: argparse.Namespace) -> None:
    _show_queue(client.get_queue(arguments.queue), arguments)


def _update(client: Client, arguments: argparse.Namespace) -> None:
    settings = _given_settings(arguments)
    if arguments.no_http_target:
        if _http_options_given(arguments):
            raise UsageError("queue update: --no-http-target cannot be combined with --http-uri, --http-method "
                             "or --http-header")
        settings["http_target"] = None
    elif _http_options_given(arguments):
        # UpdateQueue replaces the whole target: start from the current one, so that the
        # options not given keep their values.
        queue = client.get_queue(arguments.queue)
        settings["http_target"] = _http_target(arguments, queue.http_target if queue.HasField("http_target") else None)
    if not settings:
        # UpdateQueue with an empty mask resets every setting; never what "change nothing" means.
        raise UsageError("queue update: give at least one setting to change (see taskq queue update --help)")
    _show_queue(client.update_queue(arguments.queue, **settings), arguments)


def _pause(client: Client, arguments: argparse.Namespace) -> None:
    queue = client.pause_queue(arguments.queue)
    if arguments.json:
        output.print_json(queue)
    else:
        print(f"paused {queue.name}")


def _resume(client: Client, arguments: argparse.Namespace) -> None:
    queue = client.resume_queue(arguments.queue)
    if arguments.json:
        output.print_json(queue)
    else:
        print(f"resumed {queue.name}")


def _tasks_count(client: Client, queue: str) -> str:
    count = client.get_queue_stats(queue).tasks_count
    return f"{count} task{'' if count == 1 else 's'}"


def _purge(client: Client, arguments: argparse.Namespace) -> None:
    name = queue_name(arguments.queue)
    confirmation.confirm(arguments, f"Delete all {_tasks_count(client, name)} of {name}?", "queue purge")
    response = client.purge_queue(arguments.queue)
    if arguments.json:
        output.print_json(response)
    else:
        print(f"purged {response.purged_count} tasks from {response.queue.name}")


def _delete(client: Client, arguments: argparse.Namespace) -> None:
    name = queue_name(arguments.queue)
    confirmation.confirm(arguments, f"Delete {name} and its {_tasks_count(client, name)}?", "queue delete")
    client.delete_queue(arguments.queue)
    if arguments.json:
        output.print_json({})
    else:
        print(f"deleted {queue_name(arguments.queue)}")


def _stats(client: Client, arguments: argparse.Namespace) -> None:
    stats = client.get_queue_stats(arguments.queue)
    if arguments.json:
        output.print_json(stats)
    else:
        print(output.stats_lines(stats))
