"""Which addresses HTTP push may connect to (server-side request forgery).

A task's URL is chosen by whoever can create tasks; without a guard, they could make the
server call its own admin ports, the cloud metadata service (169.254.169.254) or anything on
the private network. Only globally routable addresses are allowed, unless the operator
allows networks (`--http-allow-networks 10.0.0.0/8,127.0.0.1/32`). The check is made on the
addresses a host name resolves to, at connection time, by the resolver the HTTP client uses,
so a name that resolves to a private address is refused as its address would be.
"""

from __future__ import annotations

import ipaddress
import socket

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class TargetRefused(OSError):
    """The target's addresses are not allowed; the message says which and how to allow them."""


def parse_networks(text: str) -> list[Network]:
    """Comma-separated CIDR networks (a bare address is a /32 or /128). ValueError if bad."""
    networks: list[Network] = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        try:
            networks.append(ipaddress.ip_network(part, strict=False))
        except ValueError:
            raise ValueError(f"{part!r} is not a network (like 10.0.0.0/8 or 127.0.0.1)") from None
    return networks


def _kind(address: Address) -> str | None:
    """Why an address is not public, or None if it is."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return _kind(address.ipv4_mapped)
    for kind in ("loopback", "unspecified", "link_local", "multicast", "private", "reserved"):
        if getattr(address, f"is_{kind}"):
            return kind.replace("_", "-")
    if not address.is_global:
        return "non-public"
    return None


class Guard:
    def __init__(self, allowed: list[Network]) -> None:
        self.allowed = allowed

    def refusal(self, address: str) -> str | None:
        """Why connecting to `address` is refused, or None if it is allowed."""
        try:
            ip = ipaddress.ip_address(address.split("%", 1)[0])
        except ValueError:
            return f"{address!r} is not an IP address"
        if any(ip in network for network in self.allowed):
            return None
        kind = _kind(ip)
        if kind is None:
            return None
        return f"{ip} is a {kind} address; allow it with --http-allow-networks"

    def check_literal(self, host: str) -> None:
        """Raises TargetRefused if `host` is an IP address that is not allowed (the HTTP client
        does not resolve IP addresses, so its resolver never sees them)."""
        try:
            ipaddress.ip_address(host.strip("[]").split("%", 1)[0])
        except ValueError:
            return  # a name: the resolver checks what it resolves to
        reason = self.refusal(host.strip("[]"))
        if reason is not None:
            raise TargetRefused(f"the target {host} is refused: {reason}")


class GuardedResolver(AbstractResolver):
    """Resolves with the default resolver, then keeps only allowed addresses."""

    def __init__(self, guard: Guard) -> None:
        self._guard = guard
        self._resolver = DefaultResolver()

    async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        results = await self._resolver.resolve(host, port, family)
        allowed = []
        refusals = []
        for result in results:
            reason = self._guard.refusal(result["host"])
            if reason is None:
                allowed.append(result)
            else:
                refusals.append(reason)
        if not allowed:
            raise TargetRefused(f"the target {host} is refused: it resolves to {'; '.join(sorted(set(refusals)))}")
        return allowed

    async def close(self) -> None:
        await self._resolver.close()
