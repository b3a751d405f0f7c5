"""Safe HTTP fetching: SSRF guard, size and time caps, retries, redacted secrets.

The path of one URL::

    url --check_url--> http(s), a host, no userinfo, no blocked IP literal (any integer form)
        --GuardedBackend.connect_tcp--> resolve once, every address public or allow-listed,
                                        connect to a checked address (no second DNS lookup)
        --redirects--> followed by hand, at most ``max_redirects``, each hop checked again
        --read_body--> gzip/deflate inflated in bounded steps, at most ``max_bytes`` decoded,
                       the whole attempt within ``total_timeout`` of wall-clock time
        --expect--> ``image``: magic bytes sniffed (Content-Type is only a hint); ``json``

:class:`Fetcher` retries connection failures, truncated bodies, 5xx and 429 (jittered
exponential backoff, or ``Retry-After`` up to ``max_retry_after``) and raises
:class:`~clipatlas.errors.FetchError` with a typed :class:`~clipatlas.errors.Reason`
(``blocked_address``, ``http_error`` + status, ``timeout``, ``too_large``, ``truncated``,
``network_error``, ``not_an_image``, ``unsupported_format``). Secrets never reach a message,
a log record or a returned URL: everything shown goes through :func:`redact`.
"""

from clipatlas.fetch.fetcher import Expect, Fetcher, FetchResult
from clipatlas.fetch.guard import Resolver, check_url, is_public_address, parse_ip_host
from clipatlas.fetch.policy import FetchPolicy
from clipatlas.fetch.redact import redact, scrub

__all__ = [
    "Expect",
    "FetchPolicy",
    "FetchResult",
    "Fetcher",
    "Resolver",
    "check_url",
    "is_public_address",
    "parse_ip_host",
    "redact",
    "scrub",
]
