"""The workflow page, and the operations its forms send (through ``ruvon.Client``, audited
with the session's name, exactly as the API's operations are)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from ruvon.clock import utc_now
from ruvon.errors import InputValidationError, InvalidWorkflowOperation, RuvonError
from ruvon.models import WorkflowStatus
from ruvon.records import WorkflowRecord
from ruvon.server.concurrency_view import workflow_slots
from ruvon.server.dependencies import server_runtime
from ruvon.server.problems import ruvon_error_status
from ruvon.server.runtime import ServerRuntime
from ruvon.server.tokens import Role
from ruvon.server.ui import views
from ruvon.server.ui.access import FormAccess, PageAccess, PageRoute, form_access, page_access
from ruvon.server.ui.forms import FormOutcome, read_input, read_raw_input
from ruvon.server.ui.forms import validation_errors as model_errors
from ruvon.server.ui.rendering import UI_PREFIX, render
from ruvon.server.ui.waiting import WaitingForm, waiting_form

CHILDREN_LIMIT = 100
CHILD_DEPTH = 3

router = APIRouter(route_class=PageRoute)
Viewer = Annotated[PageAccess, Depends(page_access(Role.VIEWER))]
Operator = Annotated[FormAccess, Depends(form_access(Role.OPERATOR))]
Runtime = Annotated[ServerRuntime, Depends(server_runtime)]
DONE_MESSAGES = {
    "cancel": "Cancelled.",
    "retry": "Retried from the failed step.",
    "resume": "Input accepted; the workflow carries on.",
    "approve": "Approved.",
    "reject": "Rejected.",
}


def page_url(workflow_id: str) -> str:
    return f"{UI_PREFIX}/workflows/{workflow_id}"


async def _children(runtime: ServerRuntime, parent_id: str, depth: int) -> list[dict[str, Any]]:
    """The children of a workflow, and theirs, ``depth`` levels down."""
    found = await runtime.persistence.list_workflows(
        parent_execution_id=parent_id, limit=CHILDREN_LIMIT
    )
    tree: list[dict[str, Any]] = []
    for child in found:
        below = await _children(runtime, child.id, depth - 1) if depth > 1 else []
        tree.append({"record": child, "children": below})
    return tree


async def workflow_page(
    request: Request,
    access: PageAccess,
    runtime: Runtime,
    workflow_id: str,
    *,
    status: int = 200,
    error: str | None = None,
    field_errors: dict[str, str] | None = None,
    values: dict[str, str] | None = None,
) -> Response:
    """The whole page of one workflow (``error`` / ``field_errors`` after a refused form)."""
    persistence = runtime.persistence
    record = await persistence.load_workflow(workflow_id)
    audit = await persistence.get_audit_log(workflow_id)
    runs = await persistence.list_step_runs(workflow_id)
    compensations = await persistence.get_compensation_log(workflow_id)
    undone = {entry.step_name for entry in compensations if entry.succeeded}
    done = request.query_params.get("done", "")
    context = {
        "record": record,
        "status": str(record.status),
        "steps": views.step_views(record, audit, undone),
        "timeline": views.timeline(runs, audit, utc_now()),
        "branches": views.branch_runs(runs),
        "merges": views.parallel_summaries(audit),
        "errors": views.error_details(audit),
        "audit": audit,
        "compensations": compensations,
        "children": await _children(runtime, workflow_id, CHILD_DEPTH),
        "slots": await workflow_slots(persistence, record),
        "waiting": waiting_form(record) if access.may_operate else None,
        "can_cancel": access.may_operate and not record.status.is_terminal,
        "can_retry": access.may_operate and record.status in views.RETRYABLE,
        "notice": DONE_MESSAGES.get(done),
        "error": error,
        "field_errors": field_errors or {},
        "values": values or {},
        "settled": record.status.is_terminal or record.status is WorkflowStatus.WAITING_HUMAN,
    }
    return render(request, "workflow.html", context, status=status)


@router.get(UI_PREFIX + "/workflows/{workflow_id}", include_in_schema=False)
async def show_workflow(
    request: Request, workflow_id: str, access: Viewer, runtime: Runtime
) -> Response:
    return await workflow_page(request, access, runtime, workflow_id)


@router.get(UI_PREFIX + "/workflows/{workflow_id}/live", include_in_schema=False)
async def workflow_live(workflow_id: str, access: Viewer, runtime: Runtime) -> JSONResponse:
    """Where the workflow stands, for the page's script to reload when it has moved on."""
    record = await runtime.persistence.load_workflow(workflow_id)
    return JSONResponse(
        {
            "version": record.version,
            "status": str(record.status),
            "current_step": record.current_step_name,
        },
        headers={"Cache-Control": "no-store"},
    )


async def _operate(
    request: Request, access: FormAccess, runtime: ServerRuntime, workflow_id: str, action: str
) -> Response:
    """Run ``action`` as the API would; a refusal re-shows the page with the reason."""
    client, name = runtime.client, access.actor.name
    try:
        if action == "cancel":
            reason = access.form.get("reason", "").strip() or None
            await client.cancel(workflow_id, reason, actor=name)
        elif action == "retry":
            await runtime.carry_on(await client.retry(workflow_id, actor=name))
        else:
            record = await runtime.persistence.load_workflow(workflow_id)
            outcome = _resume_input(record, access, action)
            if outcome.errors:
                return await workflow_page(
                    request,
                    access,
                    runtime,
                    workflow_id,
                    status=422,
                    error="The input was not accepted: see the fields marked below.",
                    field_errors=outcome.errors,
                    values=access.form,
                )
            async with runtime.exclusive(workflow_id):
                resumed = await client.resume(workflow_id, outcome.data, actor=name)
                await runtime.carry_on(resumed)
    except (InputValidationError, InvalidWorkflowOperation) as exc:
        status, _code = ruvon_error_status(exc)
        return await workflow_page(
            request, access, runtime, workflow_id, status=status, error=str(exc), values=access.form
        )
    except RuvonError as exc:
        status, _code = ruvon_error_status(exc)
        if status == 404:
            raise
        return await workflow_page(
            request, access, runtime, workflow_id, status=status, error=str(exc)
        )
    return RedirectResponse(f"{page_url(workflow_id)}?done={action}", status_code=303)


def _resume_input(record: WorkflowRecord, access: FormAccess, action: str) -> FormOutcome:
    """The input the form gives the waiting step, checked against its model field by field."""
    form = waiting_form(record)
    if form is None:
        raise InvalidWorkflowOperation(
            f"workflow '{record.id}' is {record.status}, not waiting for input"
        )
    if action in ("approve", "reject"):
        return _decision(form, access, approved=action == "approve")
    if form.kind == "raw":
        return read_raw_input(access.form)
    outcome = read_input(form.fields, access.form)
    if form.model is not None and not outcome.errors:
        outcome.errors = model_errors(form.model, outcome.data)
    return outcome


def _decision(form: WaitingForm, access: FormAccess, *, approved: bool) -> FormOutcome:
    if form.kind != "approval":
        raise InvalidWorkflowOperation(
            f"step '{form.step}' takes its own input, not approve / reject: use its form"
        )
    reason = access.form.get("reason", "").strip() or None
    return FormOutcome(data={"approved": approved, "reason": reason, "approver": access.actor.name})


def _operation(action: str) -> Any:
    async def endpoint(
        request: Request, workflow_id: str, access: Operator, runtime: Runtime
    ) -> Response:
        return await _operate(request, access, runtime, workflow_id, action)

    endpoint.__name__ = f"ui_{action}_workflow"
    return endpoint


for _action in DONE_MESSAGES:
    router.add_api_route(
        UI_PREFIX + "/workflows/{workflow_id}/" + _action,
        _operation(_action),
        methods=["POST"],
        include_in_schema=False,
    )
