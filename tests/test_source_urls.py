from __future__ import annotations

import json
from pathlib import Path
from typing import NoReturn

import pytest

from clipatlas.errors import SourceError
from clipatlas.registry import default_registry
from clipatlas.settings import Settings
from clipatlas.sources.base import Source, SourceContext
from clipatlas.sources.urls import UrlListSource


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_a_text_list_skips_blank_lines_and_comments(tmp_path: Path) -> None:
    path = write(
        tmp_path / "list.txt",
        "# pictures\nhttps://a.example/1.jpg\n\n   \n  http://b.example/2.png  \n# end\n",
    )
    src = UrlListSource(path)
    got = list(src.iter_candidates())
    assert [c.key for c in got] == ["https://a.example/1.jpg", "http://b.example/2.png"]
    assert all(c.source == "urls" and c.uri == c.key and c.meta == {} for c in got)


def test_a_csv_list_keeps_other_columns_as_meta(tmp_path: Path) -> None:
    path = write(
        tmp_path / "list.csv",
        "image,caption,license\nhttps://a.example/1.jpg,a cat,cc-by\n"
        'https://a.example/2.jpg,"a dog, running",cc0\n',
    )
    got = list(UrlListSource(path, url_column="image").iter_candidates())
    assert [c.key for c in got] == ["https://a.example/1.jpg", "https://a.example/2.jpg"]
    assert got[1].meta == {"caption": "a dog, running", "license": "cc0"}


def test_a_jsonl_list_keeps_other_fields_and_counts_malformed_lines(tmp_path: Path) -> None:
    lines = [
        json.dumps({"url": "https://a.example/1.jpg", "tags": ["x"], "score": 0.5}),
        "{not json",
        json.dumps(["https://a.example/array.jpg"]),
        "",
        json.dumps({"link": "https://a.example/no-url-field.jpg"}),
        json.dumps({"url": " https://a.example/2.jpg "}),
    ]
    src = UrlListSource(write(tmp_path / "list.jsonl", "\n".join(lines) + "\n"))
    got = list(src.iter_candidates())
    assert [c.key for c in got] == ["https://a.example/1.jpg", "https://a.example/2.jpg"]
    assert got[0].meta == {"tags": ["x"], "score": 0.5}
    assert src.skipped_lines == [2, 3, 5]


def test_a_url_listed_twice_is_offered_once(tmp_path: Path) -> None:
    path = write(
        tmp_path / "list.txt",
        "https://a.example/1.jpg\n https://a.example/1.jpg\nhttps://a.example/2.jpg\n",
    )
    src = UrlListSource(path)
    assert len(list(src.iter_candidates())) == 2
    assert src.duplicates == 1


def test_urls_that_are_not_http_or_https_are_skipped_and_counted(tmp_path: Path) -> None:
    path = write(
        tmp_path / "list.txt",
        "file:///etc/passwd\nhttps://a.example/1.jpg\nftp://a.example/x.jpg\nnot a url\nhttp://\n",
    )
    src = UrlListSource(path)
    assert [c.key for c in src.iter_candidates()] == ["https://a.example/1.jpg"]
    assert src.invalid_urls == [
        (1, "file:///etc/passwd"), (3, "ftp://a.example/x.jpg"), (4, "not a url"), (5, "http://")
    ]  # fmt: skip


def test_limit_stops_after_that_many_unique_urls(tmp_path: Path) -> None:
    path = write(tmp_path / "list.txt", "".join(f"https://a.example/{i}.jpg\n" for i in range(9)))
    assert len(list(UrlListSource(path, limit=4).iter_candidates())) == 4


def test_a_missing_csv_column_is_a_clear_source_error(tmp_path: Path) -> None:
    path = write(tmp_path / "list.csv", "link,caption\nhttps://a.example/1.jpg,x\n")
    with pytest.raises(SourceError, match=r"no column 'url' \(columns: link, caption\)"):
        UrlListSource(path)


def test_a_missing_file_is_a_clear_source_error(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="does not exist"):
        UrlListSource(tmp_path / "nope.txt")


def test_an_unknown_extension_is_a_source_error(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="unknown extension"):
        UrlListSource(write(tmp_path / "list.xml", "<urls/>"))


def test_the_urls_source_is_registered_and_satisfies_the_source_protocol(tmp_path: Path) -> None:
    path = write(tmp_path / "list.txt", "https://a.example/1.jpg\n")

    def no_fetcher() -> NoReturn:
        raise AssertionError("a URL list needs no fetcher to be listed")

    context = SourceContext(Settings(home=tmp_path / "home"), no_fetcher)
    src = default_registry(with_entry_points=False).create_source("urls", context, path=path)
    assert isinstance(src, Source) and src.name == "urls"


def test_credentials_in_a_listed_url_are_masked_in_the_key_and_kept_for_the_download(
    tmp_path: Path,
) -> None:
    path = tmp_path / "list.txt"
    path.write_text(
        "https://img.example/a.jpg?api_key=s3cret&size=2\n"
        "https://img.example/a.jpg?api_key=other&size=2\n"  # the same picture, another key
        "https://user:pw@img.example/b.jpg\n"
        "https://img.example/c.jpg?size=2\n"
    )
    source = UrlListSource(path)
    a, b, c = source.iter_candidates()
    assert (a.key, a.uri) == ("https://img.example/a.jpg?api_key=***&size=2",) * 2
    assert a.download_url == "https://img.example/a.jpg?api_key=s3cret&size=2"
    assert (b.key, b.download_url) == (
        "https://img.example/b.jpg",
        "https://user:pw@img.example/b.jpg",
    )
    assert c.key == c.download_url == "https://img.example/c.jpg?size=2" and c.fetch_url is None
    assert source.duplicates == 1
