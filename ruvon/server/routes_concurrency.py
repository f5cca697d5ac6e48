"""``GET /concurrency`` (viewer): per concurrency key, who holds its slots and who waits."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from ruvon.server.auth import require
from ruvon.server.concurrency_view import MAX_KEY_TEXT, concurrency_view
from ruvon.server.dependencies import server_runtime
from ruvon.server.models import ConcurrencyView
from ruvon.server.runtime import ServerRuntime
from ruvon.server.tokens import Actor, Role

router = APIRouter(tags=["concurrency"])
Viewer = Annotated[Actor, Depends(require(Role.VIEWER))]
Runtime = Annotated[ServerRuntime, Depends(server_runtime)]


@router.get(
    "/concurrency",
    response_model=ConcurrencyView,
    summary="Concurrency keys: holders, and waiters in the order they will be served",
)
async def get_concurrency(
    _actor: Viewer,
    runtime: Runtime,
    key: Annotated[
        str | None,
        Query(max_length=MAX_KEY_TEXT, description="Only this key (as rendered, exactly)."),
    ] = None,
) -> ConcurrencyView:
    return await concurrency_view(runtime.persistence, key or None)
