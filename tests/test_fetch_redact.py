"""Secrets never reach errors, logs, reprs or returned URLs."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from clipatlas.errors import FetchError
from clipatlas.fetch import Fetcher, FetchPolicy, redact, scrub
from tests.hostile_server import HostileServer

SECRET = "SECRETabc123"
BEARER = "BEARERzz987"
GIVEN = "GIVENkey555"


@pytest.fixture(scope="module")
def server() -> Iterator[HostileServer]:
    with HostileServer() as running:
        yield running


@pytest.fixture
def fetcher() -> Iterator[Fetcher]:
    policy = FetchPolicy(
        allow_hosts=frozenset({"127.0.0.1"}), retries=1, backoff_base=0.01, total_timeout=2
    )
    with Fetcher(policy, secrets=[GIVEN], resolver=lambda h, p: []) as client:
        yield client


def assert_clean(*texts: str) -> None:
    for text in texts:
        for secret in (SECRET, BEARER, GIVEN):
            assert secret not in text, text


@pytest.mark.parametrize(
    "name", ["api_key", "apikey", "key", "token", "access_token", "secret", "client_secret"]
)
def test_credential_named_query_parameters_are_masked(name: str) -> None:
    shown = redact(f"https://api.example.com/v1/images?limit=5&{name}={SECRET}&page=2")
    assert shown == f"https://api.example.com/v1/images?limit=5&{name}=***&page=2"


def test_given_secrets_are_masked_anywhere_and_userinfo_is_dropped() -> None:
    shown = redact(f"https://u:{SECRET}@x.com/{GIVEN}/a?q={GIVEN}", [GIVEN, SECRET])
    assert shown == "https://x.com/***/a?q=***"


def test_scrub_masks_url_encoded_secrets() -> None:
    assert scrub("a%2Fb and a/b", ["a/b"]) == "*** and ***"


def test_a_failing_request_never_shows_the_key_or_the_authorization_header(
    fetcher: Fetcher, server: HostileServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="clipatlas.fetch")
    with pytest.raises(FetchError) as caught:
        fetcher.get(
            server.url(f"/status/503?api_key={SECRET}&x={GIVEN}"),
            headers={"Authorization": f"Bearer {BEARER}"},
        )
    error = caught.value
    assert error.status == 503
    assert error.__cause__ is None and error.__suppress_context__
    assert_clean(str(error), repr(error), error.url, error.detail, caplog.text)
    assert any("retrying" in record.getMessage() for record in caplog.records)


def test_a_successful_request_returns_only_redacted_urls(
    fetcher: Fetcher, server: HostileServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="clipatlas.fetch")
    result = fetcher.get(
        server.url("/redirect/1"),
        params={"api_key": SECRET},
        headers={"Authorization": f"Bearer {BEARER}"},
        expect="image",
    )
    assert result.status == 200
    assert_clean(result.url, result.final_url, repr(result), caplog.text, repr(fetcher))
    assert "api_key=***" in result.url


def test_a_redirect_that_carries_the_key_is_redacted_too(
    fetcher: Fetcher, server: HostileServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="clipatlas.fetch")
    target = f"/status/404?token={SECRET}"
    with pytest.raises(FetchError) as caught:
        fetcher.get(server.url(f"/redirect-to?to={target}&k={GIVEN}"))
    assert caught.value.status == 404
    assert_clean(str(caught.value), caplog.text)


def test_a_blocked_url_with_a_key_is_redacted(fetcher: Fetcher) -> None:
    with pytest.raises(FetchError) as caught:
        fetcher.get(f"http://169.254.169.254/latest?access_token={SECRET}")
    assert_clean(str(caught.value))


def test_the_authorization_header_is_not_sent_across_origins(
    fetcher: Fetcher, server: HostileServer
) -> None:
    echo = server.url("/echo").replace("127.0.0.1", "127.0.0.1.", 1)  # same server, new origin
    result = fetcher.get_json(
        server.url(f"/redirect-to?to={echo}"), headers={"Authorization": f"Bearer {BEARER}"}
    )
    assert "authorization" not in result["headers"]
