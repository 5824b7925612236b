"""`GET /v1/models`, `POST /v1/models/{name}/load` and `/unload`: resident model bundles."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from tressel.daemon.schemas import ModelInfo, ModelList

router = APIRouter(prefix="/models", tags=["models"])


@router.get("", response_model=ModelList)
def list_models(request: Request) -> ModelList:
    """Installed bundles (and any loaded from a folder), with whether each is resident."""
    return ModelList(models=[ModelInfo(**m) for m in request.app.state.manager.engine.models()])


@router.post("/{name}/load", response_model=ModelInfo)
async def load_model(name: str, request: Request) -> ModelInfo:
    engine = request.app.state.manager.engine
    return ModelInfo(**await run_in_threadpool(engine.load_model, name))


@router.post("/{name}/unload", response_model=ModelInfo)
async def unload_model(name: str, request: Request) -> ModelInfo:
    engine = request.app.state.manager.engine
    return ModelInfo(**await run_in_threadpool(engine.unload_model, name))
