"""Send a named event to a workflow's WAIT_FOR_EVENT step (operator role).

Through ``ruvon.Client.signal``: data the step's ``input_model`` rejects is a 422 naming the
field, an unknown workflow a 404, a finished one (or a name it waits for nowhere) a 409, and
nothing is stored for any of them. The audit log names the token that sent it
(``OPERATOR_ACTION``, with the resumption; the stored signal keeps it as ``sent_by``).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path

from ruvon.server.auth import require
from ruvon.server.dependencies import server_runtime
from ruvon.server.models import SignalRequest, SignalResponse, WorkflowDetail
from ruvon.server.runtime import ServerRuntime
from ruvon.server.tokens import Actor, Role

router = APIRouter(tags=["operations"])
Operator = Annotated[Actor, Depends(require(Role.OPERATOR))]
Runtime = Annotated[ServerRuntime, Depends(server_runtime)]
EventName = Annotated[str, Path(min_length=1, max_length=200)]


@router.post(
    "/workflows/{workflow_id}/signals/{name}",
    response_model=SignalResponse,
    summary="Send a named event to a workflow (kept until its WAIT_FOR_EVENT step takes it)",
)
async def signal_workflow(
    workflow_id: str,
    name: EventName,
    actor: Operator,
    runtime: Runtime,
    body: SignalRequest | None = None,
) -> SignalResponse:
    request = body or SignalRequest()
    async with runtime.exclusive(workflow_id):
        sent = await runtime.client.signal(
            workflow_id, name, request.data, event_id=request.event_id, actor=actor.name
        )
        record = await runtime.carry_on(sent.workflow.record)
    return SignalResponse(
        outcome=str(sent.outcome), event_id=sent.event_id, workflow=WorkflowDetail.of(record)
    )
