"""The SSRF guard: addresses, URL literals and connect-time resolution. No network is used."""

from __future__ import annotations

import pytest

from clipatlas.errors import ConfigError
from clipatlas.fetch import FetchPolicy, check_url, is_public_address, parse_ip_host
from clipatlas.fetch.backend import GuardedBackend
from clipatlas.fetch.guard import BlockedAddress, resolve_checked

POLICY = FetchPolicy()


class ChangingResolver:
    """Answers each lookup with the next list of addresses; counts lookups."""

    def __init__(self, *answers: list[str]) -> None:
        self.answers = list(answers)
        self.calls = 0

    def __call__(self, host: str, port: int) -> list[str]:
        self.calls += 1
        return self.answers[min(self.calls, len(self.answers)) - 1]


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1", "127.8.9.10", "10.1.2.3", "172.16.0.1", "192.168.1.1", "0.0.0.0",
        "169.254.169.254", "100.64.0.1", "224.0.0.1", "239.255.255.250", "255.255.255.255",
        "240.0.0.1", "192.0.2.10", "198.51.100.1", "203.0.113.5", "198.18.0.1", "::", "::1",
        "fe80::1", "fe80::1%eth0", "fc00::1", "fd12:3456::1", "ff02::1", "2001:db8::1",
        "::ffff:127.0.0.1", "::ffff:10.0.0.1", "::127.0.0.1", "2002:7f00:1::1",
        "2002:c0a8:101::1", "2001:0:4136:e378:8000:63bf:3fff:fdd2", "64:ff9b::7f00:1",
        "not an address",
    ],
)  # fmt: skip
def test_non_public_addresses_are_refused(address: str) -> None:
    assert not is_public_address(address)


@pytest.mark.parametrize(
    "address", ["8.8.8.8", "93.184.216.34", "1.1.1.1", "2606:4700::1111", "::ffff:8.8.8.8"]
)
def test_public_addresses_are_accepted(address: str) -> None:
    assert is_public_address(address)


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("2130706433", "127.0.0.1"),
        ("0177.0.0.1", "127.0.0.1"),
        ("0x7f.1", "127.0.0.1"),
        ("0x7f000001", "127.0.0.1"),
        ("127.1", "127.0.0.1"),
        ("017700000001", "127.0.0.1"),
        ("[::ffff:127.0.0.1]", "::ffff:7f00:1"),
        ("169.254.169.254.", "169.254.169.254"),
    ],
)
def test_integer_and_shorthand_hosts_are_read_the_way_a_resolver_reads_them(
    host: str, expected: str
) -> None:
    assert str(parse_ip_host(host)) == expected


@pytest.mark.parametrize("host", ["example.com", "1.2.3.4.5", "0x100.1.1.1", "256.1.1.1", "09.1"])
def test_names_and_impossible_numbers_are_not_taken_for_addresses(host: str) -> None:
    assert parse_ip_host(host) is None


@pytest.mark.parametrize(
    "url",
    [
        "http://2130706433/", "http://0177.0.0.1/", "http://0x7f.1/", "http://[::ffff:127.0.0.1]/",
        "http://0.0.0.0/", "http://169.254.169.254/latest/meta-data/", "http://100.64.0.1/",
        "http://224.0.0.1/", "http://[fe80::1]/", "http://[::1]:8080/", "https://10.0.0.1/",
    ],
)  # fmt: skip
def test_classic_ssrf_urls_are_blocked_before_connecting(url: str) -> None:
    with pytest.raises(BlockedAddress):
        check_url(url, POLICY)


@pytest.mark.parametrize(
    "url",
    ["file:///etc/passwd", "ftp://example.com/x", "gopher://x/", "http:///nohost", "//x.com/a"],
)
def test_only_http_and_https_urls_with_a_host_are_accepted(url: str) -> None:
    with pytest.raises(BlockedAddress):
        check_url(url, POLICY)


def test_urls_with_user_info_are_refused() -> None:
    with pytest.raises(BlockedAddress, match="user info"):
        check_url("http://user:pw@example.com/", POLICY)


def test_public_names_pass_the_url_check_and_are_resolved_at_connect_time() -> None:
    assert check_url("https://Example.com/a.png", POLICY) == "example.com"


def test_allow_listed_hosts_and_addresses_are_accepted() -> None:
    policy = FetchPolicy(allow_hosts=frozenset({"127.0.0.1", "Intranet.Local."}))
    assert check_url("http://127.0.0.1:9/x", policy) == "127.0.0.1"
    assert resolve_checked("intranet.local", 80, policy, lambda h, p: ["10.0.0.7"])
    with pytest.raises(BlockedAddress):
        check_url("http://127.0.0.2/x", policy)


def test_a_host_resolving_to_one_public_and_one_private_address_is_blocked() -> None:
    resolver = ChangingResolver(["93.184.216.34", "127.0.0.1"])
    with pytest.raises(BlockedAddress, match=r"127\.0\.0\.1"):
        resolve_checked("mixed.test", 80, POLICY, resolver)


def test_a_dns_answer_that_changes_after_the_check_is_blocked_at_connect_time() -> None:
    resolver = ChangingResolver(["93.184.216.34"], ["127.0.0.1"])
    # a naive client would check here, see a public address, then let the socket resolve again
    assert resolve_checked("rebind.test", 80, POLICY, resolver)
    backend = GuardedBackend(POLICY, resolver)
    with pytest.raises(BlockedAddress, match=r"rebind\.test"):
        backend.connect_tcp("rebind.test", 80, timeout=1.0)
    assert resolver.calls == 2  # the backend resolved once and checked what it would use


def test_a_resolver_answer_that_is_not_an_address_is_blocked() -> None:
    with pytest.raises(BlockedAddress):
        resolve_checked("weird.test", 80, POLICY, lambda h, p: ["localhost"])


def test_a_policy_with_impossible_limits_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="max_bytes"):
        FetchPolicy(max_bytes=0)
