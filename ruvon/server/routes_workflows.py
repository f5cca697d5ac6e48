"""Read endpoints: workflows a page at a time, one workflow, and its history."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query

from ruvon.models import WorkflowStatus
from ruvon.records import ListPosition
from ruvon.server.auth import require
from ruvon.server.concurrency_view import workflow_slots
from ruvon.server.dependencies import server_runtime
from ruvon.server.history import children_of, parallel_runs, parent_of, run_tracebacks, timers
from ruvon.server.models import (
    AuditItem,
    CompensationItem,
    StepRunItem,
    WorkflowDetail,
    WorkflowHistory,
    WorkflowPage,
    WorkflowSummary,
)
from ruvon.server.problems import ApiProblem
from ruvon.server.runtime import ServerRuntime
from ruvon.server.tokens import Actor, Role

MAX_PAGE = 500
MAX_FILTER_TEXT = 512

router = APIRouter(tags=["workflows"])
Viewer = Annotated[Actor, Depends(require(Role.VIEWER))]
Runtime = Annotated[ServerRuntime, Depends(server_runtime)]


def bad_parameter(name: str, message: str) -> ApiProblem:
    """A 422 that names the query parameter at fault."""
    return ApiProblem(
        422,
        "invalid_parameter",
        f"invalid {name}: {message}",
        [{"parameter": name, "message": message}],
    )


def _status(value: str | None) -> WorkflowStatus | None:
    if value is None or value == "":
        return None
    try:
        return WorkflowStatus(value.upper())
    except ValueError:
        names = ", ".join(status.value for status in WorkflowStatus)
        raise bad_parameter("status", f"{value!r} is not a status (one of {names})") from None


def _cursor(value: str | None) -> ListPosition | None:
    if not value:
        return None
    try:
        return ListPosition.from_cursor(value)
    except ValueError:
        raise bad_parameter(
            "cursor", "not a cursor from this API (use a page's next_cursor as it is)"
        ) from None


def _aware(moment: datetime | None) -> datetime | None:
    """A time without a zone is UTC (the API's zone; responses carry +00:00)."""
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)


@router.get("/workflows", response_model=WorkflowPage, summary="List workflows, newest first")
async def list_workflows(
    _actor: Viewer,
    runtime: Runtime,
    status: Annotated[str | None, Query(description="Only this status.")] = None,
    type: Annotated[str | None, Query(description="Only this workflow type.")] = None,
    parent: Annotated[str | None, Query(description="Only children of this workflow.")] = None,
    since: Annotated[
        datetime | None, Query(description="Created at or after (ISO 8601; no zone: UTC).")
    ] = None,
    until: Annotated[datetime | None, Query(description="Created before (ISO 8601).")] = None,
    version: Annotated[
        str | None,
        Query(max_length=MAX_FILTER_TEXT, description="Only this workflow_version."),
    ] = None,
    id_prefix: Annotated[
        str | None,
        Query(
            max_length=MAX_FILTER_TEXT,
            description="Only ids starting with this text (case-sensitive; % and _ literal).",
        ),
    ] = None,
    idempotency_key_prefix: Annotated[
        str | None,
        Query(
            max_length=MAX_FILTER_TEXT,
            description="Only idempotency keys starting with this text (as id_prefix).",
        ),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE, description="Page size.")] = 50,
    cursor: Annotated[str | None, Query(description="A previous page's next_cursor.")] = None,
) -> WorkflowPage:
    wanted = _status(status)
    after = _cursor(cursor)
    since, until = _aware(since), _aware(until)
    if since is not None and until is not None and since >= until:
        raise bad_parameter("until", "is not after since: nothing can match")
    found = await runtime.persistence.list_workflows(
        status=wanted,
        workflow_type=type,
        parent_execution_id=parent,
        created_since=since,
        created_until=until,
        workflow_version=version or None,
        id_prefix=id_prefix or None,
        idempotency_key_prefix=idempotency_key_prefix or None,
        after=after,
        limit=limit + 1,  # one more tells whether there is a next page
    )
    items = [WorkflowSummary.of(record) for record in found[:limit]]
    more = len(found) > limit
    return WorkflowPage(items=items, next_cursor=items[-1].cursor if more and items else None)


@router.get("/workflows/{workflow_id}", response_model=WorkflowDetail, summary="One workflow")
async def get_workflow(workflow_id: str, _actor: Viewer, runtime: Runtime) -> WorkflowDetail:
    persistence = runtime.persistence
    record = await persistence.load_workflow(workflow_id)
    detail = WorkflowDetail.of(record)
    detail.parent = await parent_of(persistence, record)
    detail.children, detail.more_children = await children_of(persistence, record)
    detail.concurrency = await workflow_slots(persistence, record)
    return detail


@router.get(
    "/workflows/{workflow_id}/history",
    response_model=WorkflowHistory,
    summary="Audit log, step runs, compensations, PARALLEL branches and timers of one workflow",
)
async def get_history(workflow_id: str, _actor: Viewer, runtime: Runtime) -> WorkflowHistory:
    persistence = runtime.persistence
    record = await persistence.load_workflow(workflow_id)  # unknown: 404, not empty lists
    audit = await persistence.get_audit_log(workflow_id)
    runs = await persistence.list_step_runs(workflow_id)
    compensations = await persistence.get_compensation_log(workflow_id)
    tracebacks = run_tracebacks(audit)
    return WorkflowHistory(
        workflow_id=workflow_id,
        audit=[AuditItem.of(entry) for entry in audit],
        step_runs=[StepRunItem.of(run, tracebacks.get(run.run_id)) for run in runs],
        compensations=[CompensationItem.of(entry) for entry in compensations],
        parallel=await parallel_runs(persistence, record, runs, audit),
        timers=timers(record, audit),
    )
