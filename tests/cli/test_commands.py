"""`taskq queue ...` and `taskq task ...` against a real server: text and JSON output, errors
and exit statuses."""

from __future__ import annotations

import datetime
import io
import json
import re
import socket
import sys

import pytest

from taskq.cli.main import main


def table_rows(text: str) -> list[list[str]]:
    """The cells of a table's rows (header excluded), split on runs of two or more spaces."""
    return [re.split(r"\s{2,}", line.strip()) for line in text.strip().splitlines()[1:]]


def key_values(text: str) -> dict[str, str]:
    return dict(re.split(r"\s{2,}", line.strip(), maxsplit=1) for line in text.strip().splitlines())


# Queues --------------------------------------------------------------------------------------


def test_queue_create_prints_the_queue_settings(taskq):
    result = taskq("queue", "create", "mail", "--rate", "5/s", "--burst", "10", "--max-attempts", "3",
                   "--min-backoff", "0.5s", "--max-backoff", "2h", "--task-ttl", "2d")
    assert result.status == 0
    shown = key_values(result.out)
    assert shown["name"] == "queues/mail"
    assert shown["type"] == "push"
    assert (shown["rate"], shown["burst"], shown["max attempts"]) == ("5/s", "10", "3")
    assert (shown["min backoff"], shown["max backoff"], shown["task ttl"]) == ("0.5s", "2h", "2d")


def test_queue_create_json_uses_proto_field_names(taskq):
    result = taskq("queue", "create", "mail", "--type", "pull", "--rate", "120/m", "--dispatch-deadline", "30s",
                   "--json")
    queue = result.json()
    assert queue["type"] == "QUEUE_TYPE_PULL"
    assert queue["rate_limits"]["max_dispatches_per_second"] == 2
    assert queue["dispatch_deadline"] == "30s"


def test_queue_list_prints_a_table_of_every_queue(taskq):
    taskq("queue", "create", "a", "--rate", "1/h")
    taskq("queue", "create", "b", "--type", "pull", "--max-attempts", "7")
    result = taskq("queue", "list")
    header = result.out.splitlines()[0].split()
    assert header[:5] == ["NAME", "TYPE", "STATE", "RATE", "BURST"]
    assert table_rows(result.out) == [
        ["queues/a", "push", "running", "1/h", "1", "1000", "unlimited"],
        ["queues/b", "pull", "running", "-", "-", "-", "7"],
    ]


def test_queue_list_json_is_an_array(taskq):
    taskq("queue", "create", "a")
    assert [queue["name"] for queue in taskq("queue", "list", "--json").json()] == ["queues/a"]
    taskq("queue", "delete", "a", "--yes")
    assert taskq("queue", "list", "--json").json() == []


def test_queue_get_shows_one_queue(taskq, pull):
    assert key_values(taskq("queue", "get", "queues/work").out)["type"] == "pull"
    assert taskq("queue", "get", "work", "--json").json()["state"] == "QUEUE_STATE_RUNNING"


def test_queue_update_changes_only_the_given_options(taskq):
    taskq("queue", "create", "mail", "--rate", "5/s", "--burst", "9")
    queue = taskq("queue", "update", "mail", "--rate", "30/m", "--json").json()
    assert queue["rate_limits"]["max_dispatches_per_second"] == 0.5
    assert queue["rate_limits"]["max_burst_size"] == 9


def test_queue_update_rate_unlimited_removes_the_limit(taskq):
    taskq("queue", "create", "mail", "--rate", "5/s")
    queue = taskq("queue", "update", "mail", "--rate", "unlimited", "--json").json()
    assert "max_dispatches_per_second" not in queue["rate_limits"]


def test_queue_update_without_options_is_a_usage_error(taskq, pull):
    result = taskq("queue", "update", "work")
    assert result.status == 2
    assert "at least one setting" in result.err


# HTTP push (public-looking hosts: the server refuses loopback and private ones; the queues are
# paused or empty, so nothing is sent).


@pytest.fixture
def hooks(taskq):
    """A paused push queue "hooks" with an HTTP target."""
    result = taskq("queue", "create", "hooks", "--http-uri", "https://worker.example.com/base", "--http-method", "put",
                   "--http-header", "X-Env=test", "--http-header", "Authorization=Bearer a=b")
    assert result.status == 0, result.err
    assert taskq("queue", "pause", "hooks").status == 0
    return result


def test_queue_create_with_an_http_target_shows_it(taskq, hooks):
    shown = key_values(hooks.out)
    assert (shown["http target"], shown["http method"]) == ("https://worker.example.com/base", "PUT")
    assert (shown["http header X-Env"], shown["http header Authorization"]) == ("test", "Bearer a=b")
    assert key_values(taskq("queue", "get", "hooks").out)["http target"] == "https://worker.example.com/base"
    target = taskq("queue", "get", "hooks", "--json").json()["http_target"]
    assert target == {"uri": "https://worker.example.com/base", "http_method": "HTTP_METHOD_PUT",
                      "headers": {"X-Env": "test", "Authorization": "Bearer a=b"}}


def test_queue_get_says_when_a_push_queue_streams_its_tasks(taskq, pull):
    taskq("queue", "create", "streamed")
    assert key_values(taskq("queue", "get", "streamed").out)["http target"] == "- (tasks are streamed to workers)"
    assert "http target" not in key_values(taskq("queue", "get", "work").out)
    assert "http_target" not in taskq("queue", "get", "streamed", "--json").json()


def test_queue_update_http_options_change_only_what_is_given(taskq, hooks):
    target = taskq("queue", "update", "hooks", "--http-uri", "https://worker.example.com/v2", "--json").json()["http_target"]
    assert target == {"uri": "https://worker.example.com/v2", "http_method": "HTTP_METHOD_PUT",
                      "headers": {"X-Env": "test", "Authorization": "Bearer a=b"}}
    target = taskq("queue", "update", "hooks", "--http-method", "PATCH", "--json").json()["http_target"]
    assert (target["uri"], target["http_method"]) == ("https://worker.example.com/v2", "HTTP_METHOD_PATCH")
    # Headers given replace the whole set.
    target = taskq("queue", "update", "hooks", "--http-header", "X-Env=prod", "--json").json()["http_target"]
    assert target["headers"] == {"X-Env": "prod"} and target["uri"] == "https://worker.example.com/v2"


def test_queue_update_no_http_target_removes_it(taskq, hooks):
    queue = taskq("queue", "update", "hooks", "--no-http-target", "--json").json()
    assert "http_target" not in queue
    added = taskq("queue", "update", "hooks", "--http-uri", "https://worker.example.com/again", "--max-attempts", "3")
    shown = key_values(added.out)
    assert (shown["http target"], shown["max attempts"]) == ("https://worker.example.com/again", "3")
    assert shown["http method"] in ("POST (default)", "POST")


def test_queue_update_no_http_target_with_other_http_options_is_a_usage_error(taskq, hooks):
    result = taskq("queue", "update", "hooks", "--no-http-target", "--http-uri", "https://worker.example.com/")
    assert result.status == 2
    assert "--no-http-target cannot be combined" in result.err


def test_task_add_with_an_http_request_shows_it(taskq, hooks):
    result = taskq("task", "add", "hooks", "--name", "t1", "--payload", '{"a": 1}', "--url", "/path?x=1",
                   "--method", "put", "--header", "Content-Type=application/json")
    assert result.status == 0, result.err
    shown = key_values(result.out)
    assert (shown["http url"], shown["http method"]) == ("/path?x=1", "PUT")
    assert shown["http header Content-Type"] == "application/json"
    assert shown["responses"] == "0"
    fetched = taskq("task", "get", "queues/hooks/tasks/t1", "--json").json()
    assert fetched["http_request"] == {"url": "/path?x=1", "http_method": "HTTP_METHOD_PUT",
                                       "headers": {"Content-Type": "application/json"}}
    assert fetched["response_count"] == 0
    assert key_values(taskq("task", "get", "queues/hooks/tasks/t1").out)["http url"] == "/path?x=1"


def test_task_add_with_only_a_method_takes_the_queues_url(taskq, hooks):
    shown = key_values(taskq("task", "add", "hooks", "--method", "delete").out)
    assert (shown["http url"], shown["http method"]) == ("(the queue's)", "DELETE")
    plain = key_values(taskq("task", "add", "hooks", "--payload", "x").out)
    assert "http url" not in plain and "responses" not in plain


def test_task_add_with_an_http_request_on_a_streamed_queue_is_refused(taskq):
    taskq("queue", "create", "streamed")
    result = taskq("task", "add", "streamed", "--url", "/path")
    assert result.status == 1
    assert "NOT_AN_HTTP_QUEUE" in result.err

def test_queue_pause_and_resume(taskq, pull):
    assert taskq("queue", "pause", "work").out == "paused queues/work\n"
    assert taskq("queue", "get", "work", "--json").json()["state"] == "QUEUE_STATE_PAUSED"
    assert taskq("queue", "resume", "work", "--json").json()["state"] == "QUEUE_STATE_RUNNING"


def test_queue_purge_reports_the_count(taskq, pull):
    taskq("task", "add", "work")
    taskq("task", "add", "work")
    assert taskq("queue", "purge", "work", "--yes").out == "purged 2 tasks from queues/work\n"
    taskq("task", "add", "work")
    assert taskq("queue", "purge", "work", "--json", "-y").json()["purged_count"] == 1


def test_queue_delete_removes_the_queue(taskq, pull):
    assert taskq("queue", "delete", "work", "--yes").out == "deleted queues/work\n"
    assert taskq("queue", "get", "work").status == 1


def test_queue_delete_of_a_dead_letter_queue_in_use_is_refused_naming_who_uses_it(taskq, pull):
    assert taskq("queue", "create", "mail", "--dead-letter-queue", "work").status == 0
    refused = taskq("queue", "delete", "work", "--yes")
    assert (refused.status, refused.err) == (1, "taskq: FAILED_PRECONDITION QUEUE_IN_USE: queue queues/work is the "
                                                "dead-letter queue of queues/mail; change their dead_letter_queue first\n")
    assert taskq("queue", "get", "work").status == 0
    taskq("queue", "update", "mail", "--dead-letter-queue", "")
    assert taskq("queue", "delete", "work", "--yes").status == 0


def test_dead_letter_cycles_are_refused_with_the_cycle(taskq, pull):
    taskq("queue", "create", "b", "--dead-letter-queue", "work")
    taskq("queue", "create", "c", "--dead-letter-queue", "b")
    cycle = taskq("queue", "update", "work", "--dead-letter-queue", "c")
    assert (cycle.status, cycle.err) == (1, "taskq: INVALID_ARGUMENT DEAD_LETTER_QUEUE_CYCLE: --dead-letter-queue: would "
                                            "make a cycle of dead-letter queues: queues/work -> queues/c -> queues/b -> "
                                            "queues/work\n")
    itself = taskq("queue", "update", "work", "--dead-letter-queue", "work")
    assert "a queue cannot be its own dead-letter queue" in itself.err
    assert taskq("queue", "get", "work", "--json").json()["dead_letter_queue"] == ""


def test_queue_stats_prints_key_value_lines_and_json(taskq, pull):
    taskq("task", "add", "work")
    taskq("task", "add", "work", "--delay", "1h")
    lines = key_values(taskq("queue", "stats", "work").out)
    assert (lines["tasks_count"], lines["ready_count"], lines["scheduled_count"]) == ("2", "1", "1")
    stats = taskq("queue", "stats", "work", "--json").json()
    assert (stats["tasks_count"], stats["leased_count"]) == (2, 0)  # zero counts are present too


# Tasks ---------------------------------------------------------------------------------------


def test_task_add_prints_the_created_task(taskq, pull):
    result = taskq("task", "add", "work", "--payload", "hi", "--name", "t1", "--tag", "a",
                   "--attribute", "k=v=w", "--max-attempts", "2")
    shown = key_values(result.out)
    assert shown["name"] == "queues/work/tasks/t1"
    assert (shown["state"], shown["tag"], shown["attribute k"], shown["max attempts"]) == ("ready", "a", "v=w", "2")
    task = taskq("task", "get", "queues/work/tasks/t1", "--full", "--json").json()
    assert task["payload"] == "aGk="  # base64 of "hi"
    assert task["attributes"] == {"k": "v=w"}


def test_task_add_with_eta_or_delay_schedules_the_task(taskq, pull):
    eta = (datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert taskq("task", "add", "work", "--eta", eta, "--json").json()["schedule_time"] == eta
    assert taskq("task", "add", "work", "--delay", "10m", "--json").json()["state"] == "TASK_STATE_SCHEDULED"


def test_task_add_reads_the_payload_from_a_file_or_stdin(taskq, pull, tmp_path, monkeypatch):
    path = tmp_path / "payload.bin"
    path.write_bytes(b"\xff\xfebinary")
    taskq("task", "add", "work", "--payload-file", str(path), "--name", "file")
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"from stdin")))
    taskq("task", "add", "work", "--payload-file", "-", "--name", "stdin")
    assert key_values(taskq("task", "get", "queues/work/tasks/file", "--full").out)["payload"] == (
        "<8 bytes, not UTF-8>")
    assert key_values(taskq("task", "get", "queues/work/tasks/stdin", "--full").out)["payload"] == "from stdin"


def test_task_add_with_an_unreadable_payload_file_is_a_usage_error(taskq, pull, tmp_path):
    result = taskq("task", "add", "work", "--payload-file", str(tmp_path / "missing"))
    assert result.status == 2
    assert result.err.startswith("taskq: cannot read --payload-file")


def test_task_list_prints_a_table(taskq, pull):
    taskq("task", "add", "work", "--payload", "12345", "--name", "a", "--tag", "x")
    taskq("task", "add", "work", "--name", "b", "--delay", "1h")
    rows = table_rows(taskq("task", "list", "work").out)
    assert [row[:4] for row in rows] == [["queues/work/tasks/a", "ready", "0", "x"],
                                         ["queues/work/tasks/b", "scheduled", "0", "-"]]
    assert rows[0][5] == "-"  # payloads are not fetched without --full
    full = table_rows(taskq("task", "list", "work", "--full", "--state", "ready").out)
    assert [(row[0], row[5]) for row in full] == [("queues/work/tasks/a", "5 B")]


def test_task_list_filters_limits_and_prints_json(taskq, pull):
    for name in ("a", "b", "c"):
        taskq("task", "add", "work", "--name", name, "--tag", "odd" if name != "b" else "even")
    assert [task["name"] for task in taskq("task", "list", "work", "--tag", "odd", "--json").json()] == [
        "queues/work/tasks/a", "queues/work/tasks/c"]
    assert len(taskq("task", "list", "work", "--limit", "2", "--json").json()) == 2
    filtered = taskq("task", "list", "work", "--filter", 'tag = "even"', "--json").json()
    assert [task["name"] for task in filtered] == ["queues/work/tasks/b"]
    assert "payload" not in filtered[0]


def test_task_lease_prints_tokens_and_text_payloads(taskq, pull):
    taskq("task", "add", "work", "--payload", "do it", "--name", "t1")
    result = taskq("task", "lease", "work", "--lease", "30s", "--max", "10")
    lines = result.out.splitlines()
    assert lines[0] == "queues/work/tasks/t1"
    shown = key_values("\n".join(lines[1:]))
    assert shown["payload"] == "do it"
    assert shown["state"] == "leased" and len(shown["lease token"]) > 0


def test_task_lease_json_includes_the_lease_token(taskq, pull):
    taskq("task", "add", "work", "--tag", "a")
    taskq("task", "add", "work", "--tag", "b")
    [task] = taskq("task", "lease", "work", "--tag", "b", "--max", "5", "--json").json()
    assert task["tag"] == "b" and task["lease_token"]
    assert taskq("task", "lease", "work", "--tag", "b", "--json").json() == []


def test_task_lease_with_nothing_ready_says_so(taskq, pull):
    result = taskq("task", "lease", "work", "--wait", "0.1s")
    assert (result.status, result.out) == (0, "no task was ready\n")


def test_task_delete_with_a_stale_lease_token_fails_with_lease_lost(taskq, pull):
    taskq("task", "add", "work", "--name", "t1")
    [task] = taskq("task", "lease", "work", "--json").json()
    assert taskq("task", "delete", task["name"]).out == "deleted queues/work/tasks/t1\n"
    result = taskq("task", "delete", task["name"], "--lease-token", task["lease_token"])
    assert result.status == 1
    assert result.err.startswith("taskq: FAILED_PRECONDITION LEASE_LOST: the lease on queues/work/tasks/t1")


def test_task_lease_modify_extends_the_lease_under_the_same_token(taskq, pull):
    taskq("task", "add", "work", "--name", "t1")
    [task] = taskq("task", "lease", "work", "--lease", "30s", "--json").json()
    result = taskq("task", "lease-modify", task["name"], "--lease-token", task["lease_token"], "--lease", "2h")
    shown = key_values(result.out)
    assert (result.status, shown["state"], shown["lease token"]) == (0, "leased", task["lease_token"])
    expires = datetime.datetime.fromisoformat(shown["lease expires"])
    remaining = expires - datetime.datetime.now(datetime.UTC)
    assert datetime.timedelta(minutes=119) < remaining <= datetime.timedelta(hours=2)


def test_task_lease_modify_release_makes_the_task_ready_and_the_token_stale(taskq, pull):
    taskq("task", "add", "work", "--name", "t1")
    [task] = taskq("task", "lease", "work", "--json").json()
    released = taskq("task", "lease-modify", task["name"], "--lease-token", task["lease_token"], "--release", "--json")
    assert (released.json()["state"], released.json()["attempt_count"]) == ("TASK_STATE_READY", 1)
    again = taskq("task", "lease-modify", task["name"], "--lease-token", task["lease_token"], "--lease", "1m")
    assert again.status == 1 and "FAILED_PRECONDITION LEASE_LOST" in again.err


def test_task_lease_modify_needs_a_token_and_either_a_lease_or_release(taskq, pull):
    for arguments in (("--lease", "1m"), ("--lease-token", "x"), ("--lease-token", "x", "--lease", "1m", "--release")):
        result = taskq("task", "lease-modify", "queues/work/tasks/t1", *arguments)
        assert result.status == 2 and "taskq task lease-modify: error:" in result.err


def test_task_run_makes_a_scheduled_task_ready(taskq, pull):
    taskq("task", "add", "work", "--name", "t1", "--delay", "1h")
    assert key_values(taskq("task", "run", "queues/work/tasks/t1").out)["state"] == "ready"


def test_task_get_without_full_leaves_the_payload_out(taskq, pull):
    taskq("task", "add", "work", "--name", "t1", "--payload", "secret")
    assert "secret" not in taskq("task", "get", "queues/work/tasks/t1").out
    assert "payload" not in taskq("task", "get", "queues/work/tasks/t1", "--json").json()


# Errors --------------------------------------------------------------------------------------


def test_a_missing_queue_is_one_line_on_stderr_and_status_1(taskq):
    result = taskq("task", "add", "nope", "--payload", "x")
    assert result.status == 1
    assert result.out == ""
    assert result.err == "taskq: NOT_FOUND QUEUE_NOT_FOUND: queue queues/nope does not exist\n"


def test_a_refused_call_under_json_is_a_json_document_on_stderr_with_the_same_status(taskq):
    result = taskq("task", "add", "nope", "--payload", "x", "--json")
    assert (result.status, result.out) == (1, "")
    error = json.loads(result.err)
    assert (error["code"], error["reason"]) == ("NOT_FOUND", "QUEUE_NOT_FOUND")
    assert error["message"] == "queue queues/nope does not exist"
    [info] = [detail for detail in error["details"] if detail["@type"].endswith("google.rpc.ErrorInfo")]
    assert (info["reason"], info["domain"], info["metadata"]) == ("QUEUE_NOT_FOUND", "taskq.dev", {"queue": "queues/nope"})


def test_an_unreachable_server_under_json_has_a_code_but_no_reason(capsys):
    status = main(["queue", "list", "--server", "127.0.0.1:1", "--timeout", "5s", "--json"])
    error = json.loads(capsys.readouterr().err)
    assert status == 1
    assert (error["code"], error["reason"], error["details"]) == ("UNAVAILABLE", "", [])
    assert error["message"].startswith("cannot reach the taskq server at 127.0.0.1:1")


@pytest.mark.parametrize("arguments", [
    ("queue", "create", "q", "--rate", "5/x"),
    ("queue", "create", "q", "--rate", "0/s"),
    ("queue", "create", "q", "--min-backoff", "soon"),
    ("queue", "update", "q", "--task-ttl=-1d"),
    ("task", "add", "q", "--delay", "3 weeks"),
    ("task", "add", "q", "--eta", "tomorrow"),
    ("task", "list", "q", "--state", "done"),
    ("queue", "create", "q", "--http-method", "FETCH"),
    ("queue", "create", "q", "--http-header", "X-Env"),
    ("queue", "update", "q", "--http-header", "X Env=1"),
    ("task", "add", "q", "--method", "connect"),
    ("task", "add", "q", "--header", "=value"),
])
def test_invalid_option_values_are_one_line_and_status_2(taskq, arguments):
    result = taskq(*arguments)
    assert result.status == 2
    assert result.out == ""
    assert len(result.err.strip().splitlines()) == 1
    assert "invalid" in result.err


@pytest.mark.parametrize(("arguments", "message"), [
    (("task", "lease", "work", "--lease", "8d"), "DURATION_OUT_OF_RANGE: --lease: must be at most 7d, got 8d"),
    (("task", "lease", "work", "--max", "2000"), "VALUE_OUT_OF_RANGE: --max: must be at most 1000, got 2000"),
    (("task", "lease", "work", "--wait", "90s"), "DURATION_OUT_OF_RANGE: --wait: must be at most 1m, got 90s"),
    (("task", "lease-modify", "queues/work/tasks/t", "--lease-token", "x", "--lease", "8d"),
     "DURATION_OUT_OF_RANGE: --lease: must be at most 7d, got 8d"),
    (("task", "add", "work", "--delay", "400d"), "SCHEDULE_TIME_TOO_FAR: --delay: is more than 365 days ahead, got 400d"),
    (("queue", "create", "q", "--dispatch-deadline", "1s"),
     "DURATION_OUT_OF_RANGE: --dispatch-deadline: must be at least 15s, got 1s"),
    (("queue", "update", "work", "--max-backoff", "40d"), "DURATION_OUT_OF_RANGE: --max-backoff: must be at most 30d, got 40d"),
    (("queue", "create", "q", "--max-attempts", "100000000"),
     "VALUE_OUT_OF_RANGE: --max-attempts: must be at most 1000000, got 100000000"),
    (("queue", "create", "q", "--min-backoff", "2h", "--max-backoff", "1h"),
     "MIN_BACKOFF_ABOVE_MAX: --min-backoff: must not exceed --max-backoff, got 2h"),
])
def test_a_value_the_server_refuses_is_named_by_its_option_in_its_units(taskq, pull, arguments, message):
    result = taskq(*arguments)
    assert (result.status, result.err) == (1, f"taskq: INVALID_ARGUMENT {message}\n")


def test_a_renamed_error_under_json_keeps_the_servers_field_in_its_details(taskq, pull):
    error = json.loads(taskq("task", "lease", "work", "--lease", "8d", "--json").err)
    assert error["message"] == "--lease: must be at most 7d, got 8d"
    [bad_request] = [detail for detail in error["details"] if detail["@type"].endswith("google.rpc.BadRequest")]
    assert bad_request["field_violations"][0]["field"] == "lease_duration"


def test_an_unreachable_server_is_one_line_and_status_1(capsys):
    status = main(["queue", "list", "--server", "127.0.0.1:1", "--timeout", "5s"])
    err = capsys.readouterr().err
    assert status == 1
    assert err.startswith("taskq: UNAVAILABLE: cannot reach the taskq server at 127.0.0.1:1")
    assert len(err.strip().splitlines()) == 1


def test_a_server_that_never_answers_fails_at_the_deadline_in_one_line(capsys):
    # A socket that accepts connections but never speaks HTTP/2, like a hung server.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        address = f"127.0.0.1:{silent.getsockname()[1]}"
        status = main(["queue", "list", "--server", address, "--timeout", "0.5s"])
    err = capsys.readouterr().err
    assert status == 1
    assert err == f"taskq: DEADLINE_EXCEEDED: no answer from the taskq server at {address} within 0.5s " \
                  "(is it reachable? --timeout waits longer)\n"


def test_the_server_address_defaults_to_taskq_server(server, capsys, monkeypatch):
    monkeypatch.setenv("TASKQ_SERVER", server.address)
    assert main(["queue", "create", "env", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["name"] == "queues/env"


# End to end ----------------------------------------------------------------------------------


def test_a_task_goes_from_add_to_lease_to_acknowledged(taskq):
    assert taskq("queue", "create", "flow", "--type", "pull").status == 0
    created = taskq("task", "add", "flow", "--payload", "work item", "--json").json()
    [leased] = taskq("task", "lease", "flow", "--lease", "60s", "--json").json()
    assert leased["name"] == created["name"]
    deleted = taskq("task", "delete", leased["name"], "--lease-token", leased["lease_token"])
    assert (deleted.status, deleted.out) == (0, f"acknowledged {leased['name']}\n")
    stats = taskq("queue", "stats", "flow", "--json").json()
    assert (stats["tasks_count"], stats["executed_last_minute"]) == (0, 1)


def test_health_reports_a_serving_server_and_exits_zero(server, capsys):
    from taskq.cli.main import main

    assert main(["health", "--server", server.address]) == 0
    assert "is SERVING" in capsys.readouterr().out
    assert main(["health", "--server", server.address, "--service", "taskq.v1.TaskService"]) == 0


def test_health_of_an_unknown_service_or_an_unreachable_server_exits_one(server, capsys):
    from taskq.cli.main import main

    assert main(["health", "--server", server.address, "--service", "no.such.Service"]) == 1
    assert "NOT_FOUND" in capsys.readouterr().err
    assert main(["health", "--server", "127.0.0.1:1", "--timeout", "0.5"]) == 1
    error = capsys.readouterr().err
    assert "UNAVAILABLE" in error or "DEADLINE_EXCEEDED" in error
