"""Who is calling: a call's credentials -> a Principal with its grants, or Unauthenticated.

A bearer token, when the call has one, decides: a token of the tokens file (by its hash), else a
JWT (when JWTs are configured). A wrong token is refused even if the connection has a client
certificate: the caller asked to be someone. Without a token, a client certificate (mTLS)
names the caller. Without either, the call is refused.

A principal's grants: its token entry's roles, or its JWT's roles claim, plus the roles the
tokens file's `identities:` give its name, plus those the queue file's `acl` gives it.
"""

from __future__ import annotations

import dataclasses
import datetime

from taskq.auth.auth_file import AuthFile, token_hash
from taskq.auth.certificates import certificate_identity
from taskq.auth.jwts import JwtVerifier
from taskq.auth.roles import Grant, InvalidGrant, Principal, parse_grant
from taskq.core.clock import Clock
from taskq.core.errors import TokenExpired, Unauthenticated
from taskq.core.model import US_PER_SECOND

#: Longest bearer token read, characters (JWTs with many claims stay far below).
MAX_TOKEN_CHARS = 16 * 1024


@dataclasses.dataclass(frozen=True)
class Credentials:
    """What a call presents: a bearer token (an `authorization: Bearer` header, or the App
    Engine bridge's API ticket) and the client certificate of its connection (PEM or DER)."""

    token: str | None = None
    certificate: bytes | None = None


def bearer_token(values: list[str]) -> str | None:
    """The token of the `authorization` header values of a call (None without any)."""
    if not values:
        return None
    if len(values) > 1:
        raise Unauthenticated("the call has more than one authorization header")
    scheme, _, token = values[0].strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("the authorization header must be 'Bearer <token>'")
    if len(token) > MAX_TOKEN_CHARS:
        raise Unauthenticated(f"the bearer token is longer than {MAX_TOKEN_CHARS} characters")
    return token.strip()


class Authenticator:
    def __init__(self, clock: Clock, auth_file: AuthFile | None = None, jwt: JwtVerifier | None = None,
                 acl: dict[str, tuple[Grant, ...]] | None = None, certificates: bool = False) -> None:
        #: Whether connections present client certificates (mTLS), for the error that says what to send.
        self._certificates = certificates
        self.clock = clock
        self.use(auth_file, jwt, acl)

    def use(self, auth_file: AuthFile | None, jwt: JwtVerifier | None, acl: dict[str, tuple[Grant, ...]] | None) -> None:
        """Sets where callers are looked up (the server reads them at start, after registering
        its services behind the gate)."""
        self._file = auth_file
        self._jwt = jwt
        #: identity -> grants from the queue file's acl entries.
        self.acl: dict[str, tuple[Grant, ...]] = acl or {}

    async def close(self) -> None:
        if self._jwt is not None:
            await self._jwt.close()

    async def principal(self, credentials: Credentials) -> Principal:
        if credentials.token is not None:
            return await self._token_principal(credentials.token)
        if credentials.certificate is not None:
            name = certificate_identity(credentials.certificate)
            if name is None:
                raise Unauthenticated("the client certificate names no identity (no URI or DNS subject alternative "
                                      "name, no common name)")
            return Principal(name, "certificate", self._grants_of(name))
        raise Unauthenticated("the call has no credentials: send the header 'authorization: Bearer <token>'"
                              + (" or a client certificate" if self._certificates else ""))

    def file_token_principal(self, hashed: str) -> Principal | None:
        """The principal of the tokens file's token with this hash (token_hash), None when the
        file has none such (the web console's sessions keep only the hash, taskq/console)."""
        if self._file is None:
            return None
        entry = self._file.get().tokens.get(hashed)
        if entry is None:
            return None
        if entry.expires_us is not None and self.clock.now_us() >= entry.expires_us:
            when = datetime.datetime.fromtimestamp(entry.expires_us / US_PER_SECOND, datetime.UTC)
            raise TokenExpired(f"the token {entry.name} expired at {when:%Y-%m-%dT%H:%M:%SZ}; make a new one")
        return Principal(entry.name, "token", entry.grants + self._grants_of(entry.name))

    async def _token_principal(self, token: str) -> Principal:
        principal = self.file_token_principal(token_hash(token))
        if principal is not None:
            return principal
        if self._jwt is not None and token.count(".") == 2:
            verified = await self._jwt.verify(token)
            try:
                claimed = tuple(parse_grant(role) for role in verified.roles)
            except InvalidGrant as error:
                raise Unauthenticated(f"the JWT's roles claim holds {error}") from None
            return Principal(verified.identity, "jwt", claimed + self._grants_of(verified.identity))
        raise Unauthenticated("the bearer token is not one of the tokens file's tokens"
                              + (" nor a JWT" if self._jwt is not None else ""))

    def _grants_of(self, name: str) -> tuple[Grant, ...]:
        identities = self._file.get().identities if self._file is not None else {}
        return identities.get(name, ()) + self.acl.get(name, ())


__all__ = ["Authenticator", "Credentials", "bearer_token"]
