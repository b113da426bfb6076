"""Page tokens for List calls: opaque to callers, bound to the arguments they were made for,
and signed, so that only tokens this database's servers issued are accepted (AIP-158).

A token holds the last id returned and an HMAC over it and the request's other arguments,
keyed by a secret stored in the database (Reader.page_token_key): any server on the same
database, before or after a restart, accepts it. The id in a token is checked like any id
before anything else is done with it, so a forged token never reaches the store. A token used
with different arguments, or not made here, is refused with INVALID_ARGUMENT.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re

from taskq.core.errors import InvalidArgument
from taskq.core.limits import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE

_VERSION = 2
#: Longer than any token encode() makes (ids are at most 500 characters).
_MAX_TOKEN_CHARS = 4096
#: Bytes of HMAC-SHA256 kept in a token: 128 bits.
_MAC_BYTES = 16


def page_size(requested: int, field: str = "page_size") -> int:
    """The page size to use: the default for 0, at most MAX_PAGE_SIZE; negatives refused."""
    if requested < 0:
        raise InvalidArgument.field(field, f"must not be negative, got {requested}", "VALUE_OUT_OF_RANGE")
    if requested == 0:
        return DEFAULT_PAGE_SIZE
    return min(requested, MAX_PAGE_SIZE)


def _mac(key: bytes, after: str, arguments: tuple[str, ...]) -> str:
    # Arguments are request fields (any Unicode, even lone surrogates in a hostile request),
    # so they are encoded with surrogatepass rather than assumed to be valid UTF-8.
    message = "\x00".join((str(_VERSION), after, *arguments)).encode("utf-8", "surrogatepass")
    return hmac.new(key, message, hashlib.sha256).digest()[:_MAC_BYTES].hex()


def encode(after: str, arguments: tuple[str, ...], key: bytes) -> str:
    """A token that resumes after `after` for a request with these other arguments."""
    body = json.dumps([_VERSION, after, _mac(key, after, arguments)], separators=(",", ":"))
    return base64.urlsafe_b64encode(body.encode()).decode().rstrip("=")


def decode(token: str, arguments: tuple[str, ...], key: bytes, id_pattern: str, field: str = "page_token") -> str:
    """The position a token resumes after ("" for no token). `id_pattern` is the form the
    position must have (a task id, a queue id)."""
    if not token:
        return ""
    refused = InvalidArgument.field(field, "is not a token this server issued", "INVALID_PAGE_TOKEN")
    try:
        if len(token) > _MAX_TOKEN_CHARS:
            raise ValueError("too long")
        padded = token + "=" * (-len(token) % 4)
        version, after, mac = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
        if version != _VERSION or not isinstance(after, str) or not isinstance(mac, str):
            raise ValueError("unknown token layout")
    except (ValueError, TypeError, UnicodeError, RecursionError):
        raise refused from None
    if not re.fullmatch(id_pattern, after) or not mac.isascii():
        raise refused
    if not hmac.compare_digest(mac, _mac(key, after, arguments)):
        # Either forged, or made for other arguments: only the latter is worth explaining.
        raise InvalidArgument.field(
            field,
            "is not a token this server issued for these arguments; keep the other arguments unchanged while "
            "paging",
            "INVALID_PAGE_TOKEN",
        )
    return after
