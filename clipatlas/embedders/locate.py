"""Where model weights come from: a local directory or a Hugging Face hub id.

Every embedder argument is one of

* an existing directory (``/models/clip``, ``./clip``, ``~/clip``): loaded with no network,
  and named by its absolute path, so the same directory always gives the same embedder id;
* something that looks like a path but does not exist (starts with ``/``, ``.``, ``~``, or has
  more than one ``/``): refused at once with :class:`ModelLoadError` naming the path;
* otherwise a hub id (``openai/clip-vit-base-patch32``), loaded by :meth:`ModelLocation.load`
  cache first: a model already in the Hugging Face cache loads with no network at all; only a
  model missing from the cache is downloaded. With ``HF_HUB_OFFLINE`` set the hub is never
  asked, and when the hub cannot be reached (a 3 s TCP probe; skipped behind a proxy) loading
  fails at once instead of after huggingface_hub's ~25 s of retries per file.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit

from clipatlas.errors import ConfigError, ModelLoadError

__all__ = ["ModelLocation", "hub_offline", "hub_reachable", "locate_model", "looks_like_path"]

T = TypeVar("T")

_TRUTHY = {"1", "on", "yes", "true"}
_MAX_DETAIL = 400
_PROXY_VARIABLES = ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")
_PROBE_TIMEOUT = 3.0


def hub_offline() -> bool:
    """True when ``HF_HUB_OFFLINE`` is set (read now, not at import, so tests can set it)."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in _TRUTHY


def hub_endpoint() -> str:
    return os.environ.get("HF_ENDPOINT", "").strip() or "https://huggingface.co"


def hub_reachable(timeout: float = _PROBE_TIMEOUT) -> bool:
    """Whether a TCP connection to the hub endpoint opens within ``timeout`` seconds.

    Behind a proxy the answer is left to the download itself (True).
    """
    if any(os.environ.get(name) for name in _PROXY_VARIABLES):
        return True
    url = urlsplit(hub_endpoint())
    if not url.hostname:
        return True
    port = url.port or (80 if url.scheme == "http" else 443)
    try:
        with socket.create_connection((url.hostname, port), timeout=timeout):
            return True
    except OSError:
        return False


@dataclass(frozen=True)
class ModelLocation:
    """A resolved model argument: ``name`` goes into the embedder id, ``source`` to the loader."""

    kind: str
    name: str
    source: str
    local: bool

    @property
    def spec(self) -> str:
        """The normalised embedder id, e.g. ``hf:openai/clip-vit-base-patch32``."""
        return f"{self.kind}:{self.name}"

    def load(self, attempt: Callable[[bool], T]) -> T:
        """Run ``attempt(local_files_only)``, cache first, and explain any failure.

        ``attempt`` raises :class:`ModelLoadError` for problems no download can fix (they pass
        straight through); any other exception becomes a :class:`ModelLoadError` saying where
        the model was looked for.
        """
        if self.local or hub_offline():
            return self._run(attempt, local_files_only=True)
        try:
            return attempt(True)
        except ModelLoadError:
            raise
        except Exception:  # not (completely) in the cache: ask the hub
            pass
        if not hub_reachable():
            raise ModelLoadError(
                self.spec,
                f"not a local directory, not in the Hugging Face cache, and the hub "
                f"({hub_endpoint()}) is unreachable; pass a local path",
            )
        return self._run(attempt, local_files_only=False)

    def _run(self, attempt: Callable[[bool], T], *, local_files_only: bool) -> T:
        try:
            return attempt(local_files_only)
        except ModelLoadError:
            raise
        except Exception as exc:
            raise self._load_error(exc, local_files_only) from exc

    def _load_error(self, exc: BaseException, local_files_only: bool) -> ModelLoadError:
        cause = _short(exc)
        if self.local:
            detail = f"{self.source} could not be loaded: {cause}"
        elif local_files_only:
            detail = (
                f"not a local directory, and HF_HUB_OFFLINE is set and {self.name!r} is not in "
                f"the Hugging Face cache; pass a local path ({cause})"
            )
        else:
            detail = (
                f"not a local directory, and the Hugging Face hub could not provide "
                f"{self.name!r} (misspelt, private or gated?); pass a local path ({cause})"
            )
        return ModelLoadError(self.spec, detail)


def _short(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    text = f"{type(exc).__name__}: {text}"
    return text if len(text) <= _MAX_DETAIL else text[: _MAX_DETAIL - 3] + "..."


def looks_like_path(name: str) -> bool:
    return (
        name.startswith(("/", ".", "~", "\\"))
        or name.count("/") > 1
        or "\\" in name
        or (len(name) > 1 and name[1] == ":")  # a Windows drive
    )


def locate_model(kind: str, arg: str) -> ModelLocation:
    """Resolve an embedder argument to a local directory or a hub id (see module docs)."""
    name = arg.strip()
    if not name:
        raise ConfigError(f"'{kind}:' needs a model name or a local directory")
    path = Path(name).expanduser()
    if path.is_dir():
        resolved = str(path.resolve())
        return ModelLocation(kind, resolved, resolved, local=True)
    if path.exists():
        raise ModelLoadError(f"{kind}:{name}", f"{path} is a file, not a model directory")
    if looks_like_path(name):
        raise ModelLoadError(f"{kind}:{name}", f"no such directory: {path}")
    return ModelLocation(kind, name, name, local=False)
