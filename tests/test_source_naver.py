from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest

from clipatlas.errors import ConfigError, NaverAuthError, NaverError, NaverQuotaError
from clipatlas.fetch import Fetcher
from clipatlas.registry import default_registry
from clipatlas.settings import Settings
from clipatlas.sources.base import Candidate, Source, SourceContext
from clipatlas.sources.naver import NaverImageSource, clean_title
from tests.fake_naver import FakeNaver

CLIENT_ID = "id-Zq81"
CLIENT_SECRET = "secret-Xk42"


def make_settings(tmp_path: Path, naver: FakeNaver, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "home": tmp_path / "home",
        "allow_hosts": ["127.0.0.1"],
        "naver_base_url": naver.api_url,
        "naver_client_id": CLIENT_ID,
        "naver_client_secret": CLIENT_SECRET,
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


def make_fetcher(settings: Settings) -> Fetcher:
    policy = dataclasses.replace(settings.fetch_policy(), backoff_base=0.01, backoff_cap=0.05)
    return Fetcher(policy, secrets=settings.secrets())


@pytest.fixture
def naver() -> Iterator[FakeNaver]:
    with FakeNaver(client_id=CLIENT_ID, client_secret=CLIENT_SECRET, totals={"few": 37}) as fake:
        fake.state.totals["nothing"] = 0
        yield fake


@pytest.fixture
def settings(tmp_path: Path, naver: FakeNaver) -> Settings:
    return make_settings(tmp_path, naver)


@pytest.fixture
def fetcher(settings: Settings) -> Iterator[Fetcher]:
    with make_fetcher(settings) as f:
        yield f


def source(settings: Settings, fetcher: Fetcher, **kwargs: object) -> NaverImageSource:
    kwargs.setdefault("query", "단풍")
    kwargs.setdefault("rate_backoff", 0.01)
    return NaverImageSource(settings, fetcher, **kwargs)  # type: ignore[arg-type]


def api_starts(naver: FakeNaver) -> list[int]:
    return [int(r.params["start"]) for r in naver.requests]


# -- paging ----------------------------------------------------------------------------------


def test_paging_collects_exactly_limit_unique_items_with_clean_meta(
    naver: FakeNaver, settings: Settings, fetcher: Fetcher
) -> None:
    src = source(settings, fetcher, limit=250)
    got = list(src.iter_candidates())
    assert len(got) == 250
    assert len({c.key for c in got}) == 250
    assert api_starts(naver) == [1, 101, 201]
    assert src.stopped_because == "limit"
    first = got[0]
    assert first.source == "naver" and first.key == first.uri == first.meta["link"]
    assert first.meta["query"] == "단풍"
    assert first.meta["title"] == '단풍 photo 1 & friends "1"'
    assert first.meta["rank"] == 1 and got[-1].meta["rank"] == 250
    assert isinstance(first.meta["sizeheight"], int) and isinstance(first.meta["sizewidth"], int)
    assert first.meta["thumbnail"].startswith(naver.url + "/thumb/")
    assert first.meta["retrieved_at"].endswith("+00:00")


def test_the_source_sends_query_display_sort_and_filter_params(
    naver: FakeNaver, settings: Settings, fetcher: Fetcher
) -> None:
    list(source(settings, fetcher, limit=30, display=30, sort="date", size_filter="large")
         .iter_candidates())  # fmt: skip
    params = naver.requests[0].params
    assert params == {
        "query": "단풍", "display": "30", "start": "1", "sort": "date", "filter": "large"
    }  # fmt: skip


def test_sorting_by_date_changes_the_order_of_results(settings: Settings, fetcher: Fetcher) -> None:
    by_sim = [c.key for c in source(settings, fetcher, limit=5).iter_candidates()]
    by_date = [c.key for c in source(settings, fetcher, limit=5, sort="date").iter_candidates()]
    assert by_sim != by_date


def test_paging_stops_at_the_start_cap_even_when_total_is_huge(
    naver: FakeNaver, settings: Settings, fetcher: Fetcher
) -> None:
    src = source(settings, fetcher, limit=5000)
    got = list(src.iter_candidates())
    assert src.stopped_because == "start_cap"
    assert len(got) == 1099 == len({c.key for c in got})
    starts = api_starts(naver)
    assert max(starts) == 1000 and starts[-2:] == [901, 1000]
    assert src.total == 1_843_920


def test_paging_stops_at_total_when_fewer_results_exist_than_display(
    naver: FakeNaver, settings: Settings, fetcher: Fetcher
) -> None:
    src = source(settings, fetcher, query="few", limit=500)
    got = list(src.iter_candidates())
    assert len(got) == 37 and src.stopped_because == "total"
    assert len(naver.requests) == 1


def test_an_empty_result_yields_nothing_and_stops_at_total(
    settings: Settings, fetcher: Fetcher
) -> None:
    src = source(settings, fetcher, query="nothing")
    assert list(src.iter_candidates()) == []
    assert src.stopped_because == "total" and src.total == 0


def test_result_links_point_at_real_jpegs_the_fetcher_accepts(
    settings: Settings, fetcher: Fetcher
) -> None:
    first = next(iter(source(settings, fetcher, limit=1).iter_candidates()))
    result = fetcher.get(first.uri, expect="image")
    assert result.data[:3] == b"\xff\xd8\xff"


# -- errors ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "error_type", "code"),
    [
        ("SE01", NaverError, "SE01"),
        ("SE02", NaverError, "SE02"),
        ("SE03", NaverError, "SE03"),
        ("SE04", NaverError, "SE04"),
        ("SE05", NaverError, "SE05"),
        ("SE06", NaverError, "SE06"),
        ("SE99", NaverError, "SE99"),
        ("auth_id", NaverAuthError, "024"),
        ("auth_secret", NaverAuthError, "024"),
        ("auth_scope", NaverAuthError, "024"),
        ("daily", NaverQuotaError, "010"),
    ],
)
def test_each_error_code_in_a_body_maps_to_its_typed_error(
    tmp_path: Path, mode: str, error_type: type[NaverError], code: str
) -> None:
    with FakeNaver(client_id=CLIENT_ID, client_secret=CLIENT_SECRET, errors_as_200=True) as fake:
        settings = make_settings(tmp_path, fake)
        fake.fail_next(mode)
        with make_fetcher(settings) as fetcher, pytest.raises(error_type) as info:
            list(source(settings, fetcher).iter_candidates())
    assert type(info.value) is error_type
    assert info.value.code == code
    if mode == "daily":
        assert isinstance(info.value, NaverQuotaError) and info.value.scope == "daily"


@pytest.mark.parametrize(
    ("mode", "error_type", "status", "code"),
    [
        ("SE02", NaverError, 400, "SE02"),
        ("SE05", NaverError, 404, "SE05"),
        ("SE99", NaverError, 500, "SE99"),
        ("auth_scope", NaverAuthError, 401, "024"),
        ("daily", NaverQuotaError, 429, "010"),
    ],
)
def test_each_error_status_maps_to_its_typed_error_with_the_code_from_its_body(
    naver: FakeNaver,
    settings: Settings,
    fetcher: Fetcher,
    mode: str,
    error_type: type[NaverError],
    status: int,
    code: str,
) -> None:
    naver.fail_next(mode, times=10)  # outlasts the fetcher's retries of 5xx and 429
    with pytest.raises(error_type) as info:
        list(source(settings, fetcher).iter_candidates())
    assert type(info.value) is error_type and info.value.status == status
    assert info.value.code == code, "the SE code is read from the error response's body"


def test_a_wrong_base_path_is_a_naver_error_not_an_auth_error(
    tmp_path: Path, naver: FakeNaver
) -> None:
    settings = make_settings(tmp_path, naver, naver_base_url=naver.url + "/v1/search/imag")
    with make_fetcher(settings) as fetcher, pytest.raises(NaverError) as info:
        list(source(settings, fetcher).iter_candidates())
    assert type(info.value) is NaverError and info.value.status == 404


def test_a_daily_quota_mid_run_yields_what_was_gathered_then_raises(
    tmp_path: Path,
) -> None:
    with FakeNaver(client_id=CLIENT_ID, client_secret=CLIENT_SECRET, daily_quota=2) as fake:
        settings = make_settings(tmp_path, fake)
        with make_fetcher(settings) as fetcher:
            src = source(settings, fetcher, limit=500)
            got: list[Candidate] = []
            with pytest.raises(NaverQuotaError) as info:
                for candidate in src.iter_candidates():
                    got.append(candidate)
    assert len(got) == 200
    assert info.value.scope == "daily" and info.value.status == 429
    assert src.stopped_because == "daily_quota"


def test_a_daily_quota_code_is_not_retried(tmp_path: Path) -> None:
    with FakeNaver(client_id=CLIENT_ID, client_secret=CLIENT_SECRET, errors_as_200=True) as fake:
        settings = make_settings(tmp_path, fake)
        fake.fail_next("daily", times=5)
        with make_fetcher(settings) as fetcher, pytest.raises(NaverQuotaError):
            list(source(settings, fetcher).iter_candidates())
        assert len(fake.requests) == 1


def test_a_per_second_quota_status_is_retried_and_then_succeeds(
    naver: FakeNaver, settings: Settings, fetcher: Fetcher
) -> None:
    naver.fail_next("per_second", times=2)
    got = list(source(settings, fetcher, limit=10).iter_candidates())
    assert len(got) == 10 and len(naver.requests) == 3


def test_a_per_second_quota_code_is_retried_with_backoff_and_then_succeeds(
    tmp_path: Path,
) -> None:
    with FakeNaver(client_id=CLIENT_ID, client_secret=CLIENT_SECRET, errors_as_200=True) as fake:
        settings = make_settings(tmp_path, fake)
        fake.fail_next("per_second", times=2)
        with make_fetcher(settings) as fetcher:
            got = list(source(settings, fetcher, limit=10).iter_candidates())
        assert len(got) == 10 and len(fake.requests) == 3


def test_a_per_second_quota_that_persists_raises_a_per_second_quota_error(
    tmp_path: Path,
) -> None:
    with FakeNaver(client_id=CLIENT_ID, client_secret=CLIENT_SECRET, errors_as_200=True) as fake:
        settings = make_settings(tmp_path, fake)
        fake.fail_next("per_second", times=10)
        with make_fetcher(settings) as fetcher, pytest.raises(NaverQuotaError) as info:
            list(source(settings, fetcher, rate_retries=2).iter_candidates())
        assert info.value.scope == "per_second" and info.value.code == "012"
        assert len(fake.requests) == 3


# -- credentials -----------------------------------------------------------------------------


def test_credentials_are_sent_in_configurable_header_names(tmp_path: Path) -> None:
    id_header, secret_header = "X-NCP-APIGW-API-KEY-ID", "X-NCP-APIGW-API-KEY"
    with FakeNaver(
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        id_header=id_header,
        secret_header=secret_header,
    ) as fake:
        settings = make_settings(
            tmp_path, fake, naver_id_header=id_header, naver_secret_header=secret_header
        )
        with make_fetcher(settings) as fetcher:
            got = list(source(settings, fetcher, limit=3).iter_candidates())
        headers = fake.requests[0].headers
    assert len(got) == 3
    assert headers["x-ncp-apigw-api-key-id"] == CLIENT_ID
    assert headers["x-ncp-apigw-api-key"] == CLIENT_SECRET
    assert "x-naver-client-id" not in headers
    assert CLIENT_SECRET not in str(fake.requests[0].params)


def test_credentials_never_appear_in_errors_or_candidates(
    tmp_path: Path, naver: FakeNaver, settings: Settings, fetcher: Fetcher
) -> None:
    got = list(source(settings, fetcher, limit=5).iter_candidates())
    assert not any(CLIENT_ID in repr(c) or CLIENT_SECRET in repr(c) for c in got)
    wrong = make_settings(tmp_path, naver, naver_client_secret="other-secret-77")
    with make_fetcher(wrong) as other, pytest.raises(NaverAuthError) as info:
        list(source(wrong, other).iter_candidates())
    shown = f"{info.value} {info.value.detail!r} {info.value.args!r}"
    for secret in (CLIENT_ID, "other-secret-77"):
        assert secret not in shown
    assert info.value.status == 401


def test_missing_credentials_fail_fast_before_any_request(tmp_path: Path, naver: FakeNaver) -> None:
    settings = make_settings(tmp_path, naver, naver_client_secret=None)
    with make_fetcher(settings) as fetcher, pytest.raises(NaverAuthError, match="CLIENT_SECRET"):
        source(settings, fetcher)
    assert naver.requests == []


# -- arguments and registration --------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [{"display": 101}, {"display": 0}, {"sort": "new"}, {"size_filter": "huge"}, {"query": " "}],
)
def test_arguments_outside_the_api_limits_are_refused_before_any_request(
    naver: FakeNaver, settings: Settings, fetcher: Fetcher, kwargs: dict[str, object]
) -> None:
    with pytest.raises(ConfigError):
        source(settings, fetcher, **kwargs)
    assert naver.requests == []


def test_titles_lose_bold_tags_and_html_entities() -> None:
    assert clean_title("<b>단풍</b> 일러스트 PNG &amp; 벡터 &quot;무료&quot;") == (
        '단풍 일러스트 PNG & 벡터 "무료"'
    )
    assert clean_title(None) == ""


def test_the_naver_source_is_registered_and_satisfies_the_source_protocol(
    settings: Settings, fetcher: Fetcher
) -> None:
    registry = default_registry(with_entry_points=False)
    context = SourceContext(settings, lambda: fetcher)
    src = registry.create_source("naver", context, query="cat", limit=5)
    assert isinstance(src, Source) and src.name == "naver"


def test_the_fake_validates_start_display_and_encoding_like_the_real_api(
    tmp_path: Path,
) -> None:
    with FakeNaver(client_id=CLIENT_ID, client_secret=CLIENT_SECRET, errors_as_200=True) as fake:
        settings = make_settings(tmp_path, fake)
        headers = {settings.naver_id_header: CLIENT_ID, settings.naver_secret_header: CLIENT_SECRET}
        with make_fetcher(settings) as fetcher:

            def code(url: str, **params: object) -> object:
                return fetcher.get_json(url, params=params, headers=headers).get("errorCode")

            assert code(fake.api_url, query="a", start=1001) == "SE03"
            assert code(fake.api_url, query="a", display=101) == "SE02"
            assert code(fake.api_url, query="a", sort="new") == "SE04"
            assert code(fake.api_url, query=" ") == "SE01"
            assert code(fake.api_url + "?query=%FF%FE") == "SE06"
            assert code(fake.url + "/v1/search/blog", query="a") == "SE05"
            page = fetcher.get_json(fake.url + "/v1/search/image.json", params={"query": "a"})
    assert page["errorCode"] == "024"  # no credentials


def test_a_daily_quota_429_is_final_after_exactly_one_request(tmp_path: Path) -> None:
    with FakeNaver(client_id=CLIENT_ID, client_secret=CLIENT_SECRET, daily_quota=0) as fake:
        settings = make_settings(tmp_path, fake)
        with make_fetcher(settings) as fetcher, pytest.raises(NaverQuotaError) as info:
            list(source(settings, fetcher).iter_candidates())
        assert len(fake.requests) == 1, "a quota that resets tomorrow is not retried"
    error = info.value
    assert (error.scope, error.code, error.status) == ("daily", "010", 429)
    assert "Query limit exceeded" in str(error) and "midnight KST" in str(error)


def test_a_per_second_429_status_is_still_retried_by_the_fetcher(tmp_path: Path) -> None:
    with FakeNaver(client_id=CLIENT_ID, client_secret=CLIENT_SECRET) as fake:
        settings = make_settings(tmp_path, fake)
        fake.fail_next("per_second", times=2)
        with make_fetcher(settings) as fetcher:
            src = source(settings, fetcher, limit=10, rate_retries=0)
            assert len(list(src.iter_candidates())) == 10
        assert len(fake.requests) == 3 and src.requests == 1, "retried inside the fetcher"
