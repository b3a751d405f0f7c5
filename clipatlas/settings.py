"""One settings object for the whole engine.

Everything configurable lives here, read from ``CLIPATLAS_*`` environment variables or an
optional ``.env`` file. Build it with :func:`load_settings` and pass it down; nothing in the
package keeps a module-level instance.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

if TYPE_CHECKING:
    from clipatlas.fetch.policy import FetchPolicy

__all__ = ["DEFAULT_MODEL", "Settings", "load_settings"]

DEFAULT_MODEL = "hf:openai/clip-vit-base-patch32"


def _default_home() -> Path:
    xdg = os.environ.get("XDG_DATA_HOME")
    base = Path(xdg) if xdg else Path.home() / ".local" / "share"
    return base / "clipatlas"


class Settings(BaseSettings):
    """Engine configuration (environment prefix ``CLIPATLAS_``)."""

    model_config = SettingsConfigDict(
        env_prefix="CLIPATLAS_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    home: Path = Field(default_factory=_default_home, description="Data directory.")
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL of a server database (e.g. postgresql+psycopg://...). "
        "Unset: one SQLite file per collection under `home`.",
    )
    model: str = Field(default=DEFAULT_MODEL, description="Default image/text embedder.")
    text_model: str = Field(
        default="sentence-transformers:sentence-transformers/all-MiniLM-L6-v2",
        description="Default text-only embedder (captions, record text).",
    )
    device: str = Field(default="auto", description="torch device: auto, cpu, cuda, mps.")
    precision: str = Field(
        default="auto",
        pattern="^(auto|fp32|bf16|int8)$",
        description="Image embedding precision; auto = bf16 where the hardware runs it natively "
        "(checked against fp32 on the first batch), else fp32; int8 = ONNX Runtime dynamic int8 "
        "(the onnx extra; CPU; checked against fp32 the same way).",
    )
    batch_size: int = Field(
        default=0,
        ge=0,
        le=4096,
        description="Pictures per model batch; 0 = automatic: 32 on CPU, as many as fit in free "
        "memory on CUDA (measured on the first batch, at most 256), 64 on MPS. Any size halves "
        "and retries when a batch runs out of device memory.",
    )
    workers: int = Field(
        default=0, ge=-1, description="Decode worker processes; 0 = automatic, -1 = in-process."
    )
    max_pixels: int = Field(default=64_000_000, ge=1, description="Pixel budget per image.")
    max_file_bytes: int = Field(default=100 * 1024 * 1024, ge=1)
    min_side: int = Field(default=16, ge=1, description="Smaller images are `too_small`.")
    thumbnail_size: int = Field(default=256, ge=16, le=1024)
    vector_dtype: str = Field(default="float16", pattern="^(float16|float32)$")
    index_staleness: float = Field(
        default=0.0,
        ge=0,
        description="Seconds a search may use an index older than the latest write while it is "
        "rebuilt in the background (0 = always current; `clipatlas serve` uses 30); when set, "
        "counts shown on pages may also lag writes, by at most 5 s.",
    )
    copy_media: bool = Field(
        default=False, description="Copy originals of folder ingests into the media store."
    )

    # -- network sources (clipatlas.fetch) --------------------------------------------------
    allow_hosts: list[str] = Field(
        default_factory=list,
        description="Hosts/IPs that may be fetched although not public (e.g. 127.0.0.1).",
    )
    fetch_max_bytes: int = Field(default=25 * 1024 * 1024, ge=1)
    fetch_timeout: float = Field(default=60.0, gt=0, description="Wall-clock cap per request.")
    fetch_retries: int = Field(default=4, ge=0)
    fetch_concurrency: int = Field(default=16, ge=1, description="Parallel downloads per run.")
    fetch_per_host: int = Field(default=8, ge=1, description="Parallel requests to one host.")
    civitai_base_url: str = "https://civitai.com/api/v1"
    civitai_api_key: str | None = Field(default=None, repr=False)
    naver_base_url: str = "https://openapi.naver.com/v1/search/image"
    naver_client_id: str | None = Field(default=None, repr=False)
    naver_client_secret: str | None = Field(default=None, repr=False)
    naver_id_header: str = "X-Naver-Client-Id"
    naver_secret_header: str = "X-Naver-Client-Secret"

    # -- record matching (clipatlas.matching) ----------------------------------------------
    match_text_model: str = Field(
        default="sentence-transformers:sentence-transformers/paraphrase-multilingual-MiniLM-L12-v2",
        description="Text-text model of record matching (multilingual: Korean and English).",
    )
    match_category_rule: str = Field(
        default="penalty",
        pattern="^(gate|penalty|off)$",
        description="Records of different categories: gate (never match), penalty, or off.",
    )
    match_category_penalty: float = Field(
        default=3.0, ge=0, description="Log-odds subtracted for different categories (penalty)."
    )
    match_time_scale_days: float = Field(default=7.0, gt=0, description="Time closeness scale.")
    match_place_scale_km: float = Field(default=2.0, gt=0, description="Distance closeness scale.")

    # -- captions (clipatlas.captions: retrieval-augmented captioning) -----------------------
    caption_model: str = Field(
        default="openai-compatible:llava",
        description="Caption backend: openai-compatible:<model> or hf:<repo or local path>.",
    )
    caption_base_url: str = Field(
        default="http://127.0.0.1:11434/v1",
        description="Base URL of the OpenAI-compatible server (Ollama, vLLM, LM Studio, "
        "llama.cpp server, OpenAI); /chat/completions is appended.",
    )
    caption_api_key: SecretStr | None = Field(default=None, repr=False)
    caption_timeout: float = Field(default=120.0, gt=0, description="Seconds per request.")
    caption_connect_timeout: float = Field(default=10.0, gt=0)
    caption_retries: int = Field(default=2, ge=0, description="Retries on 429/5xx/network.")
    caption_max_tokens: int = Field(default=120, ge=1, le=4096)
    caption_temperature: float = Field(default=0.2, ge=0, le=2)
    caption_neighbours: int = Field(default=5, ge=0, le=50)
    caption_prompt_chars: int = Field(
        default=1500,
        ge=40,
        le=100_000,
        description="Characters of neighbours' caption lines in a prompt, shared round-robin "
        "so every neighbour is represented.",
    )
    caption_language: str = Field(default="en", pattern="^(en|ko)$")
    caption_prompt_file: Path | None = Field(
        default=None, description="A prompt template file replacing the built-in one."
    )
    caption_image_side: int = Field(
        default=768, ge=64, le=4096, description="Longest side of the image sent inline."
    )

    # -- scale (ANN, Ray, int8) --
    ann_threshold: int = Field(
        default=200_000,
        ge=0,
        description="Vectors from which search uses an ANN index (built automatically, recall "
        "measured at build time); 0 = always exact.",
    )
    ann_kind: str = Field(
        default="auto",
        pattern="^(auto|hnsw|ivf)$",
        description="ANN index kind; auto = HNSW below `ann_hnsw_max` vectors, IVF from it.",
    )
    ann_hnsw_max: int = Field(default=500_000, ge=1)
    ann_target_recall: float = Field(
        default=0.95, gt=0, le=1, description="recall@10 the ANN search effort is tuned for."
    )
    ann_recall_sample: int = Field(default=200, ge=10, description="Queries to measure recall.")
    index_flat_min: int = Field(
        default=50_000,
        ge=1,
        description="Vectors from which exact search scans a memory-mapped FAISS flat index "
        "in the store's dtype (float16) instead of a float32 NumPy matrix.",
    )
    ray_address: str | None = Field(
        default=None,
        description="Ray cluster for `embed --ray` (e.g. ray://head:10001 or auto); "
        "unset = a local Ray instance.",
    )

    def fetch_policy(self) -> FetchPolicy:
        from clipatlas.fetch.policy import FetchPolicy  # httpx loads only when fetching

        return FetchPolicy(
            allow_hosts=frozenset(self.allow_hosts),
            max_bytes=self.fetch_max_bytes,
            total_timeout=self.fetch_timeout,
            retries=self.fetch_retries,
            per_host_concurrency=self.fetch_per_host,
        )

    def secrets(self) -> tuple[str, ...]:
        """Values that must never appear in logs, errors or stored URLs."""
        caption_key = self.caption_api_key.get_secret_value() if self.caption_api_key else None
        values = (
            self.civitai_api_key, self.naver_client_id, self.naver_client_secret, caption_key,
        )  # fmt: skip
        return tuple(v for v in values if v)

    def collection_dir(self, name: str) -> Path:
        return self.home / "collections" / name


def load_settings(**overrides: object) -> Settings:
    """Read settings from the environment, with explicit overrides winning; a bad value (from
    the environment or an override) is a :class:`~clipatlas.errors.ConfigError` naming it."""
    from pydantic import ValidationError

    from clipatlas.errors import ConfigError

    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in e['loc']) or 'settings'}: {e['msg']}"
            for e in exc.errors()
        )
        raise ConfigError(f"invalid settings (CLIPATLAS_* or options): {problems}") from None
