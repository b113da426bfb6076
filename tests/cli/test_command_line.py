"""The `taskq` command line as a whole: options anywhere on the line, the version, usage errors
under --json, and output cut short by `head`."""

from __future__ import annotations

import json
import os
import platform
import subprocess
from importlib import metadata

import pytest

from taskq.cli.main import main
from taskq.client import Client


@pytest.mark.engines("rocksdb")
@pytest.mark.parametrize("arguments", [
    ("--json", "queue", "list"),
    ("queue", "--json", "list"),
    ("queue", "list", "--json"),
])
def test_json_is_understood_anywhere_on_the_line(server, capsys, arguments):
    with Client(server.address) as client:
        client.create_queue("anywhere")
    assert main([*arguments, "--server", server.address]) == 0
    assert [queue["name"] for queue in json.loads(capsys.readouterr().out)] == ["queues/anywhere"]


@pytest.mark.engines("rocksdb")
def test_server_and_timeout_are_understood_before_the_command(server, capsys):
    assert main(["--server", server.address, "--timeout", "5s", "queue", "create", "early", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["name"] == "queues/early"
    # Given on both sides, the later one (after the command) wins.
    assert main(["--server", "127.0.0.1:1", "queue", "get", "early", "--server", server.address]) == 0


def test_timeout_before_the_command_bounds_the_call(capsys):
    status = main(["--timeout", "0.5s", "--server", "127.0.0.1:1", "task", "list", "q"])
    assert status == 1
    assert capsys.readouterr().err.startswith("taskq: UNAVAILABLE: cannot reach the taskq server at 127.0.0.1:1")


@pytest.mark.engines("rocksdb")
def test_health_takes_the_common_options_anywhere(server, capsys):
    assert main(["--json", "--server", server.address, "health", "--timeout", "2s"]) == 0
    assert json.loads(capsys.readouterr().out) == {"server": server.address, "service": "", "status": "SERVING"}


def test_version_option_and_command_print_this_commands_version(capsys):
    with pytest.raises(SystemExit) as exit:
        main(["--version"])
    assert exit.value.code == 0
    line = capsys.readouterr().out
    assert main(["version"]) == 0
    assert capsys.readouterr().out == line
    installed = metadata.version("taskq"), metadata.version("taskq-client")
    assert line == f"taskq {installed[0]} (this command; taskq-client {installed[1]}, Python {platform.python_version()})\n"
    assert main(["version", "--json"]) == 0
    found = json.loads(capsys.readouterr().out)
    assert (found["taskq"], found["taskq-client"], found["python"]) == (*installed, platform.python_version())


def test_a_usage_error_under_json_is_a_json_document_with_status_2(capsys):
    assert main(["--json", "queue", "create", "q", "--rate", "5/x"]) == 2
    captured = capsys.readouterr()
    error = json.loads(captured.err)
    assert (captured.out, error["code"], error["reason"], error["details"]) == ("", "INVALID_ARGUMENT", "USAGE", [])
    assert error["message"].startswith("argument --rate: invalid rate '5/x'")


def test_a_usage_error_without_json_stays_one_line(capsys):
    assert main(["queue", "create", "q", "--rate", "5/x"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("taskq queue create: error: argument --rate: invalid rate '5/x'")
    assert err.endswith("(see taskq queue create --help)\n") and err.count("\n") == 1


@pytest.mark.engines("rocksdb")
def test_task_list_piped_into_head_stops_quietly(server, taskq_bin):
    # Far more output than a pipe holds, so that taskq is still writing when head exits.
    with Client(server.address) as client:
        client.create_queue("many", type="pull")
        client.create_tasks("many", [{"payload": b"x", "tag": f"tag-{index}"} for index in range(400)])
    script = f'"$TASKQ" task list many --json --server {server.address} | head -1; echo "status ${{PIPESTATUS[0]}}"'
    completed = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=60,
                               env={**os.environ, "TASKQ": taskq_bin})
    assert completed.stdout == "[\nstatus 141\n"
    assert completed.stderr == ""


@pytest.mark.engines("rocksdb")
def test_output_to_a_pipe_closed_before_the_first_write_is_quiet(server, taskq_bin):
    with Client(server.address) as client:
        client.create_queue("closed")
    process = subprocess.Popen([taskq_bin, "queue", "list", "--server", server.address],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    process.stdout.close()  # the reader is gone before taskq has even connected
    _, err = process.communicate(timeout=60)
    assert (process.returncode, err) == (141, "")
