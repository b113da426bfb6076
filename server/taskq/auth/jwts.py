"""JWTs as bearer tokens: signatures checked against a JWKS (a file, or a URL fetched and
cached), then the issuer, the audience and the times.

PyJWT checks the signature, the algorithm, the issuer, the audience and that the claims taskq
needs are there; expiry and not-before are compared here, with the server's clock (the one
tests move) and `jwt_clock_skew_seconds` of leeway. Only the algorithms of `jwt_algorithms`
are accepted (asymmetric ones by default), whatever a token's header says.

A JWKS URL is fetched at the first JWT, again once its copy is `jwt_jwks_refresh_seconds`
old, and early when a token names a key id it does not hold (at most every
MIN_REFETCH_SECONDS: a stream of tokens with made-up key ids must not become a stream of
fetches). A fetch that fails keeps the keys held; with none held, calls with JWTs get
UNAVAILABLE (JWKS_UNAVAILABLE), not UNAUTHENTICATED: the token may be fine.
"""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import json
import logging
import urllib.parse
from typing import Any

import aiohttp
import jwt

from taskq.core.clock import Clock
from taskq.core.errors import TokenExpired, Unauthenticated, Unavailable
from taskq.core.model import US_PER_SECOND
from taskq.watched import WatchedFiles

log = logging.getLogger(__name__)

#: The earliest a JWKS URL is fetched again for a token with an unknown key id, seconds.
MIN_REFETCH_SECONDS = 30
#: With no keys held, a failed fetch is tried again after this long at the earliest, seconds.
RETRY_SECONDS = 1
#: How long a JWKS fetch may take, seconds.
FETCH_TIMEOUT_SECONDS = 10
#: Largest JWKS document accepted, bytes.
MAX_JWKS_BYTES = 1 << 20


class JwksError(Exception):
    """A JWKS file or answer that cannot be used; the message names it."""


@dataclasses.dataclass(frozen=True)
class JwtSettings:
    issuer: str
    audience: str
    jwks_file: str | None = None
    jwks_url: str | None = None
    algorithms: tuple[str, ...] = ("RS256", "ES256")
    clock_skew_s: float = 60.0
    #: The claim naming the caller (its identity in the tokens file and queue.yaml acl).
    identity_claim: str = "sub"
    #: A claim holding the caller's roles (a list, or one string separated by spaces or
    #: commas, of `role` or `role=pattern`); None: roles come from the tokens file only.
    roles_claim: str | None = None
    refresh_s: float = 300.0
    #: How often a JWKS file is looked at for changes, on use, seconds.
    file_interval_s: float = 5.0


@dataclasses.dataclass(frozen=True)
class VerifiedJwt:
    identity: str
    #: The roles claim's entries ([] without a roles claim).
    roles: list[str]


def check_jwks_url(url: str) -> None:
    """Raises ValueError unless `url` is https://, or http:// to a loopback address (keys
    fetched in plain text over a network could be replaced on the way)."""
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme == "https" and parsed.hostname:
        return
    if parsed.scheme == "http" and parsed.hostname:
        host = parsed.hostname
        try:
            loopback = ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = host == "localhost"
        if loopback:
            return
        raise ValueError(f"jwt_jwks_url {url} must be https:// (http:// only to a loopback address)")
    raise ValueError(f"jwt_jwks_url {url!r} is not an https:// URL")


def _key_set(document: Any, where: str) -> jwt.PyJWKSet:
    try:
        return jwt.PyJWKSet.from_dict(document)
    except (jwt.PyJWKSetError, jwt.InvalidKeyError, TypeError, KeyError, AttributeError) as error:
        raise JwksError(f"{where} is not a JWKS with usable keys: {error}") from None


def _read_file(path: str) -> jwt.PyJWKSet:
    try:
        with open(path, "rb") as handle:
            document = json.loads(handle.read())
    except OSError as error:
        raise JwksError(f"cannot read jwt_jwks_file {path}: {error.strerror}") from None
    except ValueError as error:
        raise JwksError(f"jwt_jwks_file {path} is not JSON: {error}") from None
    return _key_set(document, f"jwt_jwks_file {path}")


class JwtVerifier:
    def __init__(self, settings: JwtSettings, clock: Clock) -> None:
        self.settings = settings
        self._clock = clock
        self._file: WatchedFiles[jwt.PyJWKSet] | None = None
        if settings.jwks_file is not None:
            path = settings.jwks_file
            # Raises JwksError: a key file that cannot be used at start-up stops the server.
            self._file = WatchedFiles([path], lambda: _read_file(path), JwksError, "JWT", "keys", log, clock,
                                      settings.file_interval_s)
        self._fetched: jwt.PyJWKSet | None = None
        self._fetched_us: int | None = None
        self._fetch_lock = asyncio.Lock()
        self._session: aiohttp.ClientSession | None = None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def verify(self, token: str) -> VerifiedJwt:
        """The identity and roles of a valid JWT; Unauthenticated (TokenExpired) otherwise."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise Unauthenticated("the bearer token is neither a token of the tokens file nor a JWT") from None
        algorithm = header.get("alg")
        if algorithm not in self.settings.algorithms:
            raise Unauthenticated(f"JWTs signed with {str(algorithm)[:20]!r} are not accepted (jwt_algorithms: "
                                  f"{', '.join(self.settings.algorithms)})")
        key_id = header.get("kid")
        keys = [key for key in (await self._keys(key_id)).keys if key_id is None or key.key_id == key_id]
        if not keys:
            raise Unauthenticated(f"the JWT's key {str(key_id)[:100]!r} is not in the JWKS")
        claims = self._decode(token, algorithm, keys)
        now_s = self._clock.now_us() / US_PER_SECOND
        skew = self.settings.clock_skew_s
        if not isinstance(claims.get("exp"), int | float):
            raise Unauthenticated("the JWT has no exp (expiry) claim")
        if now_s > claims["exp"] + skew:
            raise TokenExpired("the JWT expired; get a new one")
        if isinstance(claims.get("nbf"), int | float) and now_s < claims["nbf"] - skew:
            raise Unauthenticated("the JWT is not valid yet (nbf)")
        identity = claims.get(self.settings.identity_claim)
        if not isinstance(identity, str) or not identity:
            raise Unauthenticated(f"the JWT has no {self.settings.identity_claim} claim naming the caller")
        return VerifiedJwt(identity, self._roles(claims))

    def _decode(self, token: str, algorithm: str, keys: list[jwt.PyJWK]) -> dict[str, Any]:
        options = {"verify_exp": False, "verify_nbf": False, "verify_iat": False, "require": ["iss", "aud"]}
        for key in keys:
            try:
                return jwt.decode(token, key.key, algorithms=[algorithm], audience=self.settings.audience,
                                  issuer=self.settings.issuer, options=options)  # type: ignore[arg-type]
            except (jwt.InvalidSignatureError, jwt.InvalidKeyError, jwt.InvalidAlgorithmError):
                continue  # another key with the same id (or none) may have signed it
            except jwt.InvalidAudienceError:
                raise Unauthenticated(f"the JWT is not meant for this server (its audience is not "
                                      f"{self.settings.audience})") from None
            except jwt.InvalidIssuerError:
                raise Unauthenticated(f"the JWT was not issued by {self.settings.issuer}") from None
            except jwt.MissingRequiredClaimError as error:
                raise Unauthenticated(f"the JWT has no {error.claim} claim") from None
            except jwt.PyJWTError as error:
                raise Unauthenticated(f"the JWT cannot be used: {error}") from None
        raise Unauthenticated("the JWT's signature does not verify with the JWKS keys")

    def _roles(self, claims: dict[str, Any]) -> list[str]:
        if self.settings.roles_claim is None:
            return []
        value = claims.get(self.settings.roles_claim)
        if value is None:
            return []
        if isinstance(value, str):
            value = value.replace(",", " ").split()
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise Unauthenticated(f"the JWT's {self.settings.roles_claim} claim must be a list of roles")
        return value

    async def _keys(self, key_id: str | None) -> jwt.PyJWKSet:
        if self._file is not None:
            return self._file.get()
        if self._fetch_due(key_id):
            async with self._fetch_lock:
                if self._fetch_due(key_id):  # not fetched meanwhile by the call holding the lock
                    await self._fetch()
        if self._fetched is None:
            raise Unavailable(f"the JWT keys (jwt_jwks_url {self.settings.jwks_url}) cannot be fetched; try again",
                              reason="JWKS_UNAVAILABLE", retry_delay_seconds=5.0)
        return self._fetched

    def _fetch_due(self, key_id: str | None) -> bool:
        if self._fetched_us is None:
            return True
        age_us = self._clock.now_us() - self._fetched_us
        if self._fetched is None:
            return age_us >= RETRY_SECONDS * US_PER_SECOND
        if age_us >= self.settings.refresh_s * US_PER_SECOND:
            return True
        unknown = key_id is not None and all(key.key_id != key_id for key in self._fetched.keys)
        return unknown and age_us >= MIN_REFETCH_SECONDS * US_PER_SECOND

    async def _fetch(self) -> None:
        url = self.settings.jwks_url
        assert url is not None
        # Whatever the outcome: a failing server is not asked again by every call.
        self._fetched_us = self._clock.now_us()
        try:
            if self._session is None:
                self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=FETCH_TIMEOUT_SECONDS))
            async with self._session.get(url, allow_redirects=False) as response:
                if response.status != 200:
                    raise JwksError(f"jwt_jwks_url {url} answered HTTP {response.status}")
                body = await response.content.read(MAX_JWKS_BYTES + 1)
            if len(body) > MAX_JWKS_BYTES:
                raise JwksError(f"jwt_jwks_url {url} answered more than {MAX_JWKS_BYTES} bytes")
            try:
                document = json.loads(body)
            except ValueError as error:
                raise JwksError(f"jwt_jwks_url {url} did not answer JSON: {error}") from None
            self._fetched = _key_set(document, f"jwt_jwks_url {url}")
        except (aiohttp.ClientError, TimeoutError, JwksError) as error:
            held = "the keys fetched before stay in use" if self._fetched is not None else "no keys yet"
            log.warning("JWT: fetching the JWKS failed: %s; %s", error or type(error).__name__, held)


__all__ = ["JwtSettings", "JwtVerifier", "VerifiedJwt", "JwksError", "check_jwks_url"]
