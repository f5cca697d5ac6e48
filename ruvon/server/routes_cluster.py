"""``GET /cluster`` (viewer): workers and heartbeats, queues with depth and lag, recoveries."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from ruvon.implementations.observability.settings import ObservabilitySettings
from ruvon.server.auth import require
from ruvon.server.cluster_view import cluster_view
from ruvon.server.dependencies import server_runtime
from ruvon.server.models import ClusterView
from ruvon.server.runtime import ServerRuntime
from ruvon.server.tokens import Actor, Role

router = APIRouter(tags=["cluster"])
Viewer = Annotated[Actor, Depends(require(Role.VIEWER))]
Runtime = Annotated[ServerRuntime, Depends(server_runtime)]


@router.get("/cluster", response_model=ClusterView, summary="Workers, queues and recoveries")
async def get_cluster(
    _actor: Viewer,
    runtime: Runtime,
    ping: Annotated[
        bool, Query(description="Also ping the workers over the broker (at most ~1 s).")
    ] = False,
) -> ClusterView:
    health_dir = ObservabilitySettings.from_env().health_dir
    return await cluster_view(runtime, health_dir=health_dir, ping=ping)
