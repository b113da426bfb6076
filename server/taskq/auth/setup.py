"""The authentication a Config asks for: the sources an Authenticator looks callers up in, and
the words the start-up log uses for it."""

from __future__ import annotations

from taskq.auth.auth_file import AuthFile
from taskq.auth.authenticator import Authenticator
from taskq.auth.jwts import JwtSettings, JwtVerifier
from taskq.auth.roles import Grant
from taskq.config import Config


def configure(authenticator: Authenticator, config: Config, acl: dict[str, tuple[Grant, ...]]) -> None:
    """Reads the tokens file and a JWKS file (AuthFileError, JwksError: the start stops)."""
    clock = authenticator.clock
    auth_file = None
    if config.auth_tokens_file is not None:
        auth_file = AuthFile(config.auth_tokens_file, clock, config.auth_reload_interval_seconds)
    jwt = None
    if config.jwt_enabled():
        assert config.jwt_issuer is not None and config.jwt_audience is not None  # Config.check
        jwt = JwtVerifier(JwtSettings(
            issuer=config.jwt_issuer, audience=config.jwt_audience, jwks_file=config.jwt_jwks_file,
            jwks_url=config.jwt_jwks_url, algorithms=tuple(config.jwt_algorithm_list()),
            clock_skew_s=config.jwt_clock_skew_seconds, identity_claim=config.jwt_identity_claim,
            roles_claim=config.jwt_roles_claim, refresh_s=config.jwt_jwks_refresh_seconds,
            file_interval_s=config.auth_reload_interval_seconds,
        ), clock)
    authenticator.use(auth_file, jwt, acl)


def describe(config: Config) -> str:
    """How callers are authenticated, for the start-up log line."""
    if config.checks_roles():
        ways = [way for way, on in (("tokens", config.auth_tokens_file), ("JWTs", config.jwt_enabled()),
                                    ("client certificates", config.tls_client_ca_file)) if on]
        return "callers authenticated by " + " or ".join(ways) + ", roles checked"
    if config.tls_client_ca_file is not None:
        return "callers authenticated by client certificates, each allowed everything"
    return "no authentication" + (" (--insecure)" if config.insecure else "")


__all__ = ["configure", "describe"]
