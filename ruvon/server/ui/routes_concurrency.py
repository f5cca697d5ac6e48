"""The concurrency page: per key, the workflows holding its slots and the line waiting.

It reads what ``GET /api/v1/concurrency`` answers (:func:`concurrency_view`), so the page and
the API never disagree; the lines refresh as the workflows list does.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import Response

from ruvon.server.concurrency_view import MAX_KEY_TEXT, concurrency_view
from ruvon.server.dependencies import server_runtime
from ruvon.server.runtime import ServerRuntime
from ruvon.server.tokens import Role
from ruvon.server.ui.access import PageAccess, PageRoute, page_access
from ruvon.server.ui.rendering import UI_PREFIX, render

router = APIRouter(route_class=PageRoute)
Viewer = Annotated[PageAccess, Depends(page_access(Role.VIEWER))]
Runtime = Annotated[ServerRuntime, Depends(server_runtime)]
Key = Annotated[str | None, Query(max_length=MAX_KEY_TEXT)]


async def _context(runtime: ServerRuntime, key: str | None) -> dict[str, object]:
    view = await concurrency_view(runtime.persistence, key or None)
    return {"view": view, "key": key or None}


@router.get(UI_PREFIX + "/concurrency", include_in_schema=False)
async def concurrency_page(
    request: Request, access: Viewer, runtime: Runtime, key: Key = None
) -> Response:
    return render(request, "concurrency.html", await _context(runtime, key))


@router.get(UI_PREFIX + "/concurrency/live", include_in_schema=False)
async def concurrency_live(
    request: Request, access: Viewer, runtime: Runtime, key: Key = None
) -> Response:
    """The page's lines, for its script to refresh every few seconds."""
    return render(request, "concurrency_live.html", await _context(runtime, key))
