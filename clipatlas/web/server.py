"""Run the app under uvicorn (what ``clipatlas serve`` calls)."""

from __future__ import annotations

from clipatlas.settings import Settings
from clipatlas.web.app import create_app
from clipatlas.web.config import WebConfig

__all__ = ["run_server"]


def run_server(settings: Settings, config: WebConfig) -> None:
    import uvicorn

    app = create_app(settings, config)
    uvicorn.run(
        app,
        host=config.host,
        port=config.port,
        log_level="warning",
        proxy_headers=False,
        server_header=False,
        timeout_graceful_shutdown=10,
        ws="none",  # the app has no WebSocket routes: load no WebSocket protocol
    )
