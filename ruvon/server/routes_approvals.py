"""Approve or reject the HUMAN_APPROVAL step a workflow waits at (operator role).

The decision is the step's input, given through ``ruvon.Client.approve`` (the ``resume`` path,
validated the same way); the audit log names the action and the token that decided.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from ruvon.server.auth import require
from ruvon.server.dependencies import server_runtime
from ruvon.server.models import DecisionRequest, WorkflowDetail
from ruvon.server.runtime import ServerRuntime
from ruvon.server.tokens import Actor, Role

router = APIRouter(tags=["operations"])
Operator = Annotated[Actor, Depends(require(Role.OPERATOR))]
Runtime = Annotated[ServerRuntime, Depends(server_runtime)]


async def _decide(
    workflow_id: str, approved: bool, actor: Actor, runtime: ServerRuntime, body: DecisionRequest
) -> WorkflowDetail:
    async with runtime.exclusive(workflow_id):
        record = await runtime.client.approve(workflow_id, approved, body.reason, actor=actor.name)
        return WorkflowDetail.of(await runtime.carry_on(record))


@router.post(
    "/workflows/{workflow_id}/approve",
    response_model=WorkflowDetail,
    summary="Approve the HUMAN_APPROVAL step a workflow waits at",
)
async def approve_workflow(
    workflow_id: str, actor: Operator, runtime: Runtime, body: DecisionRequest | None = None
) -> WorkflowDetail:
    return await _decide(workflow_id, True, actor, runtime, body or DecisionRequest())


@router.post(
    "/workflows/{workflow_id}/reject",
    response_model=WorkflowDetail,
    summary="Reject the HUMAN_APPROVAL step a workflow waits at",
)
async def reject_workflow(
    workflow_id: str, actor: Operator, runtime: Runtime, body: DecisionRequest | None = None
) -> WorkflowDetail:
    return await _decide(workflow_id, False, actor, runtime, body or DecisionRequest())
