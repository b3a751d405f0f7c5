"""The root of the tree, the ``Reason`` codes and the errors of configuration and plugins.

Every other module of :mod:`clipatlas.errors` builds on these::

    ClipatlasError
    └── ConfigError                     bad setting or argument
        └── UnknownPluginError          no source/embedder/store registered under that name
"""

from __future__ import annotations

from enum import Enum

__all__ = [
    "ClipatlasError",
    "ConfigError",
    "Reason",
    "UnknownPluginError",
]


class Reason(str, Enum):
    """Why an item was not stored. Values are stable: they are written to the database."""

    NOT_AN_IMAGE = "not_an_image"
    UNSUPPORTED_FORMAT = "unsupported_format"
    TRUNCATED = "truncated"
    TOO_LARGE = "too_large"
    TOO_SMALL = "too_small"
    DECODE_ERROR = "decode_error"
    DUPLICATE = "duplicate"
    UNREADABLE = "unreadable"  # the file could not be read (permissions, vanished, I/O error)
    EMBED_ERROR = "embed_error"
    HTTP_ERROR = "http_error"  # an HTTP status or response we cannot use (see FetchError.status)
    TIMEOUT = "timeout"
    BLOCKED_ADDRESS = "blocked_address"  # the URL or an address it resolves to is not allowed
    NETWORK_ERROR = "network_error"  # connection refused/reset, TLS or protocol failure

    def __str__(self) -> str:
        return self.value


class ClipatlasError(Exception):
    """Base of every error clipatlas raises on purpose."""


class ConfigError(ClipatlasError):
    """A setting or argument is invalid."""


class UnknownPluginError(ConfigError):
    def __init__(self, kind: str, name: str, known: list[str]) -> None:
        self.kind, self.name, self.known = kind, name, known
        choices = ", ".join(sorted(known)) or "none"
        super().__init__(f"unknown {kind} {name!r} (registered: {choices})")
