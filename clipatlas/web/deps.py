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


def _state(request: Request) -> State:
    state: State = request.app.state.clipatlas
    return state


def _board(request: Request) -> JobBoard:
    return _state(request).board


def _pool(request: Request) -> AtlasPool:
    return _state(request).pool


StateDep = Annotated[State, Depends(_state)]
BoardDep = Annotated[JobBoard, Depends(_board)]
PoolDep = Annotated[AtlasPool, Depends(_pool)]
