"""TLS and mTLS on the gRPC port and the HTTP port, through a real server and real clients:
who is let in, certificates replaced on disk served to new connections without a restart
(the gRPC port looks before each handshake; the HTTP port on each reload pass, driven here
by run_once), unusable files refused at start-up with their name and kept out at a reload."""

from __future__ import annotations

import asyncio
import logging
import os
import ssl
import subprocess
import urllib.request

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from support.certificates import CertificateAuthority, ServerFiles, replace, served_serial

from harness import FakeClock, ServerHarness
from processes import SERVE
from taskq.app import StartupError, build_server
from taskq.client import Client, TlsSettings, Unavailable
from taskq.config import Config, ConfigError
from taskq.v1 import queue_service_pb2, queue_service_pb2_grpc


@pytest.fixture
def files(tmp_path) -> ServerFiles:
    return ServerFiles(tmp_path)


@pytest.fixture
def start(tmp_path):
    """Starts a server with extra settings; closed at the end of the test."""
    started: list[ServerHarness] = []

    def start_server(**settings) -> ServerHarness:
        harness = ServerHarness(str(tmp_path / "data"), **settings)
        started.append(harness)
        return harness

    yield start_server
    for harness in started:
        harness.close()


def client(server: ServerHarness, **tls) -> Client:
    """A client of the server's gRPC port over TLS; no retries, so a refusal shows at once."""
    return Client(f"127.0.0.1:{server.port}", tls=TlsSettings(**tls), call_retry=None, timeout=10)


def answers(server: ServerHarness, **tls) -> bool:
    """Whether a new connection with these TLS settings gets an answer."""
    with client(server, **tls) as connection:
        try:
            list(connection.list_queues())
        except Unavailable:
            return False
        return True


def grpc_serial(server: ServerHarness) -> int:
    """The serial number of the certificate a new connection to the gRPC port is shown."""
    return served_serial(ssl.get_server_certificate(("127.0.0.1", server.port), timeout=10))


# gRPC port --------------------------------------------------------------------------------


def test_a_client_that_trusts_the_servers_ca_is_answered(start, files):
    server = start(**files.settings())
    assert answers(server, ca_file=files.ca_file)


def test_a_plain_text_client_or_one_trusting_another_ca_is_not_answered(start, files, tmp_path):
    server = start(**files.settings())
    with Client(server.address, call_retry=None, timeout=10) as plain, pytest.raises(Unavailable):
        list(plain.list_queues())
    assert not answers(server, ca_file=CertificateAuthority("another").write(tmp_path, "another-ca"))


def test_with_a_client_ca_a_client_certificate_it_signed_is_required(start, files, tmp_path):
    files.with_client_ca()
    server = start(**files.settings())
    cert_file, key_file = files.client_files()
    assert answers(server, ca_file=files.ca_file, cert_file=cert_file, key_file=key_file)
    assert not answers(server, ca_file=files.ca_file)
    stranger_cert, stranger_key = files.client_files(CertificateAuthority("another client CA"), name="stranger")
    assert not answers(server, ca_file=files.ca_file, cert_file=stranger_cert, key_file=stranger_key)


def test_new_connections_get_replaced_files_from_a_new_ca_without_a_restart(start, files):
    server = start(**files.settings())
    old_ca_file = files.ca_file
    with client(server, ca_file=old_ca_file) as connected:
        connected.create_queue("before", type="pull")
        new_ca = CertificateAuthority("new server CA")
        files.rotate(new_ca)
        new_ca_file = new_ca.write(files.directory, "new-ca")
        assert answers(server, ca_file=new_ca_file)
        assert not answers(server, ca_file=old_ca_file)
        # A connection made before goes on with the certificate it was shown.
        connected.create_queue("after", type="pull")


def test_a_new_certificate_from_the_same_ca_is_shown_to_the_next_connection(start, files):
    server = start(**files.settings())
    assert grpc_serial(server) == files.pair.serial
    new = files.rotate()
    assert grpc_serial(server) == new.serial
    assert answers(server, ca_file=files.ca_file)


def test_a_replaced_client_ca_decides_the_next_connections(start, files):
    files.with_client_ca()
    server = start(**files.settings())
    old_cert, old_key = files.client_files(name="old")
    new_client_ca = CertificateAuthority("new client CA")
    replace(files.directory / "client-ca.pem", new_client_ca.pem)
    new_cert, new_key = files.client_files(new_client_ca, name="new")
    assert answers(server, ca_file=files.ca_file, cert_file=new_cert, key_file=new_key)
    assert not answers(server, ca_file=files.ca_file, cert_file=old_cert, key_file=old_key)


def test_unusable_replacement_files_keep_the_previous_certificates_and_are_logged_once(start, files, caplog):
    server = start(**files.settings())
    first = files.pair.serial
    replace(files.directory / "server-key.pem", files.ca.server().key_pem)  # another certificate's key
    with caplog.at_level(logging.ERROR, logger="taskq.tls"):
        assert answers(server, ca_file=files.ca_file)
        assert grpc_serial(server) == first
    errors = [record.getMessage() for record in caplog.records if record.name == "taskq.tls"]
    assert len(errors) == 1, errors
    assert files.key_file in errors[0] and "previous certificates stay in use" in errors[0]
    # Fixed files are taken at the next connection.
    fixed = files.rotate()
    assert grpc_serial(server) == fixed.serial


# HTTP port --------------------------------------------------------------------------------


def https_context(ca_file: str, cert_file: str | None = None, key_file: str | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=ca_file)
    if cert_file is not None:
        context.load_cert_chain(cert_file, key_file)
    return context


def bulk_add_over_https(server: ServerHarness, context: ssl.SSLContext) -> int:
    """Adds a task to the pull queue `pull` through the App Engine API bridge; the result code."""
    from google.appengine.api.taskqueue import taskqueue_service_bytes_pb2 as pb
    from google.appengine.ext.remote_api import remote_api_bytes_pb2 as remote_api

    add = pb.TaskQueueAddRequest(queue_name=b"pull", task_name=b"over-https", eta_usec=0, body=b"hello",
                                 mode=pb.TaskQueueMode.PULL)
    body = remote_api.Request(service_name="taskqueue", method="BulkAdd", request_id=b"ticket",
                              request=pb.TaskQueueBulkAddRequest(add_request=[add]).SerializeToString())
    assert server.server is not None and server.server.http_port is not None
    url = f"https://localhost:{server.server.http_port.port}/rpc_http"
    request = urllib.request.Request(url, data=body.SerializeToString(), method="POST")
    with urllib.request.urlopen(request, timeout=10, context=context) as answer:
        response = remote_api.Response.FromString(answer.read())
    return pb.TaskQueueBulkAddResponse.FromString(response.response).taskresult[0].result


def http_serial(server: ServerHarness) -> int:
    assert server.server is not None and server.server.http_port is not None
    return served_serial(ssl.get_server_certificate(("127.0.0.1", server.server.http_port.port), timeout=10))


def test_the_app_engine_bridge_answers_over_https(start, files):
    server = start(http_listen="127.0.0.1:0", **files.settings())
    with client(server, ca_file=files.ca_file) as connection:
        connection.create_queue("pull", type="pull")
        assert bulk_add_over_https(server, https_context(files.ca_file)) == 0  # OK
        assert connection.get_task("queues/pull/tasks/over-https").payload == b"hello"


def test_the_http_port_shows_replaced_certificates_after_a_reload_pass(start, files):
    # The FakeClock keeps the reload loop from running by itself: only run_once reloads.
    server = start(clock=FakeClock(), http_listen="127.0.0.1:0", **files.settings())
    first = files.pair.serial
    new_ca = CertificateAuthority("new server CA")
    new = files.rotate(new_ca)
    assert http_serial(server) == first
    assert server.server is not None and server.server.http_tls is not None
    assert server.run(server.server.http_tls.run_once()) == 1
    assert http_serial(server) == new.serial
    with client(server, ca_file=new_ca.write(files.directory, "new-ca")) as connection:
        connection.create_queue("pull", type="pull")
    assert bulk_add_over_https(server, https_context(str(files.directory / "new-ca.pem"))) == 0
    assert server.run(server.server.http_tls.run_once()) == 0  # nothing changed since


def test_the_http_port_with_a_client_ca_requires_a_client_certificate(start, files):
    files.with_client_ca()
    server = start(http_listen="127.0.0.1:0", **files.settings())
    cert_file, key_file = files.client_files()
    with client(server, ca_file=files.ca_file, cert_file=cert_file, key_file=key_file) as connection:
        connection.create_queue("pull", type="pull")
    assert bulk_add_over_https(server, https_context(files.ca_file, cert_file, key_file)) == 0
    with pytest.raises((ssl.SSLError, ConnectionError, urllib.error.URLError)):
        bulk_add_over_https(server, https_context(files.ca_file))


# Start-up ---------------------------------------------------------------------------------


def start_error(tmp_path, **settings) -> str:
    """The StartupError of a server started with these settings."""

    async def start_it() -> None:
        await build_server(Config(listen="127.0.0.1:0", data_dir=str(tmp_path / "data"), **settings)).start()

    with pytest.raises(StartupError) as error:
        asyncio.run(start_it())
    return str(error.value)


def test_a_missing_certificate_file_stops_the_start_naming_it(tmp_path, files):
    missing = str(tmp_path / "nope.pem")
    assert start_error(tmp_path, tls_cert_file=missing, tls_key_file=files.key_file) == (
        f"cannot read tls_cert_file {missing}: No such file or directory")


def test_a_key_of_another_certificate_stops_the_start_naming_both_files(tmp_path, files):
    _, other_key = files.ca.server().write(tmp_path, "other")
    message = start_error(tmp_path, tls_cert_file=files.cert_file, tls_key_file=other_key)
    assert message == f"tls_key_file {other_key} is not the key of the certificate in tls_cert_file {files.cert_file}"


@pytest.mark.parametrize("setting", ["tls_cert_file", "tls_key_file", "tls_client_ca_file"])
def test_a_file_without_pem_contents_stops_the_start_naming_it(tmp_path, files, setting):
    junk = replace(tmp_path / "junk.pem", b"not a certificate\n")
    settings = {**files.with_client_ca().settings(), setting: junk}
    assert start_error(tmp_path, **settings).startswith(f"{setting} {junk} holds no PEM")


def test_an_encrypted_key_is_refused_without_asking_for_a_passphrase(tmp_path, files):
    from cryptography.hazmat.primitives import serialization

    key = serialization.load_pem_private_key(files.pair.key_pem, None)
    encrypted = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.BestAvailableEncryption(b"secret"))
    replace(tmp_path / "server-key.pem", encrypted)
    assert "is encrypted" in start_error(tmp_path, **files.settings())


def test_taskq_serve_with_an_unreadable_certificate_exits_with_one_line(tmp_path, files):
    missing = str(tmp_path / "nope.pem")
    result = subprocess.run(
        [*SERVE, "--listen", "127.0.0.1:0", "--data-dir", str(tmp_path / "data")], capture_output=True, text=True,
        timeout=30, env={**os.environ, "TASKQ_TLS_CERT_FILE": missing, "TASKQ_TLS_KEY_FILE": files.key_file},
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        f"taskq serve: cannot read tls_cert_file {missing}: No such file or directory")
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("settings, message", [
    ({"tls_cert_file": "c.pem"}, "tls_cert_file and tls_key_file go together"),
    ({"tls_key_file": "k.pem"}, "tls_cert_file and tls_key_file go together"),
    ({"tls_client_ca_file": "ca.pem"}, "tls_client_ca_file (mTLS) needs TLS"),
    ({"tls_cert_file": "", "tls_key_file": "k.pem"}, "tls_cert_file must be a file name"),
])
def test_incomplete_tls_settings_are_a_configuration_error(settings, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        Config(**settings).check()


def test_the_health_port_answers_probes_in_plain_text_while_the_api_port_requires_tls(start, files):
    server = start(health_listen="127.0.0.1:0", **files.settings())
    assert server.server is not None and server.server.health_port
    with grpc.insecure_channel(f"127.0.0.1:{server.server.health_port}") as channel:
        for service in ("", "liveness", "taskq.v1.TaskService"):
            answer = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
            assert answer.status == health_pb2.HealthCheckResponse.SERVING, service
        # Only health is served there: the API stays behind TLS.
        with pytest.raises(grpc.RpcError) as refused:
            queue_service_pb2_grpc.QueueServiceStub(channel).ListQueues(queue_service_pb2.ListQueuesRequest(), timeout=5)
        assert refused.value.code() == grpc.StatusCode.UNIMPLEMENTED
    assert not answers(server)  # plain text on the API port is not answered
    assert answers(server, ca_file=files.ca_file)
