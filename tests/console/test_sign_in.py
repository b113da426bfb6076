"""Signing in to the console the other ways the API knows callers: a JWT (kept sealed in the
cookie) and a client certificate (mTLS: no login at all)."""

from __future__ import annotations

import json

from auth.test_jwt import AUDIENCE, ISSUER, Issuer
from console.conftest import log_in
from cryptography import x509
from playwright.sync_api import expect
from support.auth_files import TokensFile
from support.certificates import ServerFiles

from harness import FakeClock, ServerHarness


def test_a_jwt_logs_in_and_is_never_in_the_cookie_in_clear(tmp_path, page):
    issuer = Issuer()
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps(issuer.jwks()))
    tokens = TokensFile(tmp_path / "tokens.yaml")
    harness = ServerHarness(str(tmp_path / "data"), clock=FakeClock(), http_listen="127.0.0.1:0",
                            auth_tokens_file=str(tokens.path), jwt_issuer=ISSUER, jwt_audience=AUDIENCE,
                            jwt_roles_claim="taskq_roles", jwt_jwks_file=str(jwks))
    try:
        url = f"http://127.0.0.1:{harness.server.http_port.port}/console"
        token = issuer.token(harness.clock.now_us() / 1e6, taskq_roles=["viewer"])
        log_in(page, url, token)
        expect(page.get_by_text("Signed in as svc-mailer")).to_be_visible()
        expect(page.locator('tr[data-queue="default"]')).to_be_visible()
        [cookie] = page.context.cookies()
        assert token not in cookie["value"] and token.split(".")[1] not in cookie["value"]

        # The JWT is verified again on every page: once it has expired, the session has ended.
        harness.clock.advance(600 + 61)  # past exp and the 60 s of allowed clock skew
        page.goto(url + "/queues")
        expect(page.get_by_role("heading", name="Log in")).to_be_visible()
    finally:
        harness.close()


def test_a_client_certificate_names_the_caller_without_a_login(tmp_path, browser):
    files = ServerFiles(tmp_path).with_client_ca()
    tokens = TokensFile(tmp_path / "tokens.yaml")
    tokens.identity("reporter.internal", "viewer")
    harness = ServerHarness(str(tmp_path / "data"), clock=FakeClock(), http_listen="127.0.0.1:0",
                            auth_tokens_file=str(tokens.path), **files.settings())
    port = harness.server.http_port.port
    cert_file, key_file = files.client_files(name="reporter", alternatives=[x509.DNSName("reporter.internal")])
    context = browser.new_context(ignore_https_errors=True, client_certificates=[
        {"origin": f"https://127.0.0.1:{port}", "certPath": cert_file, "keyPath": key_file},
    ])
    try:
        page = context.new_page()
        page.goto(f"https://127.0.0.1:{port}/console/queues")
        expect(page.get_by_text("Signed in as reporter.internal")).to_be_visible()
        expect(page.locator('tr[data-queue="default"]')).to_be_visible()
        page.goto(f"https://127.0.0.1:{port}/console/queues/default")
        page.get_by_role("button", name="Pause").click()
        expect(page.get_by_role("alert")).to_contain_text("reporter.internal may not call PauseQueue")
    finally:
        context.close()
        harness.close()
