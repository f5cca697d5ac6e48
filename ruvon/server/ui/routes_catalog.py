"""The definitions page (registered types, versions, steps) and the schedules page."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from ruvon.definitions.definition import WorkflowDefinition
from ruvon.errors import RuvonError
from ruvon.server.dependencies import server_runtime
from ruvon.server.runtime import ServerRuntime
from ruvon.server.tokens import Role
from ruvon.server.ui.access import PageAccess, PageError, PageRoute, page_access
from ruvon.server.ui.rendering import UI_PREFIX, render

router = APIRouter(route_class=PageRoute)
Viewer = Annotated[PageAccess, Depends(page_access(Role.VIEWER))]
Runtime = Annotated[ServerRuntime, Depends(server_runtime)]


@router.get(UI_PREFIX + "/definitions", include_in_schema=False)
async def definitions_page(request: Request, access: Viewer, runtime: Runtime) -> Response:
    builder = runtime.builder
    found: list[dict[str, Any]] = []
    problems: list[tuple[str, str]] = []
    for workflow_type in builder.workflow_types:
        try:
            versions = builder.definitions_of(workflow_type)
        except RuvonError as exc:
            problems.append((workflow_type, str(exc)))
            continue
        # Newest first on the page: the version a start gets leads.
        found += [
            _definition_card(definition, latest=i == 0, several=len(versions) > 1)
            for i, definition in enumerate(reversed(versions))
        ]
    context = {"definitions": found, "problems": problems}
    return render(request, "definitions.html", context)


def _definition_card(
    definition: WorkflowDefinition, *, latest: bool, several: bool
) -> dict[str, Any]:
    """What the definitions page shows of one version of a type."""
    spec = definition.spec
    steps = [
        {
            "name": step.name,
            "type": str(step.type),
            "function": step.function or step.task_function or step.target_workflow_type,
            "input_model": step.input_model,
            "description": step.description,
            "inserted_by": step.injected_by.step if step.injected_by is not None else None,
        }
        for step in definition.steps
    ]
    return {
        "type": definition.workflow_type,
        "version": spec.workflow_version,
        "latest": latest and several,
        "older": not latest,
        "description": spec.description,
        "saga": spec.saga_mode,
        "steps": steps,
    }


@router.get(UI_PREFIX + "/schedules", include_in_schema=False)
async def schedules_page(request: Request, access: Viewer, runtime: Runtime) -> Response:
    schedules = await runtime.persistence.list_schedules()
    return render(request, "schedules.html", {"schedules": schedules})


@router.get(UI_PREFIX + "/{path:path}", include_in_schema=False)
async def unknown_page(path: str, access: Viewer) -> Response:
    """Any other /ui address: a 404 page (after the login), not the API's JSON."""
    raise PageError(404, "Not found", f"There is no page at {UI_PREFIX}/{path}.")
