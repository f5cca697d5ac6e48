"""Operations (operator role): start, resume, cancel, retry, through ``ruvon.Client``.

Each is audited as an ``OPERATOR_ACTION`` naming the token that asked, in the same write as
the change itself.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from ruvon.server.auth import require
from ruvon.server.dependencies import server_runtime
from ruvon.server.models import CancelRequest, ResumeRequest, StartRequest, WorkflowDetail
from ruvon.server.runtime import ServerRuntime
from ruvon.server.tokens import Actor, Role

router = APIRouter(tags=["operations"])
Operator = Annotated[Actor, Depends(require(Role.OPERATOR))]
Runtime = Annotated[ServerRuntime, Depends(server_runtime)]


@router.post(
    "/workflows", response_model=WorkflowDetail, status_code=201, summary="Start a workflow"
)
async def start_workflow(body: StartRequest, actor: Operator, runtime: Runtime) -> WorkflowDetail:
    record = await runtime.client.start(
        body.type,
        body.data,
        idempotency_key=body.idempotency_key,
        actor=actor.name,
        version=body.version,
        priority=body.priority,
        check_broker=not runtime.embedded,  # no broker behind an embedded database
    )
    return WorkflowDetail.of(await runtime.carry_on(record))


@router.post(
    "/workflows/{workflow_id}/resume",
    response_model=WorkflowDetail,
    summary="Give a waiting workflow its input",
)
async def resume_workflow(
    workflow_id: str, actor: Operator, runtime: Runtime, body: ResumeRequest | None = None
) -> WorkflowDetail:
    user_input = body.input if body is not None else None
    async with runtime.exclusive(workflow_id):
        record = await runtime.client.resume(workflow_id, user_input, actor=actor.name)
        return WorkflowDetail.of(await runtime.carry_on(record))


@router.post(
    "/workflows/{workflow_id}/cancel", response_model=WorkflowDetail, summary="Cancel a workflow"
)
async def cancel_workflow(
    workflow_id: str, actor: Operator, runtime: Runtime, body: CancelRequest | None = None
) -> WorkflowDetail:
    reason = body.reason if body is not None else None
    record = await runtime.client.cancel(workflow_id, reason, actor=actor.name)
    return WorkflowDetail.of(record)


@router.post(
    "/workflows/{workflow_id}/retry",
    response_model=WorkflowDetail,
    summary="Re-run the step a failed workflow stopped at",
)
async def retry_workflow(workflow_id: str, actor: Operator, runtime: Runtime) -> WorkflowDetail:
    record = await runtime.client.retry(workflow_id, actor=actor.name)
    return WorkflowDetail.of(await runtime.carry_on(record))
