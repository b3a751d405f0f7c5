"""What handlers receive: the app's shared state, as FastAPI dependencies."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from clipatlas.jobs import JobBoard, JobKinds
from clipatlas.settings import Settings
from clipatlas.web.atlases import AtlasPool
from clipatlas.web.config import WebConfig

__all__ = ["BoardDep", "PoolDep", "State", "StateDep"]


@dataclass
class State:
    settings: Settings
    config: WebConfig
    kinds: JobKinds
    board: JobBoard
    pool: AtlasPool


# ``async def``, though nothing here waits: FastAPI runs a plain ``def`` dependency in its
# thread pool, a thread hand-off per request (tens of microseconds) to read an attribute
async def _state(request: Request) -> State:
    return _app_state(request)


async def _board(request: Request) -> JobBoard:
    return _app_state(request).board


async def _pool(request: Request) -> AtlasPool:
    return _app_state(request).pool


def _app_state(request: Request) -> State:
    state: State = request.app.state.clipatlas
    return state


StateDep = Annotated[State, Depends(_state)]
BoardDep = Annotated[JobBoard, Depends(_board)]
PoolDep = Annotated[AtlasPool, Depends(_pool)]
