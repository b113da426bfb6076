"""TLS on both ports (gRPC and --http-listen): a certificate and its key, an optional client CA
that makes client certificates required (mTLS), and new files picked up without a restart.

cert-manager, Vault agents and the kubelet replace certificate files in place (the kubelet by
swapping a symlink to a new directory), typically weeks before the old certificate expires.
Each port watches the files through a `CertificateFiles` of its own: the gRPC port asks it
before every TLS handshake (gRPC's certificate-config fetcher), which costs a `stat` of each
file while nothing changed; the HTTP port asks it from a `CertificateReloader` pass every
`tls_reload_interval_seconds` and hands each new handshake the newest SSLContext.

Files that cannot be used at start-up stop the server with a message naming the file
(`TlsFileError`). Files that cannot be used at a reload leave the previous certificates in
service and are logged once, as an error, until the files change again.
"""

from __future__ import annotations

import dataclasses
import logging
import ssl

import grpc

from taskq.core.alarm import Alarm
from taskq.core.clock import Clock
from taskq.core.loop import BackgroundLoop
from taskq.core.model import US_PER_SECOND
from taskq.watched import WatchedFiles

log = logging.getLogger(__name__)

#: A reload that finds the files changing under it (a new certificate written, its key not
#: yet) reads them again this many times before it leaves the rest to the next check.
READ_ATTEMPTS = 3


class TlsFileError(Exception):
    """A certificate, key or CA file cannot be used; the message names it and says why."""


@dataclasses.dataclass(frozen=True)
class TlsFiles:
    """Where the certificate chain, its private key and the client CA (None: no mTLS) are."""

    cert_file: str
    key_file: str
    client_ca_file: str | None = None

    def paths(self) -> list[tuple[str, str]]:
        """(setting name, path) of each file."""
        named = [("tls_cert_file", self.cert_file), ("tls_key_file", self.key_file)]
        if self.client_ca_file is not None:
            named.append(("tls_client_ca_file", self.client_ca_file))
        return named


@dataclasses.dataclass(frozen=True)
class Certificates:
    """What one reading of the files gave, checked: the PEM contents and a server SSLContext
    made from them."""

    #: The files' contents in TlsFiles.paths() order: chain, key and, for mTLS, the client CA.
    contents: tuple[bytes, ...]
    context: ssl.SSLContext

    @property
    def client_auth(self) -> bool:
        """Whether a client CA was given, so client certificates are required."""
        return len(self.contents) == 3

    def grpc_configuration(self) -> grpc.ServerCertificateConfiguration:
        chain, key = self.contents[0], self.contents[1]
        client_ca = self.contents[2] if self.client_auth else None
        return grpc.ssl_server_certificate_configuration([(key, chain)], root_certificates=client_ca)


class CertificateFiles(WatchedFiles[Certificates]):
    """The TLS files of one port and the certificates last loaded from them (`current`);
    `check()` loads them again when they changed."""

    def __init__(self, files: TlsFiles) -> None:
        self.files = files
        super().__init__([path for _, path in files.paths()], lambda: _load(files), TlsFileError, "TLS",
                         "certificates", log)

    def same(self, old: Certificates, new: Certificates) -> bool:
        return old.contents == new.contents


def grpc_credentials(files: CertificateFiles) -> grpc.ServerCredentials:
    """Server credentials whose certificates follow the files: gRPC calls the fetcher before
    each handshake, and a new configuration it returns serves that handshake and later ones."""

    def fetch() -> grpc.ServerCertificateConfiguration | None:
        try:
            return files.current.grpc_configuration() if files.check() else None
        except Exception:
            # An exception would reach gRPC's C core, which only says it failed; say what.
            log.exception("TLS: checking the certificate files failed; the previous certificates stay in use")
            return None

    current = files.current
    return grpc.dynamic_ssl_server_credentials(
        current.grpc_configuration(), fetch, require_client_authentication=current.client_auth)


class CertificateReloader(BackgroundLoop):
    """The HTTP port's TLS: `context` is the SSLContext the listener was created with; each
    handshake is handed the newest certificates' context (its SNI callback swaps it in, as
    Python allows, since a listening socket cannot be given a new context). Each pass of the
    loop checks the files."""

    def __init__(self, files: CertificateFiles, clock: Clock, interval_s: float) -> None:
        super().__init__("tls-reload", clock, Alarm(clock))
        self.MIN_INTERVAL_US = int(interval_s * US_PER_SECOND)
        self._files = files
        self.context = files.current.context
        self.context.sni_callback = self._choose_context

    def _choose_context(self, connection: ssl.SSLObject, server_name: str | None, context: ssl.SSLContext) -> None:
        newest = self._files.current.context
        if newest is not context:
            connection.context = newest

    async def run_once(self) -> int:
        # Reading three small files takes well under a millisecond: not worth a thread.
        return int(self._files.check())

    async def next_wakeup_us(self) -> int | None:
        return self._clock.now_us() + self.MIN_INTERVAL_US


def _load(files: TlsFiles) -> Certificates:
    """Reads and checks the files. The SSLContext is loaded from the paths (ssl reads a chain
    and key from files only), so the contents are read before and after it: different
    contents mean a rotation was half-written, and the reading starts again."""
    for _ in range(READ_ATTEMPTS):
        before = _read(files)
        try:
            context = _context(files, before)
        except TlsFileError:
            if _read(files) == before:
                raise
            continue
        if _read(files) == before:
            return Certificates(before, context)
    raise TlsFileError(f"{files.cert_file} and the other TLS files kept changing while they were read")


def _read(files: TlsFiles) -> tuple[bytes, ...]:
    contents = []
    for name, path in files.paths():
        try:
            with open(path, "rb") as handle:
                contents.append(handle.read())
        except OSError as error:
            raise TlsFileError(f"cannot read {name} {path}: {error.strerror}") from None
    return tuple(contents)


def _context(files: TlsFiles, contents: tuple[bytes, ...]) -> ssl.SSLContext:
    """A server context with the files' certificates; TlsFileError names the file at fault."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    _check_certificates("tls_cert_file", files.cert_file, contents[0])
    try:
        context.load_cert_chain(files.cert_file, files.key_file, password=_refuse_password)
    except _EncryptedKey:
        raise TlsFileError(f"tls_key_file {files.key_file} is encrypted; taskq needs an unencrypted key") from None
    except ssl.SSLError as error:
        if "PRIVATE KEY-----" not in contents[1].decode("ascii", "replace"):
            raise TlsFileError(f"tls_key_file {files.key_file} holds no PEM private key") from None
        if error.reason == "KEY_VALUES_MISMATCH":
            raise TlsFileError(
                f"tls_key_file {files.key_file} is not the key of the certificate in tls_cert_file {files.cert_file}"
            ) from None
        raise TlsFileError(f"tls_key_file {files.key_file} cannot be used: {error.reason or error}") from None
    if files.client_ca_file is not None:
        _check_certificates("tls_client_ca_file", files.client_ca_file, contents[2])
        context.load_verify_locations(cadata=contents[2].decode("ascii"))
        context.verify_mode = ssl.CERT_REQUIRED
    return context


def _check_certificates(name: str, path: str, content: bytes) -> None:
    """Raises TlsFileError unless `content` holds PEM certificates."""
    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_verify_locations(cadata=content.decode("ascii"))
    except (UnicodeDecodeError, ValueError, ssl.SSLError):
        raise TlsFileError(f"{name} {path} holds no PEM certificate") from None


class _EncryptedKey(Exception):
    pass


def _refuse_password() -> str:
    # Without a callback, OpenSSL would ask for the passphrase on the terminal.
    raise _EncryptedKey


__all__ = ["TlsFiles", "TlsFileError", "CertificateFiles", "Certificates", "CertificateReloader", "grpc_credentials"]
