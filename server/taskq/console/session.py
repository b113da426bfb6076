"""The console's session cookie and CSRF tokens, both signed with the database's page-token key
(Reader.page_token_key), so that any server on the same database accepts them.

The cookie holds the SHA-256 of the token the user logged in with (what the tokens file keeps,
not the token), when the session ends, and an HMAC over both: nothing in it lets anyone call
the API, and it cannot be made without the key. Each request looks the hash up in the tokens
file again, so a token removed from the file ends its sessions at once.

A CSRF token is an HMAC of the session cookie (or of "open" when the console is open, without
authentication): a page of another site can neither read it nor make it.
"""

from __future__ import annotations

import hashlib
import hmac
import re

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


def csrf_token(key: bytes, cookie: str | None) -> str:
    """The CSRF token of the forms shown to the holder of `cookie` (None: an open console)."""
    return _mac(key, "csrf", cookie or "open")


def csrf_ok(key: bytes, cookie: str | None, token: str) -> bool:
    return hmac.compare_digest(token.encode(), csrf_token(key, cookie).encode())


__all__ = ["COOKIE", "SESSION_SECONDS", "cookie_value", "hashed_token", "csrf_token", "csrf_ok"]
