"""TLS settings of a client: which CAs to trust, a client certificate for servers that
require one (mTLS), and the name to expect in the server's certificate.

    Client("https://taskq.example.com")                           # TLS, the system's CAs, port 443
    Client("taskq.internal:50051", tls=TlsSettings(ca_file="ca.pem",
           cert_file="client.pem", key_file="client-key.pem"))    # mTLS with a private CA

Given settings mean TLS, whatever the address's form (except http://, which refuses them);
see `taskq.client.address` for the address rules. The files are read when a channel is
opened: a client opened later (a Worker's own channel) reads the renewed files.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import grpc


class InvalidTlsSettings(ValueError):
    """TLS settings that cannot be used (a missing or unreadable file, a key without its
    certificate); the message names the setting and the file."""


@dataclasses.dataclass(frozen=True)
class TlsSettings:
    """How to connect over TLS. Every field is optional: TlsSettings() is TLS that trusts the
    CAs gRPC trusts by default."""

    #: CA certificates (PEM) that sign the server's certificate; None: gRPC's default roots.
    ca_file: str | None = None
    #: The client's certificate chain and private key (PEM) for servers that require client
    #: certificates (mTLS); both or neither.
    cert_file: str | None = None
    key_file: str | None = None
    #: The name the server's certificate must hold when it is not the address's host (the
    #: server is reached by IP address, through a tunnel or a load balancer's own name).
    server_name: str | None = None

    def __post_init__(self) -> None:
        if (self.cert_file is None) != (self.key_file is None):
            raise InvalidTlsSettings("cert_file and key_file go together: give both for a client certificate, or neither")

    def credentials(self) -> grpc.ChannelCredentials:
        """Channel credentials from the files, read now."""
        ca = _read("ca_file", self.ca_file, "CERTIFICATE")
        chain = _read("cert_file", self.cert_file, "CERTIFICATE")
        key = _read("key_file", self.key_file, "PRIVATE KEY")
        return grpc.ssl_channel_credentials(root_certificates=ca, private_key=key, certificate_chain=chain)

    def channel_options(self) -> list[tuple[str, Any]]:
        """Channel arguments these settings need (the server name to check)."""
        return [("grpc.ssl_target_name_override", self.server_name)] if self.server_name else []


def _read(name: str, path: str | None, pem_type: str) -> bytes | None:
    """The file's contents; InvalidTlsSettings if it cannot be read or holds no PEM block of
    `pem_type` (gRPC would only fail the handshake later, without naming the file)."""
    if path is None:
        return None
    try:
        with open(path, "rb") as handle:
            content = handle.read()
    except OSError as error:
        raise InvalidTlsSettings(f"cannot read {name} {path}: {error.strerror}") from None
    if f"{pem_type}-----".encode() not in content:
        raise InvalidTlsSettings(f"{name} {path} holds no PEM {pem_type.lower()}")
    return content


__all__ = ["InvalidTlsSettings", "TlsSettings"]
