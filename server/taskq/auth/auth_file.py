"""The tokens file (`auth_tokens_file`): bearer tokens, kept as hashes, and the roles of identities.

    tokens:                       # each: a name, the SHA-256 of the secret (hex), its roles
      - name: deployer
        sha256: 5f0c6e1d...       # `taskq token create` prints the entry; the secret is never stored
        roles: [admin]            # role, or role=queue-pattern (glob on queue ids)
        expires: 2027-01-31T00:00:00Z   # optional: after it, TOKEN_EXPIRED
    identities:                   # JWT subjects and client-certificate identities
      - name: spiffe://example.org/ns/prod/sa/mailer
        roles: [worker=emails, viewer]

Tokens are 32 random bytes (`taskq_` + 43 URL-safe base64 characters), so a plain SHA-256 is
enough to keep a stolen file from being used: there is nothing to guess, unlike a password,
and a lookup costs one hash. A call's token is hashed and looked up; no secret is compared.

The file is read again when it changes (by its `stat`), looked at on use at most every
`auth_reload_interval_seconds`: the kubelet's update of a mounted Secret, or an edit, takes
effect for the next calls without a restart. A file that cannot be used at start-up stops the
server; one that breaks later leaves the previous contents in service (logged once).
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import logging
import re
import secrets
from typing import Any

import yaml

from taskq.auth.roles import Grant, InvalidGrant, parse_grant
from taskq.core.clock import Clock
from taskq.core.model import US_PER_SECOND
from taskq.watched import WatchedFiles

log = logging.getLogger(__name__)

#: What a token starts with, so that secret scanners and people recognise one.
TOKEN_PREFIX = "taskq_"
_SHA256 = re.compile(r"[0-9a-f]{64}")
_NAME = re.compile(r"[^\s\x00-\x1f]{1,256}")


class AuthFileError(Exception):
    """The tokens file cannot be used; the message names it and the entry at fault."""


@dataclasses.dataclass(frozen=True)
class TokenEntry:
    name: str
    grants: tuple[Grant, ...]
    #: µs since the epoch; None: never expires.
    expires_us: int | None = None


@dataclasses.dataclass(frozen=True)
class AuthData:
    """One reading of the file."""

    #: sha256 hex -> entry.
    tokens: dict[str, TokenEntry]
    #: identity name -> its grants.
    identities: dict[str, tuple[Grant, ...]]


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def token_entry_yaml(name: str, token: str, grants: list[Grant], expires: datetime.datetime | None = None) -> str:
    """The entry of a `tokens:` list for `token`, ready to paste."""
    entry: dict[str, Any] = {"name": name, "sha256": token_hash(token), "roles": [str(grant) for grant in grants]}
    if expires is not None:
        entry["expires"] = expires.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return yaml.safe_dump([entry], sort_keys=False, default_flow_style=None)


class AuthFile(WatchedFiles[AuthData]):
    """The tokens file as last read; `get()` reads it again when it changed (looked at on use,
    at most every `interval_s` of the clock)."""

    def __init__(self, path: str, clock: Clock, interval_s: float) -> None:
        self.path = path
        super().__init__([path], lambda: load(path), AuthFileError, "auth", "tokens and roles", log, clock, interval_s)


def load(path: str) -> AuthData:
    try:
        with open(path, "rb") as handle:
            document = yaml.safe_load(handle)
    except OSError as error:
        raise AuthFileError(f"cannot read auth_tokens_file {path}: {error.strerror}") from None
    except yaml.YAMLError as error:
        raise AuthFileError(f"auth_tokens_file {path} is not valid YAML: {' '.join(str(error).split())}") from None
    return _Reader(path).document(document)


class _Reader:
    def __init__(self, path: str) -> None:
        self.path = path

    def error(self, where: str, reason: str) -> AuthFileError:
        return AuthFileError(f"auth_tokens_file {self.path}: {where}: {reason}")

    def document(self, document: object) -> AuthData:
        if document is None:
            document = {}
        if not isinstance(document, dict):
            raise AuthFileError(f"auth_tokens_file {self.path} must be a mapping with tokens: and identities: lists")
        unknown = set(document) - {"tokens", "identities"}
        if unknown:
            raise self.error(str(sorted(map(str, unknown))[0]), "unknown key; expected tokens or identities")
        tokens: dict[str, TokenEntry] = {}
        for index, item in enumerate(self.items(document, "tokens")):
            where = f"tokens[{index}]"
            entry = self.fields(item, where, {"name", "sha256", "roles", "expires"})
            digest = entry.get("sha256")
            if not isinstance(digest, str) or not _SHA256.fullmatch(digest.lower()):
                raise self.error(where, "sha256 must be the token's SHA-256, 64 hex digits (taskq token create "
                                 "prints the entry)")
            if digest.lower() in tokens:
                raise self.error(where, f"the same sha256 as the token named {tokens[digest.lower()].name}")
            tokens[digest.lower()] = TokenEntry(self.name(entry, where), self.grants(entry, where),
                                                self.expires(entry.get("expires"), where))
        identities: dict[str, tuple[Grant, ...]] = {}
        for index, item in enumerate(self.items(document, "identities")):
            where = f"identities[{index}]"
            entry = self.fields(item, where, {"name", "roles"})
            name = self.name(entry, where)
            if name in identities:
                raise self.error(where, f"{name} is listed twice")
            identities[name] = self.grants(entry, where)
        return AuthData(tokens, identities)

    def items(self, document: dict, key: str) -> list:
        value = document.get(key) or []
        if not isinstance(value, list):
            raise self.error(key, "must be a list of entries (each starting with '- name:')")
        return value

    def fields(self, item: object, where: str, allowed: set[str]) -> dict:
        if not isinstance(item, dict):
            raise self.error(where, "must be a mapping (name:, roles:, ...)")
        for key in item:
            if key not in allowed:
                raise self.error(where, f"unknown key {key!r}; allowed: {', '.join(sorted(allowed))}")
        return item

    def name(self, entry: dict, where: str) -> str:
        name = entry.get("name")
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise self.error(where, "name must be 1 to 256 characters without spaces or control characters")
        return name

    def grants(self, entry: dict, where: str) -> tuple[Grant, ...]:
        roles = entry.get("roles")
        if isinstance(roles, str):
            roles = [roles]
        if not isinstance(roles, list) or not all(isinstance(role, str) for role in roles):
            raise self.error(where, "roles must be a list such as [admin] or [worker=emails-*, viewer]")
        try:
            return tuple(parse_grant(role) for role in roles)
        except InvalidGrant as error:
            raise self.error(where, str(error)) from None

    def expires(self, value: object, where: str) -> int | None:
        if value is None:
            return None
        if isinstance(value, str):
            try:
                value = datetime.datetime.fromisoformat(value)
            except ValueError:
                value = None
        if isinstance(value, datetime.date) and not isinstance(value, datetime.datetime):
            value = datetime.datetime(value.year, value.month, value.day)
        if not isinstance(value, datetime.datetime):
            raise self.error(where, "expires must be a time such as 2027-01-31T00:00:00Z")
        if value.tzinfo is None:
            value = value.replace(tzinfo=datetime.UTC)  # YAML's timestamps without a zone are UTC
        return int(value.timestamp() * US_PER_SECOND)


__all__ = ["AuthFile", "AuthData", "AuthFileError", "TokenEntry", "TOKEN_PREFIX", "new_token", "token_hash",
           "token_entry_yaml", "load"]
