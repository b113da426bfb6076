"""mTLS client identities: a client certificate names its caller (its URI subject alternative
name such as a SPIFFE ID, else its DNS name, else its common name), whose roles the tokens
file's identities give. A bearer token, when a call has one, decides instead."""

from __future__ import annotations

import pytest
from cryptography import x509
from support.certificates import ServerFiles

from harness import FakeClock, ServerHarness
from taskq.auth.certificates import certificate_identity
from taskq.client import Client, PermissionDenied, TlsSettings, Unauthenticated

SPIFFE_ID = "spiffe://example.org/ns/prod/sa/mailer"


@pytest.fixture
def files(tmp_path) -> ServerFiles:
    return ServerFiles(tmp_path).with_client_ca()


@pytest.fixture
def mtls_server(tmp_path, files, tokens_file):
    tokens_file.identity(SPIFFE_ID, "worker=mail-*")
    tokens_file.identity("worker.internal", "viewer=mail-in")
    tokens_file.identity("reporter", "viewer")
    server = ServerHarness(str(tmp_path / "data"), clock=FakeClock(), auth_tokens_file=str(tokens_file.path),
                           **files.settings())
    yield server
    server.close()


def client(server: ServerHarness, files: ServerFiles, name: str, alternatives=None, **settings) -> Client:
    cert_file, key_file = files.client_files(name=name, alternatives=alternatives)
    return Client(f"127.0.0.1:{server.port}", tls=TlsSettings(ca_file=files.ca_file, cert_file=cert_file,
                                                               key_file=key_file), call_retry=None, timeout=10, **settings)


def test_a_certificate_is_named_by_its_uri_then_its_dns_name_then_its_common_name(files):
    assert files.client_ca is not None
    both = files.client_ca.client("cn", [x509.DNSName("a.internal"), x509.UniformResourceIdentifier(SPIFFE_ID)])
    assert certificate_identity(both.cert_pem) == SPIFFE_ID
    assert certificate_identity(files.client_ca.client("cn", [x509.DNSName("a.internal")]).cert_pem) == "a.internal"
    assert certificate_identity(files.client_ca.client("just-cn").cert_pem) == "just-cn"


def test_each_certificate_identity_gets_the_roles_the_tokens_file_gives_its_name(mtls_server, files, tokens_file):
    admin = tokens_file.token("ops", "admin")
    mtls_server.clock.advance(10)
    with client(mtls_server, files, "ops", token=admin) as ops:
        ops.create_queue("mail-in", type="pull")
        ops.create_queue("billing", type="pull")
    with client(mtls_server, files, "mailer", [x509.UniformResourceIdentifier(SPIFFE_ID)]) as mailer:
        assert mailer.lease_tasks("mail-in", lease_duration=30) == []
        with pytest.raises(PermissionDenied) as refused:
            mailer.lease_tasks("billing", lease_duration=30)
        assert refused.value.metadata == {"identity": SPIFFE_ID, "role": "worker", "queue": "queues/billing"}
    with client(mtls_server, files, "cn", [x509.DNSName("worker.internal")]) as dns_named:
        assert dns_named.get_queue("mail-in").name == "queues/mail-in"
        with pytest.raises(PermissionDenied):
            dns_named.lease_tasks("mail-in", lease_duration=30)
    with client(mtls_server, files, "reporter") as common_named:
        assert [q.name for q in common_named.list_queues()] == ["queues/billing", "queues/mail-in"]
    with client(mtls_server, files, "nobody") as unknown:
        assert list(unknown.list_queues()) == []
        with pytest.raises(PermissionDenied):
            unknown.get_queue("mail-in")


def test_a_bearer_token_decides_over_the_connections_certificate(mtls_server, files, tokens_file):
    viewer = tokens_file.token("auditor", "viewer")
    mtls_server.clock.advance(10)
    with client(mtls_server, files, "reporter", token="taskq_wrong") as wrong:
        with pytest.raises(Unauthenticated):
            list(wrong.list_queues())
    with client(mtls_server, files, "nobody", token=viewer) as auditor:
        assert list(auditor.list_queues()) == []
        with pytest.raises(PermissionDenied) as denied:
            auditor.create_queue("x")
        assert denied.value.metadata["identity"] == "auditor"
