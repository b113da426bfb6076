"""The identity of a client certificate (mTLS): its URI subject alternative name (a SPIFFE ID
such as spiffe://example.org/ns/prod/sa/mailer), else its first DNS name, else its subject's
common name. The TLS handshake already checked the certificate against `tls_client_ca_file`;
this only names it, for the roles the tokens file gives that name.
"""

from __future__ import annotations

import functools

from cryptography import x509
from cryptography.x509.oid import NameOID


@functools.lru_cache(maxsize=1024)
def certificate_identity(certificate: bytes) -> str | None:
    """The identity of a PEM or DER certificate; None if it names nothing usable. Cached: a
    connection's calls all present the same certificate."""
    try:
        if certificate.lstrip().startswith(b"-----BEGIN"):
            parsed = x509.load_pem_x509_certificate(certificate)
        else:
            parsed = x509.load_der_x509_certificate(certificate)
    except ValueError:
        return None
    try:
        names = parsed.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (x509.ExtensionNotFound, ValueError):
        names = None
    if names is not None:
        for kind in (x509.UniformResourceIdentifier, x509.DNSName):
            values = names.get_values_for_type(kind)
            if values:
                return str(values[0])
    common_names = parsed.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if common_names:
        value = common_names[0].value
        return value if isinstance(value, str) else value.decode(errors="replace")
    return None


__all__ = ["certificate_identity"]
