"""What a :class:`~clipatlas.fetch.Fetcher` may do: hosts, sizes, times and retries."""

from __future__ import annotations

from dataclasses import dataclass, field

from clipatlas.errors import ConfigError

__all__ = ["FetchPolicy"]


@dataclass(frozen=True)
class FetchPolicy:
    """Limits applied to every request.

    ``allow_hosts`` lists host names or IP addresses that may be reached even though they are
    not public (e.g. ``"127.0.0.1"`` in tests, an intranet mirror). A listed host name may
    resolve to anything; a listed IP may be reached under any name. ``max_bytes`` counts
    decompressed bytes. ``total_timeout`` is a wall-clock cap on one attempt (every redirect hop,
    headers and body); retries start a fresh attempt after their backoff.
    """

    allow_hosts: frozenset[str] = field(default_factory=frozenset)
    max_bytes: int = 25 * 1024 * 1024
    total_timeout: float = 60.0
    connect_timeout: float = 10.0
    max_redirects: int = 5
    retries: int = 4
    backoff_base: float = 0.5
    backoff_cap: float = 30.0
    max_retry_after: float = 120.0
    per_host_concurrency: int = 4
    user_agent: str = "clipatlas/0.1"

    def __post_init__(self) -> None:
        hosts = frozenset(_normalise_host(h) for h in self.allow_hosts)
        object.__setattr__(self, "allow_hosts", hosts)
        checks = {
            "max_bytes": self.max_bytes > 0,
            "total_timeout": self.total_timeout > 0,
            "connect_timeout": self.connect_timeout > 0,
            "max_redirects": self.max_redirects >= 0,
            "retries": self.retries >= 0,
            "backoff_base": self.backoff_base >= 0,
            "backoff_cap": self.backoff_cap >= 0,
            "max_retry_after": self.max_retry_after >= 0,
            "per_host_concurrency": self.per_host_concurrency >= 1,
        }
        bad = [name for name, ok in checks.items() if not ok]
        if bad:
            raise ConfigError(f"invalid fetch policy: {', '.join(bad)} out of range")

    def allows_host(self, host: str) -> bool:
        return _normalise_host(host) in self.allow_hosts


def _normalise_host(host: str) -> str:
    return host.strip().strip("[]").rstrip(".").lower()
