"""Which addresses may be fetched (the SSRF guard).

:func:`is_public_address` says whether one IP is on the public internet, unwrapping IPv6 forms
that carry an IPv4 address (mapped, compatible, 6to4, Teredo, NAT64). :func:`parse_ip_host`
reads a host the way a resolver would, including the integer forms ``2130706433``,
``0177.0.0.1`` and ``0x7f.1``. :func:`check_url` vets a URL before any connection;
:func:`resolve_checked` is what the network backend calls at connect time, so the addresses
checked are the addresses connected to.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Sequence
from urllib.parse import urlsplit

from clipatlas.fetch.policy import FetchPolicy

__all__ = [
    "BlockedAddress",
    "IPAddress",
    "Resolver",
    "check_url",
    "is_public_address",
    "parse_ip_host",
    "resolve_checked",
    "system_resolver",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Sequence[str]]
"""``resolver(host, port) -> addresses`` (IP strings); the default uses ``getaddrinfo``."""

_NOT_PUBLIC = tuple(
    ipaddress.ip_network(n)
    for n in (
        "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16",
        "172.16.0.0/12", "192.0.0.0/24", "192.0.2.0/24", "192.88.99.0/24", "192.168.0.0/16",
        "198.18.0.0/15", "198.51.100.0/24", "203.0.113.0/24", "224.0.0.0/4", "240.0.0.0/4",
        "::/128", "::1/128", "64:ff9b:1::/48", "100::/64", "2001::/23", "2001:db8::/32",
        "3fff::/20", "fc00::/7", "fe80::/10", "fec0::/10", "ff00::/8",
    )
)  # fmt: skip
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


class BlockedAddress(Exception):
    """Raised inside the transport when a host or address is not allowed."""

    def __init__(self, host: str, detail: str) -> None:
        self.host, self.detail = host, detail
        super().__init__(detail)


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if int(ip) >> 32 == 0 and int(ip) > 1:  # IPv4-compatible ::a.b.c.d (deprecated)
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def is_public_address(ip: str | IPAddress) -> bool:
    """True only for globally routable unicast addresses."""
    try:
        addr = ipaddress.ip_address(ip) if isinstance(ip, str) else ip
    except ValueError:
        return False
    if isinstance(addr, ipaddress.IPv6Address):
        if addr.scope_id:
            return False
        if addr.teredo is not None:  # a tunnel whatever it wraps: never fetched from
            return False
        inner = _embedded_ipv4(addr)
        if inner is not None:
            return is_public_address(inner)
    if any(addr in net for net in _NOT_PUBLIC if net.version == addr.version):
        return False
    flags = (
        addr.is_private, addr.is_loopback, addr.is_link_local, addr.is_multicast,
        addr.is_reserved, addr.is_unspecified,
    )  # fmt: skip
    return addr.is_global and not any(flags)


def _ipv4_part(text: str) -> int | None:
    try:
        if text[:2].lower() == "0x":
            return int(text[2:] or "0", 16)
        if len(text) > 1 and text[0] == "0":
            return int(text[1:], 8)
        return int(text, 10) if text.isdigit() else None
    except ValueError:
        return None


def _legacy_ipv4(host: str) -> ipaddress.IPv4Address | None:
    """inet_aton rules: 1-4 dot-separated decimal/octal/hex parts, the last filling the rest."""
    parts = host.split(".")
    if not 1 <= len(parts) <= 4 or any(p == "" for p in parts):
        return None
    values = [_ipv4_part(p) for p in parts]
    if any(v is None for v in values):
        return None
    nums = [v for v in values if v is not None]
    head, last = nums[:-1], nums[-1]
    if any(v > 255 for v in head) or last >= 256 ** (4 - len(head)):
        return None
    value = last
    for i, v in enumerate(head):
        value |= v << (24 - 8 * i)
    return ipaddress.IPv4Address(value)


def parse_ip_host(host: str) -> IPAddress | None:
    """The IP a host literal stands for (any form a resolver accepts), or None for names."""
    bare = host.strip().strip("[]").rstrip(".")
    if not bare:
        return None
    try:
        return ipaddress.ip_address(bare)
    except ValueError:
        return _legacy_ipv4(bare)


def system_resolver(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


def resolve_checked(
    host: str, port: int, policy: FetchPolicy, resolver: Resolver | None = None
) -> list[IPAddress]:
    """Every address ``host`` resolves to, or :class:`BlockedAddress` if any is not allowed."""
    literal = parse_ip_host(host)
    if literal is not None:
        addresses: list[IPAddress] = [literal]
    else:
        try:
            answers = (resolver or system_resolver)(host, port)
        except (OSError, UnicodeError) as exc:
            raise OSError(f"cannot resolve {host}: {exc}") from exc
        addresses = []
        for answer in answers:
            parsed = parse_ip_host(answer)
            if parsed is None:
                raise BlockedAddress(host, f"{host} resolved to a non-address {answer!r}")
            addresses.append(parsed)
        if not addresses:
            raise OSError(f"cannot resolve {host}: no addresses")
    if policy.allows_host(host):
        return addresses
    for addr in addresses:
        if not is_public_address(addr) and not policy.allows_host(str(addr)):
            raise BlockedAddress(host, f"{host} resolves to non-public address {addr}")
    return addresses


def check_url(url: str, policy: FetchPolicy) -> str:
    """Vet ``url`` before connecting: http(s), a host, no userinfo, no blocked IP literal.

    Returns the host. Names are checked again, on their resolved addresses, at connect time.
    """
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a malformed port
    except ValueError as exc:
        raise BlockedAddress("", f"malformed URL ({exc})") from exc
    if parts.scheme.lower() not in ("http", "https"):
        raise BlockedAddress("", f"scheme {parts.scheme or '(none)'!r} is not http or https")
    if "@" in parts.netloc:
        raise BlockedAddress("", "URLs with user info are refused")
    host = parts.hostname or ""
    if not host:
        raise BlockedAddress("", "URL has no host")
    if policy.allows_host(host):
        return host
    literal = parse_ip_host(host)
    if literal is not None and not (is_public_address(literal) or policy.allows_host(str(literal))):
        raise BlockedAddress(host, f"{host} is non-public address {literal}")
    return host
