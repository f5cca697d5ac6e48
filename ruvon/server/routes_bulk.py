"""Bulk actions (admin role): retry or cancel every workflow a filter matches.

Each request starts a ``ruvon.BulkOperation`` workflow and answers 202 with its id; it is a
workflow like any other (``GET /workflows/{id}``: ``state.counts``, ``state.outcomes`` with
``ok`` / ``skipped`` + reason / ``error`` / ``dry_run`` per workflow id, ``state.truncated``).
On PostgreSQL the workers run it; embedded (SQLite), this process does, in the background.
``max_count`` is required: the caller's explicit bound on how many workflows it may touch.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request

from ruvon.clock import utc_now
from ruvon.server.auth import require
from ruvon.server.bulk.definition import BULK_OPERATION
from ruvon.server.bulk.embedded import EmbeddedBulkRuns
from ruvon.server.bulk.spec import (
    BulkAction,
    BulkCancelRequest,
    BulkRequest,
    BulkRetryRequest,
    BulkSpec,
    filter_problem,
)
from ruvon.server.dependencies import server_runtime
from ruvon.server.models import WorkflowDetail
from ruvon.server.routes_workflows import bad_parameter
from ruvon.server.runtime import ServerRuntime
from ruvon.server.tokens import Actor, Role

router = APIRouter(tags=["bulk"])
Admin = Annotated[Actor, Depends(require(Role.ADMIN))]
Runtime = Annotated[ServerRuntime, Depends(server_runtime)]


def bulk_runs(request: Request) -> EmbeddedBulkRuns:
    """The app's embedded bulk runs."""
    runs: EmbeddedBulkRuns = request.app.state.bulk_runs
    return runs


Runs = Annotated[EmbeddedBulkRuns, Depends(bulk_runs)]


async def _start(
    action: BulkAction,
    body: BulkRequest,
    actor: Actor,
    runtime: ServerRuntime,
    runs: EmbeddedBulkRuns,
) -> WorkflowDetail:
    problem = filter_problem(action, body.filter)
    if problem is not None:
        raise bad_parameter(*problem)
    spec = BulkSpec.of(action, body, actor.name, utc_now())
    record = await runtime.client.start(
        BULK_OPERATION,
        spec.initial_state(),
        actor=actor.name,
        check_broker=not runtime.embedded,
    )
    if runtime.embedded:
        runs.start(record)
    return WorkflowDetail.of(record)


@router.post(
    "/bulk/retry",
    response_model=WorkflowDetail,
    status_code=202,
    summary="Retry the failed workflows a filter matches (as a bulk workflow)",
)
async def bulk_retry(
    body: BulkRetryRequest, actor: Admin, runtime: Runtime, runs: Runs
) -> WorkflowDetail:
    return await _start(BulkAction.RETRY, body, actor, runtime, runs)


@router.post(
    "/bulk/cancel",
    response_model=WorkflowDetail,
    status_code=202,
    summary="Cancel the workflows a filter matches (as a bulk workflow)",
)
async def bulk_cancel(
    body: BulkCancelRequest, actor: Admin, runtime: Runtime, runs: Runs
) -> WorkflowDetail:
    return await _start(BulkAction.CANCEL, body, actor, runtime, runs)
