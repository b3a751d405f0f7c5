"""``civitai``: preview and gallery images from the CivitAI REST API v1, with provenance.

Modes (``mode=``):

- ``models``: ``GET /models`` filtered by ``types``/``sort``/``period``/``nsfw``/``query``/
  ``tag``/``username``/``base_models``, walked by cursor; up to ``images_per_version`` preview
  images of every version of every model.
- ``model``: ``GET /models/{model_id}``; the previews of one model's versions.
- ``version``: ``GET /model-versions/{version_id}``; the previews of one version (with prompts).
- ``images``: ``GET /images`` filtered by ``model_id``/``version_id``/``username``/``nsfw``/
  ``sort``/``period``, walked by cursor, with ``withMeta=true`` for the prompt metadata.

A picture that is a preview of several models is offered once, with every model it was
seen for in ``meta["models"]`` (links :mod:`clipatlas.store.model_links` adds to the stored
item when it turns up again later); the links of a repeat are added to the candidate already
offered, so a consumer that lists the whole walk before writing (ingest, the dataset builder)
stores them all. The top-level ``model_id``/``model_name``/``tags`` stay the first model's.

Every candidate's key is ``image:<id>`` (the id taken from the URL's file name when the API
leaves it out, a hash of the URL when neither exists), so a key is stable across runs and modes.
``limit`` caps the number of images offered; ``page_limit`` is the API page size (``limit=`` of
each request, default 100; at most 100 on ``/models`` and 200 on ``/images``, where the API
refuses more with a 400, so a larger value is a ConfigError). ``nsfw=True`` asks for every
level (``/images``: ``nsfw=X``), ``False`` for PG only, None leaves the server's default.

Incremental sync: keys in ``known`` (those already stored) are never offered again, and with
``sort="Newest"`` paging stops after the first page whose keys are all known: everything older
was fetched by an earlier run, so a later ``sync`` asks only for what is new. A page without
images does not count as known. ``pages_fetched`` tells how many API pages a walk read.

The API key (``settings.civitai_api_key``) travels only as ``Authorization: Bearer``; it is
never put in a query string, a candidate or an error message.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Iterator, Mapping
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from clipatlas.errors import ConfigError
from clipatlas.sources.base import Candidate
from clipatlas.sources.civitai_api import (
    CivitaiClient,
    as_dict,
    as_list,
    image_id_of,
    json_safe,
    nsfw_level,
    with_width,
)
from clipatlas.store.model_links import LINK_FIELDS, links_of, merge_links

if TYPE_CHECKING:
    from clipatlas.fetch import Fetcher
    from clipatlas.registry import Registry
    from clipatlas.settings import Settings
    from clipatlas.sources.base import SourceContext

__all__ = ["MODES", "CivitaiSource", "register"]

MODES = ("models", "model", "version", "images")
_PAGE_MAX = {"models": 100, "images": 200}
_PROMPT_KEYS = ("prompt", "negativePrompt", "seed", "sampler", "steps", "cfgScale", "clipSkip")


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return None


class CivitaiSource:
    """Candidates from CivitAI; see the module docstring for modes and options."""

    name = "civitai"

    def __init__(
        self,
        settings: Settings,
        fetcher: Fetcher,
        *,
        mode: str = "models",
        types: Collection[str] = ("LORA",),
        sort: str | None = None,
        period: str | None = None,
        nsfw: bool | None = None,
        query: str | None = None,
        tag: str | None = None,
        username: str | None = None,
        base_models: Collection[str] = (),
        model_id: int | None = None,
        version_id: int | None = None,
        limit: int | None = None,
        images_per_version: int | None = 4,
        image_width: int | None = None,
        page_limit: int = 100,
        known: Collection[str] = (),
    ) -> None:
        if mode not in MODES:
            raise ConfigError(f"civitai mode must be one of {', '.join(MODES)}, got {mode!r}")
        if mode == "model" and model_id is None:
            raise ConfigError("civitai mode 'model' needs model_id")
        if mode == "version" and version_id is None:
            raise ConfigError("civitai mode 'version' needs version_id")
        for label, number in (("limit", limit), ("image_width", image_width)):
            if number is not None and number < 1:
                raise ConfigError(f"civitai {label} must be at least 1, got {number}")
        if images_per_version is not None and images_per_version < 0:
            raise ConfigError("civitai images_per_version must not be negative")
        self.mode = mode
        self.types = tuple(types)
        self.sort, self.period, self.nsfw = sort, period, nsfw
        self.query, self.tag, self.username = query, tag, username
        self.base_models = tuple(base_models)
        self.model_id, self.version_id = model_id, version_id
        self.limit = limit
        self.images_per_version = images_per_version
        self.image_width = image_width
        most = _PAGE_MAX.get(mode, 100)
        if not 1 <= int(page_limit) <= most:
            raise ConfigError(
                f"civitai page size (page_limit) must be 1..{most} in mode {mode!r} "
                f"(the API answers 400 above {most}), got {page_limit}"
            )
        self.page_limit = int(page_limit)
        self.known = frozenset(known)
        self.pages_fetched = 0
        self.client = CivitaiClient(settings.civitai_base_url, fetcher, settings.civitai_api_key)

    # -- listing ---------------------------------------------------------------------------

    def iter_candidates(self) -> Iterator[Candidate]:
        self.pages_fetched = 0
        seen: dict[str, Candidate] = {}
        for candidate in self._walk():
            first = seen.get(candidate.key)
            if first is not None:  # the same picture for another model: one more link
                first.meta.update(merge_links(first.meta, links_of(candidate.meta)))
                continue
            seen[candidate.key] = candidate
            yield candidate
            if self.limit is not None and len(seen) >= self.limit:
                return

    def _walk(self) -> Iterator[Candidate]:
        if self.mode == "model":
            self.pages_fetched += 1
            yield from self._from_model(self.client.get(f"models/{self.model_id}"), _now())
        elif self.mode == "version":
            self.pages_fetched += 1
            body = self.client.get(f"model-versions/{self.version_id}")
            model = as_dict(body.get("model"))
            info: dict[str, Any] = {
                "model_id": _int(body.get("modelId")),
                "model_name": _text(model.get("name")),
                "model_type": _text(model.get("type")),
                "tags": [],
                "creator": None,
            }
            yield from self._from_version(body, info, _now(), "model-versions")
        else:
            path, params = (
                ("models", self._models_params())
                if self.mode == "models"
                else ("images", self._images_params())
            )
            for page in self.client.pages(path, params):
                self.pages_fetched += 1
                at = _now()
                keys: list[str] = []
                for item in page.items:
                    if not isinstance(item, dict):
                        continue
                    produced = (
                        self._from_model(item, at, "models")
                        if path == "models"
                        else self._from_image_item(item, at)
                    )
                    for candidate in produced:
                        keys.append(candidate.key)
                        if candidate.key not in self.known:
                            yield candidate
                if self._caught_up(keys):
                    return

    def _caught_up(self, keys: list[str]) -> bool:
        """True when sorting Newest and a non-empty page held only known keys."""
        return (
            (self.sort or "").lower() == "newest"
            and bool(self.known)
            and bool(keys)
            and all(k in self.known for k in keys)
        )

    def _models_params(self) -> dict[str, Any]:
        params: dict[str, Any] = {"limit": self.page_limit}
        if self.types:
            params["types"] = list(self.types)  # repeated, never comma-joined
        if self.base_models:
            params["baseModels"] = list(self.base_models)
        if self.nsfw is not None:
            params["nsfw"] = "true" if self.nsfw else "false"
        for key, value in (
            ("sort", self.sort), ("period", self.period), ("query", self.query),
            ("tag", self.tag), ("username", self.username),
        ):  # fmt: skip
            if value:
                params[key] = value
        return params

    def _images_params(self) -> dict[str, Any]:
        params: dict[str, Any] = {"limit": self.page_limit, "withMeta": "true"}
        if self.nsfw is not None:
            params["nsfw"] = "X" if self.nsfw else "false"
        for key, value in (
            ("modelId", self.model_id), ("modelVersionId", self.version_id),
            ("username", self.username), ("sort", self.sort), ("period", self.period),
        ):  # fmt: skip
            if value is not None and value != "":
                params[key] = value
        return params

    # -- shapes ----------------------------------------------------------------------------

    def _from_model(
        self, model: Mapping[str, Any], at: str, api: str = "models"
    ) -> Iterator[Candidate]:
        creator = as_dict(model.get("creator"))
        info: dict[str, Any] = {
            "model_id": _int(model.get("id")),
            "model_name": _text(model.get("name")),
            "model_type": _text(model.get("type")),
            "tags": [t for t in as_list(model.get("tags")) if isinstance(t, str)],
            "creator": _text(creator.get("username")),
        }
        for version in as_list(model.get("modelVersions")):
            if isinstance(version, dict):
                yield from self._from_version(version, info, at, api)

    def _from_version(
        self, version: Mapping[str, Any], info: Mapping[str, Any], at: str, api: str
    ) -> Iterator[Candidate]:
        details = {
            **info,
            "base_model": _text(version.get("baseModel")),
            "version_id": _int(version.get("id")),
            "version_name": _text(version.get("name")),
        }
        images = [i for i in as_list(version.get("images")) if isinstance(i, dict)]
        offered = 0
        for image in images:
            if self.images_per_version is not None and offered >= self.images_per_version:
                return
            candidate = self._candidate(image, details, at, api)
            if candidate is not None:
                offered += 1
                yield candidate

    def _from_image_item(self, image: Mapping[str, Any], at: str) -> Iterator[Candidate]:
        version_ids = [v for v in (_int(x) for x in as_list(image.get("modelVersionIds"))) if v]
        details: dict[str, Any] = {
            "model_id": self.model_id,
            "model_name": None,
            "model_type": None,
            "tags": [],
            "creator": _text(image.get("username")),
            "base_model": _text(image.get("baseModel")),
            "version_id": self.version_id
            if self.version_id is not None
            else (version_ids[-1] if len(version_ids) == 1 else None),
            "version_name": None,
            "version_ids": version_ids,
            "post_id": _int(image.get("postId")),
            "created_at": _text(image.get("createdAt")),
        }
        candidate = self._candidate(image, details, at, "images")
        if candidate is not None:
            yield candidate

    def _candidate(
        self, image: Mapping[str, Any], details: Mapping[str, Any], at: str, api: str
    ) -> Candidate | None:
        url = _text(image.get("url"))
        if url is None or not url.lower().startswith(("http://", "https://")):
            return None
        image_id = image_id_of(image, url)
        key = (
            f"image:{image_id}"
            if image_id is not None
            else "url:" + hashlib.sha256(url.encode()).hexdigest()[:24]
        )
        raw_level = image.get("nsfwLevel")
        level = nsfw_level(raw_level)
        if level is None:
            level = nsfw_level(image.get("browsingLevel"))
        if level is None and isinstance(image.get("nsfw"), str):
            raw_level, level = image["nsfw"], nsfw_level(image["nsfw"])  # legacy string flag
        meta: dict[str, Any] = {
            **details,
            "models": [{name: details.get(name) for name in LINK_FIELDS}]
            if details.get("model_id") is not None
            else [],
            "image_id": image_id,
            "nsfw_level": level,
            "nsfw_level_raw": json_safe(raw_level),
            "width": _int(image.get("width")),
            "height": _int(image.get("height")),
            "media_type": _text(image.get("type")) or "image",
            "source_url": url,
            "retrieved_at": at,
            "api": api,
        }
        generation = as_dict(image.get("meta"))
        if isinstance(generation.get("meta"), dict) and set(generation) <= {"id", "meta"}:
            generation = generation["meta"]  # the DB path wraps it as {"id", "meta"}
        if generation:
            safe = json_safe(generation)
            meta["generation"] = safe
            meta.update({k: safe[k] for k in _PROMPT_KEYS if k in safe})
        return Candidate(
            source=self.name, key=key, uri=with_width(url, self.image_width), meta=meta
        )


def _split(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        return tuple(v.strip() for v in value.split(",") if v.strip())
    return tuple(value)


def _factory(context: SourceContext, **options: Any) -> CivitaiSource:
    """``registry.create_source("civitai", context, mode=..., types=..., limit=...)``.

    Like the constructor, but ``types``/``base_models`` may also be comma-separated strings
    (as typed on a command line).
    """
    for name in ("types", "base_models"):
        if name in options and options[name] is not None:
            options[name] = _split(options[name])
    return CivitaiSource(context.settings, context.fetcher(), **options)


def register(registry: Registry) -> None:
    registry.add_source("civitai", _factory)
