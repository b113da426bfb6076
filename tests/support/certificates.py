"""Certificates made in the test (the `cryptography` package): a CA that issues server and
client certificates, and the files a server reads, replaced the way cert-manager's volume
does it (written beside, then renamed over: readers see the old file or the new one)."""

from __future__ import annotations

import datetime
import ipaddress
import os
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


class Pair:
    """A certificate (PEM) and its private key (PEM), with its serial number."""

    def __init__(self, certificate: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> None:
        self.certificate = certificate
        self.cert_pem = certificate.public_bytes(serialization.Encoding.PEM)
        self.key_pem = _pem_key(key)
        self.serial = certificate.serial_number

    def write(self, directory: Path, name: str) -> tuple[str, str]:
        """Writes (or replaces) NAME.pem and NAME-key.pem; returns their paths."""
        return replace(directory / f"{name}.pem", self.cert_pem), replace(directory / f"{name}-key.pem", self.key_pem)


class CertificateAuthority:
    def __init__(self, name: str = "taskq test CA") -> None:
        self._key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        self.certificate = (
            x509.CertificateBuilder().subject_name(_name(name)).issuer_name(_name(name))
            .public_key(self._key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1)).not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(self._key, hashes.SHA256())
        )
        self.pem = self.certificate.public_bytes(serialization.Encoding.PEM)

    def write(self, directory: Path, name: str = "ca") -> str:
        return replace(directory / f"{name}.pem", self.pem)

    def server(self, *names: str) -> Pair:
        """A server certificate for `names` (default: localhost and 127.0.0.1)."""
        names = names or ("localhost", "127.0.0.1")
        alternatives: list[x509.GeneralName] = []
        for name in names:
            try:
                alternatives.append(x509.IPAddress(ipaddress.ip_address(name)))
            except ValueError:
                alternatives.append(x509.DNSName(name))
        return self._issue(names[0], ExtendedKeyUsageOID.SERVER_AUTH, x509.SubjectAlternativeName(alternatives))

    def client(self, name: str = "worker", alternatives: list[x509.GeneralName] | None = None) -> Pair:
        """A client certificate with `name` as its common name (and subject alternative names)."""
        names = x509.SubjectAlternativeName(alternatives) if alternatives else None
        return self._issue(name, ExtendedKeyUsageOID.CLIENT_AUTH, names)

    def _issue(self, common_name: str, usage: x509.ObjectIdentifier, names: x509.SubjectAlternativeName | None = None) -> Pair:
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        builder = (
            x509.CertificateBuilder().subject_name(_name(common_name)).issuer_name(self.certificate.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        )
        if names is not None:
            builder = builder.add_extension(names, critical=False)
        return Pair(builder.sign(self._key, hashes.SHA256()), key)


def replace(path: Path, content: bytes) -> str:
    """Writes `content` to `path` atomically (a new file renamed over the old one)."""
    part = path.with_name(path.name + ".part")
    part.write_bytes(content)
    os.replace(part, path)
    return str(path)


def served_serial(pem: str) -> int:
    """The serial number of a PEM certificate (as ssl.get_server_certificate returns it)."""
    return x509.load_pem_x509_certificate(pem.encode()).serial_number


class ServerFiles:
    """A CA and a server certificate for localhost and 127.0.0.1, written to `directory`:
    `cert_file`, `key_file` for the server and `ca_file` for its clients; `client_ca` (with
    `with_client_ca()`) signs client certificates for mTLS."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.ca = CertificateAuthority("server CA")
        self.ca_file = self.ca.write(directory, "ca")
        self.pair = self.ca.server()
        self.cert_file, self.key_file = self.pair.write(directory, "server")
        self.client_ca: CertificateAuthority | None = None

    def with_client_ca(self) -> ServerFiles:
        self.client_ca = CertificateAuthority("client CA")
        self.client_ca.write(self.directory, "client-ca")
        return self

    @property
    def client_ca_file(self) -> str:
        return str(self.directory / "client-ca.pem")

    def settings(self) -> dict[str, str]:
        """The server's settings (Config fields)."""
        settings = {"tls_cert_file": self.cert_file, "tls_key_file": self.key_file}
        if self.client_ca is not None:
            settings["tls_client_ca_file"] = self.client_ca_file
        return settings

    def client_files(self, ca: CertificateAuthority | None = None, name: str = "worker",
                     alternatives: list[x509.GeneralName] | None = None) -> tuple[str, str]:
        """A client certificate signed by `ca` (default: the client CA), written; its paths."""
        signer = ca or self.client_ca
        assert signer is not None
        return signer.client(name, alternatives).write(self.directory, f"client-{name}")

    def rotate(self, ca: CertificateAuthority | None = None) -> Pair:
        """Replaces the server's files with a new pair from `ca` (default: the same CA)."""
        self.pair = (ca or self.ca).server()
        self.pair.write(self.directory, "server")
        return self.pair
