"""The CLI's TLS options against a real server: --ca-file, --cert-file, --key-file and
--server-name (or TASKQ_CA_FILE, ...), https:// addresses, and one line with exit status 2
for an address or TLS setting that cannot be used."""

from __future__ import annotations

import pytest
from support.certificates import ServerFiles

from harness import ServerHarness
from taskq.cli.main import main

TLS_VARIABLES = ("TASKQ_SERVER", "TASKQ_CA_FILE", "TASKQ_CERT_FILE", "TASKQ_KEY_FILE", "TASKQ_SERVER_NAME")


@pytest.fixture
def files(tmp_path) -> ServerFiles:
    return ServerFiles(tmp_path).with_client_ca()


@pytest.fixture
def tls_server(tmp_path, files, monkeypatch):
    for variable in TLS_VARIABLES:
        monkeypatch.delenv(variable, raising=False)
    harness = ServerHarness(str(tmp_path / "data"), **files.settings())
    yield harness
    harness.close()


@pytest.fixture
def taskq(capsys):
    """Runs `taskq ARGS...` in this process, with no --server added (unlike conftest's)."""

    def run(*arguments: str) -> tuple[int, str, str]:
        try:
            status = main(list(arguments))
        except SystemExit as exit:
            status = exit.code
        captured = capsys.readouterr()
        return status, captured.out, captured.err

    return run


def test_queue_and_task_commands_work_over_mtls_with_the_tls_options(tls_server, files, taskq):
    cert_file, key_file = files.client_files()
    tls = ["--server", f"127.0.0.1:{tls_server.port}", "--ca-file", files.ca_file,
           "--cert-file", cert_file, "--key-file", key_file]
    assert taskq("queue", "create", "work", "--type", "pull", *tls)[0] == 0
    assert taskq("task", "add", "work", "--payload", "hello", *tls)[0] == 0
    status, out, _ = taskq(*tls, "task", "lease", "work")  # before the command too, like --server
    assert status == 0 and "hello" in out


def test_the_tls_options_come_from_the_environment(tls_server, files, taskq, monkeypatch):
    cert_file, key_file = files.client_files()
    monkeypatch.setenv("TASKQ_SERVER", f"https://127.0.0.1:{tls_server.port}")
    monkeypatch.setenv("TASKQ_CA_FILE", files.ca_file)
    monkeypatch.setenv("TASKQ_CERT_FILE", cert_file)
    monkeypatch.setenv("TASKQ_KEY_FILE", key_file)
    monkeypatch.setenv("TASKQ_SERVER_NAME", "localhost")
    status, out, err = taskq("queue", "list", "--json")
    assert (status, out.strip(), err) == (0, "[]", "")


def test_without_a_client_certificate_the_server_is_not_reached(tls_server, files, taskq):
    status, _, err = taskq("queue", "list", "--server", f"127.0.0.1:{tls_server.port}", "--ca-file", files.ca_file)
    assert status == 1
    assert err.startswith("taskq: UNAVAILABLE: cannot reach the taskq server at 127.0.0.1:")


@pytest.mark.parametrize("options, message", [
    (["--server", "localhost:http"], "taskq: invalid server address 'localhost:http': the port must be a number"),
    (["--server", "grpc://localhost"], "taskq: invalid server address 'grpc://localhost': grpc:// is not supported"),
    (["--key-file", "client-key.pem"], "taskq: --cert-file and --key-file go together"),
    (["--ca-file", "/nonexistent/ca.pem"], "taskq: cannot read ca_file /nonexistent/ca.pem: No such file"),
    (["--server", "http://localhost:1", "--ca-file", "ca.pem"], "http:// means plain text, but TLS settings were given"),
])
def test_an_unusable_address_or_tls_option_is_one_line_and_status_2(taskq, monkeypatch, options, message):
    for variable in TLS_VARIABLES:
        monkeypatch.delenv(variable, raising=False)
    status, out, err = taskq("queue", "list", *options)
    assert status == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and message in err


def test_health_probes_a_tls_server_with_the_tls_options_and_fails_without_them(tls_server, files, taskq):
    cert_file, key_file = files.client_files()
    address = f"127.0.0.1:{tls_server.port}"
    status, out, _ = taskq("health", "--server", address, "--ca-file", files.ca_file,
                           "--cert-file", cert_file, "--key-file", key_file)
    assert status == 0 and "SERVING" in out
    status, _, err = taskq("health", "--server", address, "--timeout", "2")
    assert status == 1 and "UNAVAILABLE" in err
