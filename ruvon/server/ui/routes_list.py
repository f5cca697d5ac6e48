"""The workflows page: filters, counts by status, cursor paging and live rows."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request
from starlette.responses import RedirectResponse, Response

from ruvon.errors import WorkflowNotFound
from ruvon.models import WorkflowStatus
from ruvon.records import ListPosition, WorkflowRecord
from ruvon.server.dependencies import server_runtime
from ruvon.server.runtime import ServerRuntime
from ruvon.server.tokens import Role
from ruvon.server.ui.access import PageAccess, PageRoute, page_access
from ruvon.server.ui.rendering import UI_PREFIX, render

PAGE_SIZE = 50
COUNT_CAP = 200  # counts above it read "200+": a count is a scan until the store can count
PREFIX_SCAN = 1000  # an id prefix is looked for among the newest this many

router = APIRouter(route_class=PageRoute)
Viewer = Annotated[PageAccess, Depends(page_access(Role.VIEWER))]
Runtime = Annotated[ServerRuntime, Depends(server_runtime)]


@dataclass
class Filters:
    """The list's filters as typed in the form, and what each one means (or what is wrong)."""

    status: str = ""
    type: str = ""
    version: str = ""
    since: str = ""
    until: str = ""
    id: str = ""
    cursor: str = ""
    errors: dict[str, str] = field(default_factory=dict)
    status_value: WorkflowStatus | None = None
    since_value: datetime | None = None
    until_value: datetime | None = None
    after: ListPosition | None = None

    def query(self, **changes: str) -> str:
        """The query string of these filters with ``changes`` (empty values left out)."""
        values = {
            "status": self.status,
            "type": self.type,
            "version": self.version,
            "since": self.since,
            "until": self.until,
            "id": self.id,
            "cursor": self.cursor,
        }
        values.update(changes)
        return urlencode({key: value for key, value in values.items() if value})


def read_filters(request: Request) -> Filters:
    """The filters of the query string, each checked (an error is shown next to its field)."""
    query = request.query_params
    text = {name: query.get(name, "").strip() for name in _NAMES}
    found = Filters(
        status=text["status"],
        type=text["type"],
        version=text["version"],
        since=text["since"],
        until=text["until"],
        id=text["id"],
        cursor=text["cursor"],
    )
    if found.status:
        try:
            found.status_value = WorkflowStatus(found.status.upper())
        except ValueError:
            found.errors["status"] = f"'{found.status}' is not a status"
    found.since_value = _moment(found, "since")
    found.until_value = _moment(found, "until")
    if found.since_value and found.until_value and found.since_value >= found.until_value:
        found.errors["until"] = "must be after 'since'"
    if found.cursor:
        try:
            found.after = ListPosition.from_cursor(found.cursor)
        except ValueError:
            found.errors["cursor"] = "not a cursor of this list; start from the first page"
    return found


_NAMES = ("status", "type", "version", "since", "until", "id", "cursor")


def _moment(filters: Filters, name: str) -> datetime | None:
    text = getattr(filters, name)
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        filters.errors[name] = "a date and time like 2026-01-31T09:00 (UTC)"
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


@dataclass
class Listing:
    """One page of the list and the counts by status."""

    items: list[WorkflowRecord]
    next_cursor: str | None
    counts: list[tuple[str, str]]
    note: str | None = None


async def list_page(runtime: ServerRuntime, filters: Filters) -> Listing:
    """The page the filters select, newest first (empty when a filter is wrong)."""
    if filters.errors:
        return Listing(items=[], next_cursor=None, counts=[])
    persistence = runtime.persistence

    async def fetch(
        status: WorkflowStatus | None, limit: int, after: ListPosition | None = None
    ) -> list[WorkflowRecord]:
        return await persistence.list_workflows(
            status=status,
            workflow_type=filters.type or None,
            workflow_version=filters.version or None,
            created_since=filters.since_value,
            created_until=filters.until_value,
            after=after,
            limit=limit,
        )

    note = None
    if filters.id:
        scanned = await fetch(filters.status_value, PREFIX_SCAN)
        prefix = filters.id.lower()
        items = [
            record
            for record in scanned
            if record.id.startswith(prefix) or (record.idempotency_key or "").startswith(filters.id)
        ][:PAGE_SIZE]
        next_cursor = None
        if len(scanned) >= PREFIX_SCAN:
            note = f"Searched the newest {PREFIX_SCAN} workflows for this id prefix."
    else:
        found = await fetch(filters.status_value, PAGE_SIZE + 1, filters.after)
        items = found[:PAGE_SIZE]
        more = len(found) > PAGE_SIZE and items
        next_cursor = ListPosition.of(items[-1]).to_cursor() if more else None
    counts: list[tuple[str, str]] = []
    for status in WorkflowStatus:
        matched = await fetch(status, COUNT_CAP + 1)
        if matched:
            many = len(matched) > COUNT_CAP
            counts.append((status.value, f"{COUNT_CAP}+" if many else str(len(matched))))
    return Listing(items=items, next_cursor=next_cursor, counts=counts, note=note)


@router.get("/", include_in_schema=False)
async def root() -> RedirectResponse:
    return RedirectResponse(f"{UI_PREFIX}/workflows", status_code=303)


@router.get(UI_PREFIX, include_in_schema=False)
@router.get(UI_PREFIX + "/", include_in_schema=False)
async def ui_root() -> RedirectResponse:
    return RedirectResponse(f"{UI_PREFIX}/workflows", status_code=303)


@router.get(UI_PREFIX + "/workflows", include_in_schema=False)
async def workflows_page(request: Request, access: Viewer, runtime: Runtime) -> Response:
    filters = read_filters(request)
    if filters.id and not filters.errors:
        try:  # a whole id opens the workflow
            await runtime.persistence.load_workflow(filters.id)
            return RedirectResponse(f"{UI_PREFIX}/workflows/{filters.id}", status_code=303)
        except WorkflowNotFound:
            pass
    listing = await list_page(runtime, filters)
    context = {
        "filters": filters,
        "listing": listing,
        "statuses": [status.value for status in WorkflowStatus],
        "workflow_types": runtime.builder.workflow_types,
        "rows_url": f"{UI_PREFIX}/workflows/rows?{filters.query()}",
    }
    return render(request, "workflows.html", context, status=422 if filters.errors else 200)


@router.get(UI_PREFIX + "/workflows/rows", include_in_schema=False)
async def workflow_rows(request: Request, access: Viewer, runtime: Runtime) -> Response:
    """The table body and the counts, for the page's script to refresh every few seconds."""
    filters = read_filters(request)
    listing = await list_page(runtime, filters)
    return render(request, "workflow_rows.html", {"filters": filters, "listing": listing})
