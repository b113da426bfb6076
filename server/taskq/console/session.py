"""The console's session cookie and CSRF tokens, both signed with the database's page-token key
(Reader.page_token_key), so that any server on the same database accepts them.

The cookie holds the SHA-256 of the token the user logged in with (what the tokens file keeps,
not the token), when the session ends, and an HMAC over both: nothing in it lets anyone call
the API, and it cannot be made without the key. Each request looks the hash up in the tokens
file again, so a token removed from the file ends its sessions at once.

A JWT cannot be looked up by its hash: after a login with one, the cookie holds it sealed
instead (AES-GCM under a key derived from the page-token key), so that it is never in the
cookie in clear; each request opens it and verifies the JWT again (its expiry, its keys).

A CSRF token is an HMAC of what the session is bound to: the session cookie, the client
certificate (mTLS, no login), or "open" when the console is open, without authentication. A
page of another site can neither read it nor make it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import re

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

#: The cookie's name.
COOKIE = "taskq_console"
#: How long a login lasts, seconds (the cookie's Max-Age as well).
SESSION_SECONDS = 12 * 3600
#: Bytes of HMAC-SHA256 kept: 128 bits.
_MAC_BYTES = 16
_VALUE = re.compile(r"([0-9a-f]{64})\.([0-9]{1,16})\.([0-9a-f]{32})")


def _mac(key: bytes, *parts: str) -> str:
    return hmac.new(key, "\x00".join(parts).encode(), hashlib.sha256).digest()[:_MAC_BYTES].hex()


def cookie_value(key: bytes, hashed_token: str, expires_s: int) -> str:
    """The cookie of a session of the token with this hash, ending at `expires_s` (Unix time)."""
    return f"{hashed_token}.{expires_s}.{_mac(key, 'session', hashed_token, str(expires_s))}"


def hashed_token(key: bytes, value: str, now_s: float) -> str | None:
    """The token hash of a cookie this database's servers made, None when it is not one or has
    ended."""
    match = _VALUE.fullmatch(value)
    if match is None:
        return None
    hashed, expires, mac = match.groups()
    if not hmac.compare_digest(mac, _mac(key, "session", hashed, expires)) or int(expires) <= now_s:
        return None
    return hashed


#: The prefix of a cookie holding a sealed JWT.
SEALED = "j."
#: Longest cookie value made: browsers keep cookies up to 4096 bytes with their name.
MAX_COOKIE_CHARS = 4000
_SEALED_CONTEXT = b"taskq console sealed token"


def _sealing_key(key: bytes) -> bytes:
    return hmac.new(key, _SEALED_CONTEXT, hashlib.sha256).digest()


def sealed_value(key: bytes, token: str, expires_s: int) -> str | None:
    """The cookie of a session of a JWT, ending at `expires_s`; None when it would not fit in a
    cookie."""
    nonce = os.urandom(12)
    sealed = AESGCM(_sealing_key(key)).encrypt(nonce, f"{expires_s}.{token}".encode(), _SEALED_CONTEXT)
    value = SEALED + base64.urlsafe_b64encode(nonce + sealed).decode().rstrip("=")
    return value if len(value) <= MAX_COOKIE_CHARS else None


def opened_token(key: bytes, value: str, now_s: float) -> str | None:
    """The JWT of a sealed cookie this database's servers made, None when it is not one or its
    session has ended."""
    if not value.startswith(SEALED) or len(value) > MAX_COOKIE_CHARS:
        return None
    try:
        raw = base64.urlsafe_b64decode(value[len(SEALED):] + "=" * (-len(value[len(SEALED):]) % 4))
        opened = AESGCM(_sealing_key(key)).decrypt(raw[:12], raw[12:], _SEALED_CONTEXT).decode()
    except (binascii.Error, ValueError, InvalidTag):
        return None
    expires, _, token = opened.partition(".")
    if not expires.isdigit() or int(expires) <= now_s:
        return None
    return token


def csrf_token(key: bytes, binding: str | None) -> str:
    """The CSRF token of the forms shown to a session bound to `binding` (the cookie, or a
    client certificate's hash; None: an open console)."""
    return _mac(key, "csrf", binding or "open")


def csrf_ok(key: bytes, binding: str | None, token: str) -> bool:
    return hmac.compare_digest(token.encode(), csrf_token(key, binding).encode())


__all__ = ["COOKIE", "SESSION_SECONDS", "cookie_value", "hashed_token", "sealed_value", "opened_token", "csrf_token", "csrf_ok"]
