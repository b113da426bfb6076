"""The safe default: with no authentication configured, `taskq serve` listens only on loopback
addresses unless told --insecure; and `taskq serve` takes the auth and TLS settings as flags,
as environment variables and in its config file."""

from __future__ import annotations

import pytest

from taskq.cli.main import build_parser, main
from taskq.config import Config, ConfigError, load


@pytest.mark.parametrize("settings", [
    {"listen": "0.0.0.0:50051"},
    {"listen": "[::]:50051"},
    {"listen": "taskq.internal:50051"},
    {"listen": "127.0.0.1:50051", "http_listen": "0.0.0.0:8080"},
])
def test_without_authentication_a_non_loopback_address_is_refused(settings):
    with pytest.raises(ConfigError, match="is not a loopback address and no authentication is configured.*--insecure"):
        Config(**settings).check()


@pytest.mark.parametrize("settings", [
    {"listen": "127.0.0.1:50051"},
    {"listen": "[::1]:50051", "http_listen": "localhost:8080"},
    {"listen": "0.0.0.0:50051", "insecure": True},
    {"listen": "0.0.0.0:50051", "auth_tokens_file": "/etc/taskq/tokens.yaml"},
    {"listen": "0.0.0.0:50051", "jwt_jwks_url": "https://login.example.com/jwks", "jwt_issuer": "i", "jwt_audience": "a"},
    {"listen": "0.0.0.0:50051", "tls_cert_file": "c", "tls_key_file": "k", "tls_client_ca_file": "ca"},
])
def test_loopback_insecure_or_any_authentication_may_listen(settings):
    Config(**settings).check()


def test_serve_refuses_a_public_address_without_auth_in_one_line_with_status_2(capsys, tmp_path):
    assert main(["serve", "--listen", "0.0.0.0:0", "--data-dir", str(tmp_path)]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and error.startswith("taskq serve: listen 0.0.0.0:0 is not a loopback address")


def test_insecure_comes_from_the_flag_the_environment_or_the_config_file(tmp_path):
    assert load({"listen": "0.0.0.0:1", "insecure": True}, environ={}).insecure
    assert load({"listen": "0.0.0.0:1"}, environ={"TASKQ_INSECURE": "true"}).insecure
    config_file = tmp_path / "taskq.yaml"
    config_file.write_text("listen: 0.0.0.0:1\ninsecure: yes\n")
    assert load({"config": str(config_file)}, environ={}).insecure
    with pytest.raises(ConfigError, match="TASKQ_INSECURE: insecure must be a bool"):
        load({}, environ={"TASKQ_INSECURE": "perhaps"})


def test_serve_has_flags_for_the_auth_and_tls_settings():
    arguments = build_parser().parse_args([
        "serve", "--tls-cert-file", "c.pem", "--tls-key-file", "k.pem", "--tls-client-ca-file", "ca.pem",
        "--tls-reload-interval-seconds", "30", "--auth-tokens-file", "t.yaml", "--auth-reload-interval-seconds", "2",
        "--auth-open-services", "health", "--jwt-jwks-url", "https://login.example.com/jwks", "--jwt-issuer", "i",
        "--jwt-audience", "a", "--jwt-algorithms", "ES256", "--jwt-clock-skew-seconds", "5", "--jwt-identity-claim",
        "email", "--jwt-roles-claim", "roles", "--jwt-jwks-refresh-seconds", "600", "--insecure",
    ])
    flags = {name: value for name, value in vars(arguments).items() if name != "run"}
    config = load(flags, environ={})
    assert (config.tls_cert_file, config.tls_key_file, config.tls_client_ca_file) == ("c.pem", "k.pem", "ca.pem")
    assert config.tls_reload_interval_seconds == 30 and config.auth_reload_interval_seconds == 2
    assert (config.auth_tokens_file, config.auth_open_services, config.insecure) == ("t.yaml", "health", True)
    assert (config.jwt_jwks_url, config.jwt_issuer, config.jwt_audience) == ("https://login.example.com/jwks", "i", "a")
    assert (config.jwt_algorithms, config.jwt_clock_skew_seconds, config.jwt_identity_claim) == ("ES256", 5, "email")
    assert (config.jwt_roles_claim, config.jwt_jwks_refresh_seconds) == ("roles", 600)


@pytest.mark.parametrize("settings, reason", [
    ({"jwt_issuer": "i"}, "jwt_issuer needs jwt_jwks_file or jwt_jwks_url"),
    ({"jwt_jwks_file": "k.json"}, "JWTs need jwt_issuer and jwt_audience"),
    ({"jwt_jwks_file": "k.json", "jwt_jwks_url": "https://x/k", "jwt_issuer": "i", "jwt_audience": "a"},
     "exclude each other"),
    ({"jwt_jwks_url": "http://login.example.com/jwks", "jwt_issuer": "i", "jwt_audience": "a"}, "must be https://"),
    ({"jwt_jwks_file": "k.json", "jwt_issuer": "i", "jwt_audience": "a", "jwt_algorithms": "none"}, "jwt_algorithms"),
    ({"auth_open_services": "console"}, "auth_open_services must list health, reflection and/or metrics"),
])
def test_auth_settings_that_do_not_go_together_are_refused(settings, reason):
    with pytest.raises(ConfigError, match=reason):
        Config(**settings).check()
