"""The CLI and tokens: `taskq token create` makes a token and the entry of the tokens file, and
every client command sends a token (--token, --token-file, TASKQ_TOKEN, TASKQ_TOKEN_FILE)."""

from __future__ import annotations

import json

import pytest
import yaml

from harness import ServerHarness
from taskq.cli.main import main


@pytest.fixture
def run(capsys, monkeypatch):
    monkeypatch.delenv("TASKQ_TOKEN", raising=False)
    monkeypatch.delenv("TASKQ_TOKEN_FILE", raising=False)

    def run(*arguments: str) -> tuple[int, str, str]:
        status = main(list(arguments))
        captured = capsys.readouterr()
        return status, captured.out, captured.err

    return run


def test_a_token_made_by_token_create_and_pasted_into_the_file_lets_the_cli_call(run, tmp_path, monkeypatch):
    status, out, _ = run("token", "create", "deployer", "--role", "admin", "--role", "worker=mail-*", "--json")
    assert status == 0
    made = json.loads(out)
    assert made["token"].startswith("taskq_") and made["token"] not in json.dumps(made["entry"])
    assert made["entry"]["name"] == "deployer" and made["entry"]["roles"] == ["admin=*", "worker=mail-*"]
    tokens = tmp_path / "tokens.yaml"
    tokens.write_text(yaml.safe_dump({"tokens": [made["entry"]]}))
    token_file = tmp_path / "token"
    token_file.write_text(made["token"])
    server = ServerHarness(str(tmp_path / "data"), auth_tokens_file=str(tokens))
    try:
        address = ["--server", server.address]
        assert run("queue", "create", "mail-in", "--token-file", str(token_file), *address)[0] == 0
        assert run("queue", "list", "--token", made["token"], *address)[1].count("queues/mail-in") == 1
        monkeypatch.setenv("TASKQ_TOKEN_FILE", str(token_file))
        assert run("--json", "queue", "stats", "mail-in", *address)[0] == 0
        monkeypatch.delenv("TASKQ_TOKEN_FILE")
        status, _, err = run("queue", "list", *address)
        assert status == 1 and "UNAUTHENTICATED" in err
    finally:
        server.close()


def test_token_create_prints_the_token_once_and_the_entry_to_paste(run):
    status, out, _ = run("token", "create", "ci", "--role", "enqueuer=builds", "--expires", "30d")
    assert status == 0
    lines = out.splitlines()
    token = lines[1].strip()
    entry = yaml.safe_load("\n".join(lines[3:]))[0]
    assert out.count(token) == 1 and entry["roles"] == ["enqueuer=builds"] and entry["expires"].endswith("Z")


@pytest.mark.parametrize("arguments, words", [
    (["--role", "boss"], "the role must be one of"),
    ([], "give at least one --role"),
])
def test_token_create_refuses_roles_it_does_not_know(run, arguments, words):
    status, _, err = run("token", "create", "x", *arguments)
    assert status == 2 and words in err


def test_a_token_is_not_sent_in_plain_text_to_another_machine_unless_allowed(run):
    status, _, err = run("queue", "list", "--server", "10.1.2.3:50051", "--token", "taskq_x")
    assert status == 2 and "refusing to send a token in plain text to 10.1.2.3:50051" in err
    status, _, err = run("queue", "list", "--server", "10.1.2.3:1", "--token", "taskq_x", "--allow-plaintext-token",
                         "--timeout", "0.2s")
    assert status == 1 and "refusing" not in err  # it tried (and nothing listens there)
