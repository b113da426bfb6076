"""Server addresses: what a client (and the `taskq` CLI) accepts, where it connects, and
whether the address itself asks for TLS.

| address                                   | port                        | TLS                        |
|-------------------------------------------|-----------------------------|----------------------------|
| `host:port`, `[ipv6]:port`                | as given                    | when TLS settings are given|
| `host`, `[ipv6]`                          | 50051, taskq's own          | when TLS settings are given|
| `https://host[:port]`                     | as given, else 443          | always                     |
| `http://host[:port]`                      | as given, else 80           | never                      |
| `dns:///host[:port]`, `dns://dns-server/host[:port]` | as given, else 50051 | when TLS settings are given|
| `unix:path`, `unix:///absolute/path`      | (a Unix socket)             | when TLS settings are given|
| `ipv4:ip[:port],ip[:port]...`, `ipv6:[ip][:port],...` | each as given, else 50051 | when TLS settings are given|

The ipv4:/ipv6: lists are gRPC's own: one channel over several servers (with a round-robin
service config in the channel options, e.g. for taskq servers sharing a PostgreSQL database).

Only a URL's scheme brings its default port: a bare host is taskq's port, never 443 (which
is what gRPC itself would pick, and a surprise for a server on 50051). Anything else (another
scheme, a path or query after the host, a port outside 1-65535, an IPv6 address without
brackets, spaces) raises `InvalidAddress` at once, instead of failing later in gRPC's
resolver with UNAVAILABLE.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
import urllib.parse

#: The port of an address that names none (and is not a URL): the one `taskq serve` uses.
DEFAULT_PORT = 50051

FORMS = ("host[:port], [ipv6][:port], https://host[:port], http://host[:port], dns:///host[:port], unix:path "
         "or ipv4:ip[:port],...")

_HOST_NAME = re.compile(r"[A-Za-z0-9_]([A-Za-z0-9_.-]*[A-Za-z0-9_])?\.?")


class InvalidAddress(ValueError):
    """A server address that is not one of the accepted forms; the message says why."""


@dataclasses.dataclass(frozen=True)
class Address:
    #: What gRPC is given: host:port, dns://.../host:port or unix:...
    target: str
    #: True for https://, False for http://, None when the address leaves it to the settings.
    tls: bool | None


def parse_address(address: str) -> Address:
    """The gRPC target of `address` and whether it asks for TLS; InvalidAddress if malformed."""
    text = address.strip()
    scheme, separator, rest = text.partition(":")
    scheme = scheme.lower()
    if separator and scheme in ("http", "https") and rest.startswith("//"):
        return _url(address, text, scheme)
    if separator and scheme == "dns" and rest.startswith("//"):
        authority, slash, endpoint = rest[2:].partition("/")
        if not slash:
            raise _invalid(address, "dns: addresses are dns:///host:port (or dns://dns-server/host:port)")
        return Address(f"dns://{authority}/{_endpoint(address, endpoint)}", None)
    if separator and scheme in ("ipv4", "ipv6"):
        return Address(f"{scheme}:{','.join(_ip_endpoint(address, scheme, part) for part in rest.split(','))}", None)
    if separator and scheme == "unix":
        if not rest.strip("/"):
            raise _invalid(address, "unix: needs the path of a socket")
        return Address(text, None)
    if "://" in text:
        raise _invalid(address, f"{scheme}:// is not supported")
    return Address(_endpoint(address, text), None)


def is_local_address(address: str) -> bool:
    """Whether every server `address` names is on this machine: a Unix socket, localhost or a
    loopback IP (127.0.0.0/8, ::1). Traffic to it never crosses a network."""
    target = parse_address(address).target
    if target.startswith("unix:"):
        return True
    if target.startswith(("ipv4:", "ipv6:")):
        endpoints = target.partition(":")[2].split(",")
    else:
        endpoints = [target.rpartition("/")[2]]  # dns://server/host:port -> host:port
    for endpoint in endpoints:
        host = endpoint.rpartition(":")[0].strip("[]")
        if host.lower() in ("localhost", "localhost."):
            continue
        try:
            if not ipaddress.ip_address(host).is_loopback:
                return False
        except ValueError:
            return False
    return True


def _url(address: str, text: str, scheme: str) -> Address:
    try:
        url = urllib.parse.urlsplit(text)
        port = url.port
    except ValueError as error:
        raise _invalid(address, str(error)) from None
    if url.path not in ("", "/") or url.query or url.fragment:
        raise _invalid(address, "a server address has no path, query or fragment")
    if url.username is not None:
        raise _invalid(address, "a server address has no user name or password")
    if not url.hostname:
        raise _invalid(address, "the host is missing")
    host = _host(address, url.hostname)
    if port == 0:
        raise _invalid(address, "port 0 cannot be connected to")
    default = 443 if scheme == "https" else 80
    return Address(f"{host}:{port or default}", scheme == "https")


def _endpoint(address: str, text: str) -> str:
    """host:port from `text` (host, host:port, [ipv6] or [ipv6]:port), with the default port."""
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise _invalid(address, "an IPv6 address opened with [ is closed with ]")
        host, rest = text[1:end], text[end + 1:]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise _invalid(address, f"{host!r} is not an IPv6 address") from None
        if rest and not rest.startswith(":"):
            raise _invalid(address, "only :port may follow an IPv6 address")
        return f"[{host}]:{_port(address, rest[1:]) if rest else DEFAULT_PORT}"
    if text.count(":") > 1:
        raise _invalid(address, "an IPv6 address goes in brackets, as in [::1]:50051")
    host, separator, port = text.partition(":")
    host = _host(address, host)
    return f"{host}:{_port(address, port) if separator else DEFAULT_PORT}"


def _ip_endpoint(address: str, scheme: str, text: str) -> str:
    """One ip:port of an ipv4: or ipv6: list, with the default port."""
    endpoint = _endpoint(address, text)
    try:
        ip = ipaddress.ip_address(endpoint.rpartition(":")[0].strip("[]"))
    except ValueError:
        raise _invalid(address, f"{scheme}: lists {scheme} addresses, not {text!r}") from None
    if f"ipv{ip.version}" != scheme:
        raise _invalid(address, f"{scheme}: lists {scheme} addresses, not {text!r}")
    return endpoint


def _host(address: str, host: str) -> str:
    if ":" in host:  # from a URL, already unbracketed
        try:
            return f"[{ipaddress.IPv6Address(host)}]"
        except ValueError:
            raise _invalid(address, f"{host!r} is not an IPv6 address") from None
    if not host:
        raise _invalid(address, "the host is missing")
    if not _HOST_NAME.fullmatch(host):
        raise _invalid(address, f"{host!r} is not a host name or IP address")
    return host


def _port(address: str, port: str) -> int:
    if not (port.isascii() and port.isdigit()) or not 1 <= int(port) <= 65535:
        raise _invalid(address, f"the port must be a number from 1 to 65535, not {port!r}")
    return int(port)


def _invalid(address: str, reason: str) -> InvalidAddress:
    return InvalidAddress(f"invalid server address {address!r}: {reason} (use {FORMS})")


__all__ = ["DEFAULT_PORT", "Address", "InvalidAddress", "parse_address", "is_local_address"]
