"""Live streams (viewer role): server-sent events of one workflow's commits, and of the list's.

``GET /workflows/{id}/events`` sends the workflow as it stands, then an event per commit (a
new status, step or ``updated_at``), and ends after a terminal status; ``GET /events`` sends an
event per commit of any workflow (creations too), filtered by ``status`` and ``type``. Each
event is ``event: workflow`` with the workflow's summary as JSON. Both resume from the
``Last-Event-ID`` header a reconnecting ``EventSource`` sends, and send a keep-alive comment
when quiet. See :mod:`ruvon.server.live.feed` for how commits are found (polling, and why):
commits of one workflow made within one poll interval (0.2 s) reach a stream as the newest of
them, so a stream shows every state a reader could have seen, not every intermediate one
(``/history`` has each transition).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import Response

from ruvon.models import WorkflowStatus
from ruvon.providers.changes import ChangePosition
from ruvon.server.auth import require
from ruvon.server.dependencies import server_runtime
from ruvon.server.live.hub import LiveHub
from ruvon.server.live.sse import EventStreamResponse
from ruvon.server.live.streams import ListFilter, list_events, parse_position, workflow_events
from ruvon.server.problems import ApiProblem
from ruvon.server.runtime import ServerRuntime
from ruvon.server.tokens import Actor, Role

router = APIRouter(tags=["live"])
Viewer = Annotated[Actor, Depends(require(Role.VIEWER))]
Runtime = Annotated[ServerRuntime, Depends(server_runtime)]
LastEventId = Annotated[
    str | None,
    Header(alias="Last-Event-ID", description="Resume after this event (EventSource sends it)."),
]

_STREAM: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/event-stream": {}}, "description": "A stream of server-sent events."}
}


def live_hub(request: Request) -> LiveHub:
    """The app's :class:`LiveHub`."""
    hub: LiveHub = request.app.state.live
    return hub


Hub = Annotated[LiveHub, Depends(live_hub)]


def _bad(name: str, message: str) -> ApiProblem:
    return ApiProblem(
        422,
        "invalid_parameter",
        f"invalid {name}: {message}",
        [{"parameter": name, "message": message}],
    )


@router.get(
    "/workflows/{workflow_id}/events",
    response_class=EventStreamResponse,
    responses={**_STREAM, 204: {"description": "Nothing after Last-Event-ID: it has ended."}},
    summary="Stream one workflow's commits (server-sent events)",
)
async def stream_workflow(
    workflow_id: str,
    _actor: Viewer,
    runtime: Runtime,
    hub: Hub,
    last_event_id: LastEventId = None,
) -> Response:
    after: int | None = None
    if last_event_id:
        if not last_event_id.strip().isdigit():
            raise _bad("Last-Event-ID", "not an event id of this stream (a workflow version)")
        after = int(last_event_id)
    record = await runtime.persistence.load_workflow(workflow_id)  # 404 before streaming
    if record.status.is_terminal and after is not None and record.version <= after:
        # The client saw the end and reconnected: 204 tells an EventSource to stop for good.
        return Response(status_code=204)
    hub.ensure_ready()  # 501 / 503 now, before the stream starts
    return EventStreamResponse(workflow_events(hub, workflow_id, after))


@router.get(
    "/events",
    response_class=EventStreamResponse,
    responses=_STREAM,
    summary="Stream the workflow list's changes (server-sent events)",
)
async def stream_list(
    _actor: Viewer,
    hub: Hub,
    status: Annotated[str | None, Query(description="Only changes to or from this status.")] = None,
    type: Annotated[str | None, Query(description="Only this workflow type.")] = None,
    last_event_id: LastEventId = None,
) -> Response:
    wanted = ListFilter(_status(status), type or None)
    after: ChangePosition | None = None
    if last_event_id:
        try:
            after = parse_position(last_event_id.strip())
        except ValueError:
            raise _bad(
                "Last-Event-ID", "not an event id of this stream (<updated_at>/<workflow id>)"
            ) from None
    hub.ensure_ready()  # 501 / 503 now, before the stream starts
    return EventStreamResponse(list_events(hub, wanted, after))


def _status(value: str | None) -> WorkflowStatus | None:
    if not value:
        return None
    try:
        return WorkflowStatus(value.upper())
    except ValueError:
        names = ", ".join(status.value for status in WorkflowStatus)
        raise _bad("status", f"{value!r} is not a status (one of {names})") from None
