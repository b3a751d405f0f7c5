"""How the web app is exposed: bind address, token, Host allow-list, body cap, workers."""

from __future__ import annotations

import ipaddress
import secrets
from dataclasses import dataclass, field

from clipatlas.errors import WebConfigError

__all__ = ["DEFAULT_MAX_BODY", "TOKEN_HEADER", "WebConfig", "is_loopback"]

DEFAULT_MAX_BODY = 20 * 1024 * 1024
TOKEN_HEADER = "X-Clipatlas-Token"
TOKEN_COOKIE = "clipatlas_token"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class WebConfig:
    """``token``: required on every request when set (always set for non-loopback binds).
    ``write_token``: what state-changing requests must send in :data:`TOKEN_HEADER`; equal to
    ``token`` when there is one, else a random per-process value the pages embed (so a
    cross-site form can never post to a loopback server)."""

    host: str = "127.0.0.1"
    port: int = 8000
    token: str | None = None
    allowed_hosts: frozenset[str] = field(default_factory=frozenset)
    max_body: int = DEFAULT_MAX_BODY
    workers: int = 1
    write_token: str = field(default_factory=lambda: secrets.token_urlsafe(24))

    @classmethod
    def build(
        cls,
        *,
        host: str = "127.0.0.1",
        port: int = 8000,
        token: str | None = None,
        allowed_hosts: list[str] | tuple[str, ...] = (),
        max_body: int = DEFAULT_MAX_BODY,
        workers: int = 1,
    ) -> WebConfig:
        token = token or None
        if not is_loopback(host) and not token:
            raise WebConfigError(
                f"binding to {host} exposes the app beyond this machine: give a token "
                "(--token or CLIPATLAS_WEB_TOKEN)"
            )
        if token is not None and len(token) < 16:
            raise WebConfigError("the token must be at least 16 characters")
        if max_body < 1:
            raise WebConfigError("the body cap must be positive")
        hosts = {"127.0.0.1", "localhost", "[::1]", "::1", *allowed_hosts}
        if host not in ("0.0.0.0", "::"):
            hosts.add(host)
        return cls(
            host=host,
            port=port,
            token=token,
            allowed_hosts=frozenset(h.lower() for h in hosts),
            max_body=max_body,
            workers=workers,
            write_token=token or secrets.token_urlsafe(24),
        )

    @property
    def url_host(self) -> str:
        return "127.0.0.1" if self.host in ("0.0.0.0", "::") else self.host
