"""The web app factory: REST API, server-rendered pages, local static assets, one guard.

    app = create_app(settings)                      # 127.0.0.1, no token, one worker process
    app = create_app(settings, WebConfig.build(host="0.0.0.0", token="..."))

Errors: ``/api`` answers JSON ``{"error": code, "detail": text}``; pages render an error page.
On start-up, running jobs with a stale heartbeat become ``interrupted``; ``config.workers``
worker processes are started with the app and stopped with it.
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException

from clipatlas.errors import (
    ClipatlasError,
    CollectionNotFoundError,
    ConfigError,
    FetchError,
    ImageError,
    JobNotFoundError,
    JobStateError,
    RecordNotFoundError,
    RunNotFoundError,
)
from clipatlas.jobs import JobBoard, JobKinds, WorkerProcesses, default_kinds
from clipatlas.jobs.worker import DEFAULT_STALE_AFTER
from clipatlas.settings import Settings
from clipatlas.web import api, api_atlas, api_workflows, pages, pages_workflows
from clipatlas.web.atlases import AtlasPool
from clipatlas.web.config import WebConfig
from clipatlas.web.deps import State
from clipatlas.web.security import Guard

__all__ = ["create_app"]

HERE = Path(__file__).parent


class _StaticFiles(StaticFiles):
    """Static files where a path with a NUL byte is simply not found (404): starlette before 1.x
    passes it to ``os.stat``, whose ValueError became a 500."""

    def lookup_path(self, path: str) -> tuple[str, os.stat_result | None]:
        if "\x00" in path:
            return "", None
        return super().lookup_path(path)


_STATUS: list[tuple[type[Exception], int]] = [
    (CollectionNotFoundError, 404),
    (RunNotFoundError, 404),
    (JobNotFoundError, 404),
    (RecordNotFoundError, 404),
    (JobStateError, 409),
    (FetchError, 422),
    (ImageError, 422),
    (ConfigError, 400),
]
_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    422: "invalid_request",
}


def _code(exc: Exception) -> str:
    name = type(exc).__name__.removesuffix("Error") or "error"
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _status(exc: Exception) -> int:
    for cls, status in _STATUS:
        if isinstance(exc, cls):
            return status
    return 400 if isinstance(exc, ClipatlasError) else 500


async def _supervise(workers: WorkerProcesses, board: JobBoard, stale_after: float) -> None:
    """Every few seconds: restart dead workers and interrupt the jobs they left running."""
    every = max(0.5, min(5.0, stale_after / 2))
    while True:
        await asyncio.sleep(every)
        try:
            await run_in_threadpool(workers.revive)
            await run_in_threadpool(board.recover_stale, stale_after)
        except ClipatlasError:
            continue  # a busy database: next round


def create_app(
    settings: Settings,
    config: WebConfig | None = None,
    *,
    kinds: JobKinds | None = None,
    stale_after: float = DEFAULT_STALE_AFTER,
) -> FastAPI:
    config = config or WebConfig.build()
    kinds = kinds or default_kinds()
    state = State(settings, config, kinds, JobBoard(settings, kinds), AtlasPool(settings))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state.board.recover_stale(stale_after)
        workers = WorkerProcesses(settings, config.workers, stale_after=stale_after)
        supervisor = None
        if config.workers:
            workers.start()
            supervisor = asyncio.create_task(_supervise(workers, state.board, stale_after))
        try:
            yield
        finally:
            if supervisor is not None:
                supervisor.cancel()
            workers.stop()
            state.pool.close()
            state.board.close()

    app = FastAPI(
        title="clipatlas",
        description="Search, cluster, map and clean image collections (CLIP embeddings).",
        version="0.1.0",
        lifespan=lifespan,
        docs_url="/api/docs",
        redoc_url=None,
        openapi_url="/api/openapi.json",
        swagger_ui_parameters={"syntaxHighlight": False},
    )
    app.state.clipatlas = state
    app.include_router(api.router)
    app.include_router(api_atlas.router)
    app.include_router(api_workflows.router)
    app.include_router(pages.router)
    app.include_router(pages_workflows.router)
    app.mount("/static", _StaticFiles(directory=HERE / "static"), name="static")

    def failure(request: Request, status: int, error: str, detail: Any) -> Response:
        if request.url.path.startswith("/api") or "text/html" not in request.headers.get(
            "accept", ""
        ):
            return JSONResponse({"error": error, "detail": detail}, status_code=status)
        return pages.error_page(request, status, error, str(detail))

    @app.exception_handler(ClipatlasError)
    async def _library(request: Request, exc: ClipatlasError) -> Response:
        return failure(request, _status(exc), _code(exc), str(exc))

    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException) -> Response:  # routing's too
        code = _HTTP_CODES.get(exc.status_code, f"http_{exc.status_code}")
        return failure(request, exc.status_code, code, exc.detail)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        detail = "; ".join(
            f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg', '')}"
            for e in exc.errors()
        )
        return failure(request, 422, "invalid_request", detail)

    @app.exception_handler(OverflowError)
    async def _out_of_range(request: Request, exc: OverflowError) -> Response:
        # an id or number beyond 64 bits reaches the database driver (found by schemathesis)
        return failure(request, 422, "invalid_request", f"a number is out of range: {exc}")

    app.add_middleware(Guard, config=config)  # outermost of ours: before routing and parsing
    return app
