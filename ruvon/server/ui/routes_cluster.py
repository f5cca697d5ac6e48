"""The cluster page: workers and their heartbeats, queues with depth and lag, recoveries.

It reads what ``GET /api/v1/cluster`` answers (:func:`ruvon.server.cluster_view.cluster_view`,
the same reads with the same timeouts), so the page and the API never disagree.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import Response

from ruvon.implementations.observability.settings import ObservabilitySettings
from ruvon.server.cluster_view import HEARTBEAT_MAX_AGE, cluster_view
from ruvon.server.dependencies import server_runtime
from ruvon.server.models import WorkerInfo
from ruvon.server.runtime import ServerRuntime
from ruvon.server.tokens import Role
from ruvon.server.ui.access import PageAccess, PageRoute, page_access
from ruvon.server.ui.rendering import UI_PREFIX, render

router = APIRouter(route_class=PageRoute)
Viewer = Annotated[PageAccess, Depends(page_access(Role.VIEWER))]
Runtime = Annotated[ServerRuntime, Depends(server_runtime)]


def worker_state(worker: WorkerInfo) -> str:
    """What a worker's heartbeat files (or, without any, its ping answer) say about it."""
    if worker.alive is None:  # no files of its own: known from the ping only
        return "answered a ping" if worker.answered_ping else "unknown"
    if not worker.alive:
        return "lost (stale heartbeat)"
    return "ready" if worker.ready else "not consuming"


def _state_class(state: str) -> str:
    return {"ready": "ok", "answered a ping": "ok", "not consuming": "warn"}.get(state, "bad")


def _worker_row(worker: WorkerInfo) -> dict[str, object]:
    """A worker as the table shows it: Celery's ``name@host`` split, its state worked out."""
    name, _, host = worker.node.partition("@")
    state = worker_state(worker)
    return {"info": worker, "name": name, "host": host or "—", "state": state,
            "state_class": _state_class(state)}  # fmt: skip


async def _context(runtime: ServerRuntime, ping: bool) -> dict[str, object]:
    health_dir = ObservabilitySettings.from_env().health_dir
    view = await cluster_view(runtime, health_dir=health_dir, ping=ping)
    return {
        "view": view,
        "workers": [_worker_row(worker) for worker in view.workers],
        "ping": ping,
        "max_age": HEARTBEAT_MAX_AGE,
        "default_queue": runtime.settings.default_queue,
    }


@router.get(UI_PREFIX + "/cluster", include_in_schema=False)
async def cluster_page(
    request: Request,
    access: Viewer,
    runtime: Runtime,
    ping: Annotated[bool, Query()] = False,
) -> Response:
    return render(request, "cluster.html", await _context(runtime, ping))


@router.get(UI_PREFIX + "/cluster/live", include_in_schema=False)
async def cluster_live(request: Request, access: Viewer, runtime: Runtime) -> Response:
    """The page's tables (never pinging), for its script to refresh every few seconds."""
    return render(request, "cluster_live.html", await _context(runtime, ping=False))
