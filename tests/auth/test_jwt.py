"""JWTs as bearer tokens, checked against a JWKS the test makes with `cryptography`: from a
file, and from a URL served by a real local HTTP server. Times are the server's FakeClock."""

from __future__ import annotations

import http.server
import json
import threading

import grpc
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from support.auth_files import bearer, error_info

from harness import FakeClock, ServerHarness
from taskq.v1 import queue_pb2, queue_service_pb2

ISSUER = "https://login.example.com/"
AUDIENCE = "taskq.example.com"


class Issuer:
    """Signs JWTs with keys of its own and publishes them as a JWKS."""

    def __init__(self) -> None:
        self.keys: dict[str, rsa.RSAPrivateKey] = {}
        self.add_key("k1")

    def add_key(self, key_id: str) -> None:
        self.keys[key_id] = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    def jwks(self) -> dict:
        entries = []
        for key_id, key in self.keys.items():
            entry = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
            entries.append({**entry, "kid": key_id, "use": "sig", "alg": "RS256"})
        return {"keys": entries}

    def token(self, now_s: float, key_id: str = "k1", **claims) -> str:
        body = {"iss": ISSUER, "aud": AUDIENCE, "sub": "svc-mailer", "iat": int(now_s), "exp": int(now_s) + 600,
                "taskq_roles": ["worker=mail-*"], **claims}
        return jwt.encode({k: v for k, v in body.items() if v is not None}, self.keys[key_id], algorithm="RS256",
                          headers={"kid": key_id})


@pytest.fixture
def issuer() -> Issuer:
    return Issuer()


def start(tmp_path, tokens_file, **settings) -> ServerHarness:
    return ServerHarness(str(tmp_path / "data"), clock=FakeClock(), auth_tokens_file=str(tokens_file.path),
                         jwt_issuer=ISSUER, jwt_audience=AUDIENCE, jwt_roles_claim="taskq_roles", **settings)


@pytest.fixture
def jwt_server(tmp_path, tokens_file, issuer):
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps(issuer.jwks()))
    server = start(tmp_path, tokens_file, jwt_jwks_file=str(jwks))
    admin = tokens_file.token("ops", "admin")
    server.clock.advance(10)
    for queue_id in ("mail-in", "billing"):
        server.queues.CreateQueue(queue_service_pb2.CreateQueueRequest(queue=queue_pb2.Queue(name=f"queues/{queue_id}")),
                                  metadata=bearer(admin))
    yield server
    server.close()


def now_s(server: ServerHarness) -> float:
    return server.clock.now_us() / 1e6


def get_queue(server: ServerHarness, token: str, queue_id: str = "mail-in") -> str:
    request = queue_service_pb2.GetQueueRequest(name=f"queues/{queue_id}")
    return server.queues.GetQueue(request, metadata=bearer(token)).queue.name


def refused(server: ServerHarness, token: str, queue_id: str = "mail-in") -> tuple[str, str, str]:
    with pytest.raises(grpc.RpcError) as refusal:
        get_queue(server, token, queue_id)
    return refusal.value.code().name, error_info(refusal.value).reason, refusal.value.details()


def test_a_valid_jwt_calls_as_its_subject_with_the_roles_of_its_roles_claim(jwt_server, issuer):
    token = issuer.token(now_s(jwt_server))
    assert get_queue(jwt_server, token) == "queues/mail-in"
    code, reason, message = refused(jwt_server, token, "billing")
    assert (code, reason) == ("PERMISSION_DENIED", "PERMISSION_DENIED") and message.startswith("svc-mailer may not")


def test_an_expired_jwt_is_refused_with_token_expired_after_the_clock_skew(jwt_server, issuer):
    token = issuer.token(now_s(jwt_server), exp=int(now_s(jwt_server)) + 5)
    jwt_server.clock.advance(60)  # within exp + 60 s of skew
    assert get_queue(jwt_server, token) == "queues/mail-in"
    jwt_server.clock.advance(10)
    assert refused(jwt_server, token)[:2] == ("UNAUTHENTICATED", "TOKEN_EXPIRED")


@pytest.mark.parametrize("claims, words", [
    ({"aud": "another-service"}, "not meant for this server"),
    ({"iss": "https://evil.example.com/"}, "was not issued by"),
    ({"exp": None}, "no exp"),
    ({"sub": None}, "no sub claim"),
    ({"nbf": 10**10}, "not valid yet"),
])
def test_a_jwt_for_another_audience_or_issuer_or_without_its_claims_is_unauthenticated(jwt_server, issuer, claims, words):
    code, reason, message = refused(jwt_server, issuer.token(now_s(jwt_server), **claims))
    assert (code, reason) == ("UNAUTHENTICATED", "UNAUTHENTICATED") and words in message


def test_a_jwt_signed_by_another_key_or_algorithm_is_unauthenticated(jwt_server, issuer):
    impostor = Issuer()
    assert "does not verify" in refused(jwt_server, impostor.token(now_s(jwt_server)))[2]
    symmetric = jwt.encode({"iss": ISSUER, "aud": AUDIENCE, "sub": "x", "exp": int(now_s(jwt_server)) + 60},
                           "secret", algorithm="HS256", headers={"kid": "k1"})
    assert "are not accepted" in refused(jwt_server, symmetric)[2]
    elliptic = jwt.encode({"iss": ISSUER, "aud": AUDIENCE, "sub": "x", "exp": int(now_s(jwt_server)) + 60},
                          ec.generate_private_key(ec.SECP256R1()), algorithm="ES256", headers={"kid": "k9"})
    assert "is not in the JWKS" in refused(jwt_server, elliptic)[2]


def test_without_a_roles_claim_a_subjects_roles_come_from_the_tokens_files_identities(jwt_server, issuer, tokens_file):
    token = issuer.token(now_s(jwt_server), sub="svc-billing", taskq_roles=None)
    assert refused(jwt_server, token, "billing")[0] == "PERMISSION_DENIED"
    tokens_file.identity("svc-billing", "viewer=billing")
    jwt_server.clock.advance(10)
    assert get_queue(jwt_server, token, "billing") == "queues/billing"


class JwksServer:
    """A real HTTP server on 127.0.0.1 answering GET /jwks.json with the issuer's keys."""

    def __init__(self, issuer: Issuer) -> None:
        self.issuer = issuer
        self.fetches = 0
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                owner.fetches += 1
                body = json.dumps(owner.issuer.jwks()).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *arguments) -> None:
                pass

        self.http = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.http.server_address[1]}/jwks.json"
        self._thread = threading.Thread(target=self.http.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.http.shutdown()
        self.http.server_close()


def test_keys_from_a_jwks_url_are_fetched_once_cached_and_fetched_again_for_a_new_key(tmp_path, tokens_file, issuer):
    jwks = JwksServer(issuer)
    server = start(tmp_path, tokens_file, jwt_jwks_url=jwks.url)
    try:
        admin = tokens_file.token("ops", "admin")
        server.clock.advance(10)
        server.queues.CreateQueue(queue_service_pb2.CreateQueueRequest(queue=queue_pb2.Queue(name="queues/mail-in")),
                                  metadata=bearer(admin))
        for _ in range(3):
            assert get_queue(server, issuer.token(now_s(server))) == "queues/mail-in"
        assert jwks.fetches == 1
        issuer.add_key("k2")  # a rotation: tokens signed by a key the cached set lacks
        rotated = issuer.token(now_s(server), key_id="k2")
        assert "is not in the JWKS" in refused(server, rotated)[2]  # too soon to fetch again
        server.clock.advance(31)
        assert get_queue(server, rotated) == "queues/mail-in"
        assert jwks.fetches == 2
    finally:
        server.close()
        jwks.close()


def test_an_unreachable_jwks_url_makes_jwt_calls_unavailable_not_unauthenticated(tmp_path, tokens_file, issuer):
    jwks = JwksServer(issuer)
    url = jwks.url
    jwks.close()
    server = start(tmp_path, tokens_file, jwt_jwks_url=url)
    try:
        with pytest.raises(grpc.RpcError) as refusal:
            get_queue(server, issuer.token(now_s(server)))
        assert (refusal.value.code().name, error_info(refusal.value).reason) == ("UNAVAILABLE", "JWKS_UNAVAILABLE")
    finally:
        server.close()
