"""The Fetcher against a misbehaving local server (127.0.0.1 only; DNS is faked)."""

from __future__ import annotations

import json
import socket
import time
import uuid
from collections.abc import Iterator

import pytest

from clipatlas.errors import FetchError, Reason
from clipatlas.fetch import Fetcher, FetchPolicy, FetchResult
from tests.hostile_server import GZIP_BOMB_SIZE, HostileServer

ALIAS = "images.test"  # allow-listed name the fake resolver maps to 127.0.0.1


def fake_resolver(host: str, port: int) -> list[str]:
    names = {ALIAS: ["127.0.0.1"], "other.test": ["127.0.0.1"]}
    if host not in names:
        raise OSError(f"fake resolver does not know {host}")
    return names[host]


def policy(**overrides: object) -> FetchPolicy:
    base: dict[str, object] = {
        "allow_hosts": frozenset({"127.0.0.1", ALIAS}),
        "max_bytes": 1_000_000,
        "total_timeout": 0.6,
        "connect_timeout": 1.0,
        "retries": 3,
        "backoff_base": 0.01,
        "backoff_cap": 0.05,
        "max_retry_after": 5.0,
    }
    base.update(overrides)
    return FetchPolicy(**base)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def server() -> Iterator[HostileServer]:
    with HostileServer() as running:
        yield running


@pytest.fixture
def fetcher() -> Iterator[Fetcher]:
    with Fetcher(policy(), resolver=fake_resolver) as client:
        yield client


def key() -> str:
    return uuid.uuid4().hex


def failure(fetcher: Fetcher, url: str, **kwargs: object) -> FetchError:
    with pytest.raises(FetchError) as caught:
        fetcher.get(url, **kwargs)  # type: ignore[arg-type]
    return caught.value


def test_a_normal_png_is_fetched_and_sniffed(fetcher: Fetcher, server: HostileServer) -> None:
    result = fetcher.get(server.url("/img.png"), expect="image")
    assert (result.status, result.data, result.content_type) == (200, server.png, "image/png")
    assert result.final_url == server.url("/img.png")


def test_png_bytes_under_a_jpeg_url_are_accepted_as_an_image(
    fetcher: Fetcher, server: HostileServer
) -> None:
    assert fetcher.get(server.url("/photo.jpeg"), expect="image").data == server.png


def test_an_html_page_where_an_image_was_expected_is_not_an_image(
    fetcher: Fetcher, server: HostileServer
) -> None:
    error = failure(fetcher, server.url("/html?type=image/jpeg"), expect="image")
    assert (error.reason, error.status) == (Reason.NOT_AN_IMAGE, 200)


def test_a_json_endpoint_is_parsed(fetcher: Fetcher, server: HostileServer) -> None:
    assert fetcher.get_json(server.url("/json")) == {"ok": True, "items": [1, 2]}


def test_a_page_that_is_not_json_fails_a_json_request(
    fetcher: Fetcher, server: HostileServer
) -> None:
    assert failure(fetcher, server.url("/html"), expect="json").reason is Reason.HTTP_ERROR


def test_a_slowly_trickling_body_is_cut_off_by_the_total_timeout(
    fetcher: Fetcher, server: HostileServer
) -> None:
    start = time.monotonic()
    assert failure(fetcher, server.url("/slow-body")).reason is Reason.TIMEOUT
    assert time.monotonic() - start < 1.5


def test_never_ending_headers_are_cut_off_by_the_total_timeout(
    fetcher: Fetcher, server: HostileServer
) -> None:
    start = time.monotonic()
    assert failure(fetcher, server.url("/slow-headers")).reason is Reason.TIMEOUT
    assert time.monotonic() - start < 1.5


def test_a_declared_oversized_body_is_refused_before_reading(
    fetcher: Fetcher, server: HostileServer
) -> None:
    assert failure(fetcher, server.url("/big")).reason is Reason.TOO_LARGE


def test_an_oversized_body_without_a_length_is_cut_off_while_streaming(
    fetcher: Fetcher, server: HostileServer
) -> None:
    error = failure(fetcher, server.url("/big?length=false&size=50000000"))
    assert error.reason is Reason.TOO_LARGE


def test_a_gzip_bomb_is_refused_on_its_decompressed_size(
    fetcher: Fetcher, server: HostileServer
) -> None:
    assert fetcher.policy.max_bytes < GZIP_BOMB_SIZE
    assert failure(fetcher, server.url("/gzip-bomb")).reason is Reason.TOO_LARGE


def test_a_gzip_encoded_picture_is_decompressed(fetcher: Fetcher, server: HostileServer) -> None:
    assert fetcher.get(server.url("/gzip-png"), expect="image").data == server.png


def test_a_content_length_longer_than_the_body_is_truncated(
    fetcher: Fetcher, server: HostileServer
) -> None:
    assert failure(fetcher, server.url("/short-body")).reason is Reason.TRUNCATED


def test_a_content_length_shorter_than_the_body_keeps_only_the_declared_bytes(
    fetcher: Fetcher, server: HostileServer
) -> None:
    assert fetcher.get(server.url("/long-body")).data == server.png[:30]


def test_a_short_redirect_chain_is_followed(fetcher: Fetcher, server: HostileServer) -> None:
    result = fetcher.get(server.url("/redirect/3"), expect="image")
    assert result.final_url == server.url("/img.png")
    assert result.url == server.url("/redirect/3")


def test_a_redirect_chain_longer_than_five_fails(fetcher: Fetcher, server: HostileServer) -> None:
    error = failure(fetcher, server.url("/redirect/6"))
    assert (error.reason, error.status) == (Reason.HTTP_ERROR, 302)
    assert "redirects" in error.detail


def test_a_redirect_loop_fails(fetcher: Fetcher, server: HostileServer) -> None:
    assert failure(fetcher, server.url("/redirect-loop")).reason is Reason.HTTP_ERROR


def test_an_allow_listed_alias_connects_to_the_checked_address_keeping_the_host_header(
    server: HostileServer,
) -> None:
    with Fetcher(policy(allow_hosts=frozenset({ALIAS})), resolver=fake_resolver) as client:
        echoed = client.get_json(server.url("/echo", host=ALIAS))
    assert echoed["headers"]["host"] == f"{ALIAS}:{server.port}"


@pytest.mark.parametrize(
    "target",
    ["http://127.0.0.2:{port}/img.png", "http://[::1]:{port}/img.png", "http://0x7f.1:{port}/"],
)
def test_a_redirect_from_an_allow_listed_alias_to_loopback_is_blocked(
    server: HostileServer, target: str
) -> None:
    with Fetcher(policy(allow_hosts=frozenset({ALIAS})), resolver=fake_resolver) as client:
        to = target.format(port=server.port)
        error = failure(client, server.url(f"/redirect-to?to={to}", host=ALIAS))
    assert error.reason is Reason.BLOCKED_ADDRESS


def test_a_redirect_to_a_name_resolving_to_loopback_is_blocked_at_connect_time(
    server: HostileServer,
) -> None:
    with Fetcher(policy(allow_hosts=frozenset({ALIAS})), resolver=fake_resolver) as client:
        to = f"http://other.test:{server.port}/img.png"
        error = failure(client, server.url(f"/redirect-to?to={to}", host=ALIAS))
    assert error.reason is Reason.BLOCKED_ADDRESS
    assert "other.test" in error.detail


def test_loopback_is_blocked_when_nothing_is_allow_listed(server: HostileServer) -> None:
    with Fetcher(policy(allow_hosts=frozenset()), resolver=fake_resolver) as client:
        assert failure(client, server.url("/img.png")).reason is Reason.BLOCKED_ADDRESS


def test_a_429_with_retry_after_seconds_is_waited_for(
    fetcher: Fetcher, server: HostileServer
) -> None:
    start = time.monotonic()
    assert fetcher.get(server.url(f"/retry-after?id={key()}&after=seconds")).status == 200
    assert 0.9 <= time.monotonic() - start < 3


def test_a_429_with_an_http_date_retry_after_is_waited_for(
    fetcher: Fetcher, server: HostileServer
) -> None:
    start = time.monotonic()
    assert fetcher.get(server.url(f"/retry-after?id={key()}&after=date")).status == 200
    assert 0.5 <= time.monotonic() - start < 4


def test_an_absurd_retry_after_fails_fast(fetcher: Fetcher, server: HostileServer) -> None:
    start = time.monotonic()
    error = failure(fetcher, server.url(f"/retry-after?id={key()}&after=absurd"))
    assert time.monotonic() - start < 2
    assert (error.reason, error.status) == (Reason.HTTP_ERROR, 429)
    assert "max_retry_after" in error.detail


def test_a_429_storm_without_retry_after_eventually_succeeds(
    fetcher: Fetcher, server: HostileServer
) -> None:
    ident = key()
    assert fetcher.get(server.url(f"/storm?id={ident}&n=3"), expect="image").status == 200
    assert server.hits["/storm"] >= 4


def test_a_429_storm_longer_than_the_retries_fails_with_429(
    fetcher: Fetcher, server: HostileServer
) -> None:
    error = failure(fetcher, server.url(f"/storm?id={key()}&n=50"))
    assert (error.reason, error.status) == (Reason.HTTP_ERROR, 429)


def test_a_503_then_success_is_retried(fetcher: Fetcher, server: HostileServer) -> None:
    assert fetcher.get(server.url(f"/storm?id={key()}&n=1&code=503")).data == server.png


def test_a_404_fails_at_once_without_retrying(fetcher: Fetcher, server: HostileServer) -> None:
    before = server.hits["/status/404"]
    error = failure(fetcher, server.url("/status/404"))
    assert (error.reason, error.status) == (Reason.HTTP_ERROR, 404)
    assert server.hits["/status/404"] == before + 1


def test_a_connection_reset_is_a_network_error_after_the_retries(
    fetcher: Fetcher, server: HostileServer
) -> None:
    before = server.hits["/reset"]
    assert failure(fetcher, server.url(f"/reset?id={key()}")).reason is Reason.NETWORK_ERROR
    assert server.hits["/reset"] == before + 1 + fetcher.policy.retries


def test_a_single_connection_reset_is_retried(fetcher: Fetcher, server: HostileServer) -> None:
    assert fetcher.get(server.url(f"/reset?id={key()}&n=1")).data == server.png


def test_a_refused_connection_is_a_network_error(fetcher: Fetcher) -> None:
    with socket.socket() as probe:  # a port of ours that nothing listens on any more
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    error = failure(fetcher, f"http://127.0.0.1:{port}/img.png")
    assert error.reason is Reason.NETWORK_ERROR


def test_fetch_many_keeps_input_order_and_reports_errors_in_place(
    fetcher: Fetcher, server: HostileServer
) -> None:
    urls = [server.url("/img.png"), server.url("/html"), server.url("/photo.jpeg")] * 5
    results = list(fetcher.fetch_many(urls, concurrency=4))
    assert [url for url, _ in results] == urls
    kinds = [type(outcome) for _, outcome in results]
    assert kinds == [FetchResult, FetchError, FetchResult] * 5
    assert all(
        outcome.reason is Reason.NOT_AN_IMAGE
        for _, outcome in results
        if isinstance(outcome, FetchError)
    )


def test_the_echoed_request_says_who_we_are_and_what_we_accept(
    fetcher: Fetcher, server: HostileServer
) -> None:
    headers = json.loads(fetcher.get(server.url("/echo")).data)["headers"]
    assert headers["user-agent"] == "clipatlas/0.1"
    assert headers["accept-encoding"] == "gzip, deflate"


def test_requests_to_one_host_never_exceed_the_per_host_limit(server: HostileServer) -> None:
    with Fetcher(policy(per_host_concurrency=2), resolver=fake_resolver) as client:
        urls = [server.url(f"/sleep?s=0.1&i={i}") for i in range(8)]
        outcomes = [outcome for _, outcome in client.fetch_many(urls, concurrency=8)]
    assert all(isinstance(outcome, FetchResult) for outcome in outcomes)
    assert server.state["max_in_flight"] == 2
