"""Page tokens for List calls: opaque to callers, bound to the arguments they were made for.

A token holds the last id returned and a fingerprint of the request's other arguments; a
token used with different arguments, or one that was not made here, is refused with
INVALID_ARGUMENT (AIP-158).
"""

from __future__ import annotations

import base64
import hashlib
import json

from taskq.core.errors import InvalidArgument
from taskq.core.limits import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE

_VERSION = 1
#: Longer than any token encode() makes (ids are at most 500 characters).
_MAX_TOKEN_CHARS = 4096


def page_size(requested: int, field: str = "page_size") -> int:
    """The page size to use: the default for 0, at most MAX_PAGE_SIZE; negatives refused."""
    if requested < 0:
        raise InvalidArgument.field(field, f"must not be negative, got {requested}", "VALUE_OUT_OF_RANGE")
    if requested == 0:
        return DEFAULT_PAGE_SIZE
    return min(requested, MAX_PAGE_SIZE)


def _fingerprint(arguments: tuple[str, ...]) -> str:
    return hashlib.sha256("\x00".join(arguments).encode()).hexdigest()[:16]


def encode(after: str, arguments: tuple[str, ...]) -> str:
    """A token that resumes after `after` for a request with these other arguments."""
    body = json.dumps([_VERSION, _fingerprint(arguments), after], separators=(",", ":"))
    return base64.urlsafe_b64encode(body.encode()).decode().rstrip("=")


def decode(token: str, arguments: tuple[str, ...], field: str = "page_token") -> str:
    """The position a token resumes after ("" for no token)."""
    if not token:
        return ""
    try:
        if len(token) > _MAX_TOKEN_CHARS:
            raise ValueError("too long")
        padded = token + "=" * (-len(token) % 4)
        version, fingerprint, after = json.loads(base64.urlsafe_b64decode(padded.encode()))
        if version != _VERSION or not isinstance(fingerprint, str) or not isinstance(after, str):
            raise ValueError("unknown token layout")
    except (ValueError, TypeError, UnicodeDecodeError, RecursionError):
        raise InvalidArgument.field(field, "is not a token this server issued", "INVALID_PAGE_TOKEN") from None
    if fingerprint != _fingerprint(arguments):
        raise InvalidArgument.field(
            field, "was issued for a request with other arguments; keep them unchanged while paging",
            "INVALID_PAGE_TOKEN",
        )
    return after
