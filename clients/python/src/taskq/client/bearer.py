"""Bearer tokens: what `Client`, `AsyncClient` and `Worker` send as the call metadata
`authorization: Bearer <token>` to a server that checks callers (docs/security.md).

    Client("taskq.example.com:50051", tls=TlsSettings(ca_file="ca.pem"), token="taskq_...")
    Client("https://taskq.example.com", token_file="/var/run/secrets/taskq/token")

Without `token` or `token_file`, the environment's TASKQ_TOKEN, else TASKQ_TOKEN_FILE, is
used. A token file is read again when it changes (a rotated Kubernetes Secret), looked at
before each call.

A token is refused over a plain-text connection to anything but this machine
(`PlaintextToken`): whoever can see the traffic could copy it and call as its holder until it
is revoked. Use TLS (https://, or TLS settings), or `allow_plaintext_token=True` when the
network is otherwise protected (a service mesh's mTLS between sidecars).
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from taskq.client.address import is_local_address

#: Environment variables read when no token is given.
TOKEN_ENV = "TASKQ_TOKEN"
TOKEN_FILE_ENV = "TASKQ_TOKEN_FILE"

Metadata = tuple[tuple[str, str], ...]


class PlaintextToken(ValueError):
    """A token would be sent in plain text over a network; the message says what to do."""


class InvalidToken(ValueError):
    """A token or token file that cannot be used (empty, unreadable, not one line)."""


class BearerToken:
    """A token given as such, or read from a file (again when the file changes)."""

    def __init__(self, token: str | None = None, file: str | None = None) -> None:
        if (token is None) == (file is None):
            raise ValueError("give a token or a token file")
        self.file = file
        self._signature: tuple[int, int, int, int] | None = None
        self._token = ""
        if token is not None:
            self._token = _checked(token, "the token")
        else:
            self.token()  # an unreadable file fails now, not at the first call

    def token(self) -> str:
        """The token (read again first if its file changed)."""
        if self.file is not None:
            try:
                status = os.stat(self.file)
                signature = (status.st_dev, status.st_ino, status.st_size, status.st_mtime_ns)
                if signature != self._signature:
                    with open(self.file, encoding="utf-8") as handle:
                        self._token = _checked(handle.read(), f"the token file {self.file}")
                    self._signature = signature
            except (OSError, UnicodeDecodeError) as error:
                if not self._token:
                    raise InvalidToken(f"cannot read the token file {self.file}: {error}") from None
                # Mid-rotation (a file briefly gone): the token read before is still the best guess.
        return self._token

    def metadata(self) -> Metadata:
        """The call metadata carrying the token."""
        return (("authorization", f"Bearer {self.token()}"),)


def _checked(text: str, what: str) -> str:
    token = text.strip()
    if not token or any(character.isspace() or not character.isprintable() for character in token):
        raise InvalidToken(f"{what} must be one word of printable characters")
    return token


def bearer_token(token: str | None, token_file: str | None,
                 environ: Mapping[str, str] | None = None) -> BearerToken | None:
    """The token given, else the environment's (TASKQ_TOKEN, TASKQ_TOKEN_FILE); None without."""
    if token is not None and token_file is not None:
        raise InvalidToken("give a token or a token file, not both")
    environ = os.environ if environ is None else environ
    if token is None and token_file is None:
        token = environ.get(TOKEN_ENV) or None
        token_file = None if token else environ.get(TOKEN_FILE_ENV) or None
    if token is None and token_file is None:
        return None
    return BearerToken(token, token_file)


def check_transport(address: str, encrypted: bool, allow_plaintext: bool) -> None:
    """Raises PlaintextToken when a token would cross a network in plain text."""
    if encrypted or allow_plaintext or is_local_address(address):
        return
    raise PlaintextToken(
        f"refusing to send a token in plain text to {address}: anyone on the way could copy it and call as you. "
        "Connect with TLS (https://..., or TLS settings such as a CA file), or allow it explicitly "
        "(allow_plaintext_token=True; the CLI's --allow-plaintext-token) when the network itself is protected"
    )


__all__ = ["BearerToken", "PlaintextToken", "InvalidToken", "bearer_token", "check_transport", "TOKEN_ENV",
           "TOKEN_FILE_ENV"]
