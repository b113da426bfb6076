"""The Python client sends bearer tokens (`token`, `token_file`, TASKQ_TOKEN, TASKQ_TOKEN_FILE)
as `authorization: Bearer` on every call, Worker streams and AsyncClient included, and refuses
to send one in plain text to another machine."""

from __future__ import annotations

import asyncio
import os
import threading

import pytest
from support.auth_files import TokensFile

from harness import ServerHarness, eventually
from taskq.client import AsyncClient, Client, InvalidToken, PlaintextToken, TlsSettings, Unauthenticated, Worker
from taskq.client.bearer import bearer_token


@pytest.fixture
def tokens(tmp_path) -> dict[str, str]:
    file = TokensFile(tmp_path / "tokens.yaml")
    return {"file": str(file.path), "admin": file.token("ops", "admin"), "worker": file.token("mailer", "worker=mail")}


@pytest.fixture
def auth_server(tmp_path, tokens):
    harness = ServerHarness(str(tmp_path / "data"), auth_tokens_file=tokens["file"])
    yield harness
    harness.close()


@pytest.fixture
def no_token_environment(monkeypatch):
    monkeypatch.delenv("TASKQ_TOKEN", raising=False)
    monkeypatch.delenv("TASKQ_TOKEN_FILE", raising=False)


def test_a_client_with_a_token_calls_a_server_that_checks_callers(auth_server, tokens, no_token_environment):
    with Client(auth_server.address, token=tokens["admin"]) as client:
        client.create_queue("mail", type="push")
        assert [q.name for q in client.list_queues()] == ["queues/mail"]
    with Client(auth_server.address, call_retry=None) as anonymous:
        with pytest.raises(Unauthenticated):
            list(anonymous.list_queues())


def test_the_environments_token_or_token_file_is_used_when_none_is_given(auth_server, tokens, monkeypatch, tmp_path):
    monkeypatch.setenv("TASKQ_TOKEN", tokens["admin"])
    with Client(auth_server.address) as client:
        assert list(client.list_queues()) == []
    token_file = tmp_path / "token"
    token_file.write_text(tokens["admin"] + "\n")
    monkeypatch.delenv("TASKQ_TOKEN")
    monkeypatch.setenv("TASKQ_TOKEN_FILE", str(token_file))
    with Client(auth_server.address) as client:
        assert list(client.list_queues()) == []


def test_a_token_file_is_read_again_when_it_is_replaced(auth_server, tokens, tmp_path, no_token_environment):
    token_file = tmp_path / "token"
    token_file.write_text("taskq_revoked\n")
    with Client(auth_server.address, token_file=str(token_file), call_retry=None) as client:
        with pytest.raises(Unauthenticated):
            list(client.list_queues())
        replacement = tmp_path / "token.new"
        replacement.write_text(tokens["admin"])
        os.replace(replacement, token_file)
        assert list(client.list_queues()) == []


def test_a_worker_streams_with_its_clients_token(auth_server, tokens, run_in_thread, no_token_environment):
    with Client(auth_server.address, token=tokens["admin"]) as admin:
        admin.create_queue("mail", type="push")
        admin.create_task("mail", b"hello")
    handled = []
    done = threading.Event()

    def handle(task) -> None:
        handled.append(task.payload)
        done.set()

    with Client(auth_server.address, token=tokens["worker"]) as client:
        run_in_thread(Worker(client, "mail", handle))
        assert done.wait(10)
    assert handled == [b"hello"]


def test_a_worker_with_a_token_of_its_own_and_an_async_client(auth_server, tokens, run_in_thread, no_token_environment):
    async def create() -> None:
        async with AsyncClient(auth_server.address, token=tokens["admin"]) as client:
            await client.create_queue("mail", type="push")
            await client.create_task("mail", b"from asyncio")

    asyncio.run(create())
    handled: list[bytes] = []
    run_in_thread(Worker(auth_server.address, "mail", lambda task: handled.append(task.payload), token=tokens["worker"]))
    eventually(lambda: handled == [b"from asyncio"], seconds=10)


@pytest.mark.parametrize("address", ["10.1.2.3:50051", "taskq.example.com", "dns:///taskq.internal:50051",
                                     "http://taskq.example.com"])
def test_a_token_is_refused_in_plain_text_to_another_machine(address, no_token_environment):
    with pytest.raises(PlaintextToken, match="refusing to send a token in plain text to .*anyone on the way could copy"):
        Client(address, token="taskq_x")
    with pytest.raises(PlaintextToken):
        Worker(address, "push", lambda task: None, token="taskq_x")
    Client(address, token="taskq_x", allow_plaintext_token=True).close()


@pytest.mark.parametrize("address, tls", [("127.0.0.1:50051", None), ("localhost", None), ("[::1]:1", None),
                                          ("unix:/tmp/taskq.sock", None), ("https://taskq.example.com", None),
                                          ("taskq.example.com:50051", TlsSettings())])
def test_a_token_goes_over_tls_or_to_this_machine(address, tls, no_token_environment):
    Client(address, token="taskq_x", tls=tls).close()


def test_tokens_that_cannot_be_sent_are_refused_when_the_client_is_made(tmp_path, no_token_environment):
    with pytest.raises(InvalidToken, match="one word"):
        Client("127.0.0.1:1", token="two words")
    with pytest.raises(InvalidToken, match="cannot read the token file"):
        Client("127.0.0.1:1", token_file=str(tmp_path / "missing"))
    with pytest.raises(InvalidToken, match="not both"):
        bearer_token("a", "b")
