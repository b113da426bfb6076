"""The Python client over TLS against a real server: unary calls, the push Worker's
StreamTasks, the asyncio client, https:// addresses, a server name other than the address's
host, mTLS, and settings that cannot be used failing before any connection."""

from __future__ import annotations

import asyncio
import threading

import pytest
from support.certificates import CertificateAuthority, ServerFiles

from client_support import eventually
from harness import ServerHarness
from taskq.client import AsyncClient, Client, InvalidAddress, InvalidTlsSettings, TlsSettings, Unavailable, Worker


@pytest.fixture
def files(tmp_path) -> ServerFiles:
    return ServerFiles(tmp_path).with_client_ca()


@pytest.fixture
def tls_server(tmp_path, files):
    """A server whose ports require TLS with a client certificate from `files.client_ca`."""
    harness = ServerHarness(str(tmp_path / "data"), **files.settings())
    yield harness
    harness.close()


@pytest.fixture
def tls(files) -> TlsSettings:
    cert_file, key_file = files.client_files()
    return TlsSettings(ca_file=files.ca_file, cert_file=cert_file, key_file=key_file)


def test_unary_calls_create_lease_and_acknowledge_over_mtls(tls_server, tls):
    with Client(f"127.0.0.1:{tls_server.port}", tls=tls) as client:
        client.create_queue("work", type="pull")
        client.create_task("work", b"hello")
        [task] = client.lease_tasks("work", lease_duration=60)
        assert task.payload == b"hello"
        client.delete_task(task)
        assert client.get_queue_stats("work").tasks_count == 0


def test_a_worker_given_a_tls_client_streams_tasks_over_its_own_channel(tls_server, tls, run_in_thread):
    handled: list[bytes] = []
    lock = threading.Lock()

    def handler(task):
        with lock:
            handled.append(task.payload)

    with Client(f"127.0.0.1:{tls_server.port}", tls=tls) as client:
        client.create_queue("push", type="push")
        for number in range(5):
            client.create_task("push", str(number).encode())
        run_in_thread(Worker(client, "push", handler, concurrency=2))
        eventually(lambda: len(handled) == 5, 10, "the worker did not handle the tasks")
        eventually(lambda: client.get_queue_stats("push").tasks_count == 0, 10, "tasks were not acknowledged")
    assert sorted(handled) == [str(number).encode() for number in range(5)]


def test_a_worker_given_an_address_and_tls_settings_streams_tasks(tls_server, tls, run_in_thread):
    handled = threading.Event()
    with Client(f"127.0.0.1:{tls_server.port}", tls=tls) as client:
        client.create_queue("push", type="push")
        client.create_task("push", b"one")
    run_in_thread(Worker(f"localhost:{tls_server.port}", "push", lambda task: handled.set(), tls=tls))
    assert handled.wait(10)


def test_the_async_client_calls_over_mtls(tls_server, tls):
    async def scenario() -> int:
        async with AsyncClient(f"https://localhost:{tls_server.port}", tls=tls) as client:
            await client.create_queue("work", type="pull")
            await client.create_task("work", b"hello")
            return (await client.get_queue_stats("work")).tasks_count

    assert asyncio.run(scenario()) == 1


def test_the_server_name_setting_checks_the_certificate_against_another_name(tmp_path):
    ca = CertificateAuthority()
    cert_file, key_file = ca.server("taskq.internal").write(tmp_path, "server")
    ca_file = ca.write(tmp_path)
    server = ServerHarness(str(tmp_path / "data"), tls_cert_file=cert_file, tls_key_file=key_file)
    try:
        address = f"127.0.0.1:{server.port}"
        with Client(address, tls=TlsSettings(ca_file=ca_file), call_retry=None, timeout=10) as client:
            with pytest.raises(Unavailable):  # the certificate is not for 127.0.0.1
                list(client.list_queues())
        with Client(address, tls=TlsSettings(ca_file=ca_file, server_name="taskq.internal"), timeout=10) as client:
            assert list(client.list_queues()) == []
    finally:
        server.close()


def test_a_key_without_its_certificate_is_refused_when_the_settings_are_made():
    with pytest.raises(InvalidTlsSettings, match="cert_file and key_file go together"):
        TlsSettings(key_file="client-key.pem")


def test_an_unreadable_ca_file_is_named_before_any_connection(tmp_path):
    missing = str(tmp_path / "missing.pem")
    with pytest.raises(InvalidTlsSettings, match=f"cannot read ca_file {missing}: No such file"):
        Client("127.0.0.1:50051", tls=TlsSettings(ca_file=missing))


def test_a_ca_file_without_certificates_is_named(tmp_path, files):
    _, key_file = files.client_files()
    with pytest.raises(InvalidTlsSettings, match=f"ca_file {key_file} holds no PEM certificate"):
        Client("127.0.0.1:50051", tls=TlsSettings(ca_file=key_file))


def test_tls_settings_with_an_http_address_are_refused():
    with pytest.raises(InvalidAddress, match="http:// means plain text"):
        Client("http://127.0.0.1:50051", tls=TlsSettings())
