"""What a bulk operation does, as the API accepts it and as its workflow's state keeps it."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ruvon.models import WorkflowStatus

__all__ = [
    "MAX_COUNT",
    "RETRYABLE",
    "BulkAction",
    "BulkCancelRequest",
    "BulkFilter",
    "BulkRequest",
    "BulkRetryRequest",
    "BulkSpec",
    "Outcome",
    "filter_problem",
]

#: The most workflows one bulk operation may touch (its outcomes are kept in its state).
MAX_COUNT = 10_000

#: What ``retry`` accepts (as :meth:`ruvon.workflow.Workflow.retry` does).
RETRYABLE = frozenset(
    {
        WorkflowStatus.FAILED,
        WorkflowStatus.FAILED_WORKER_CRASH,
        WorkflowStatus.FAILED_CHILD_WORKFLOW,
    }
)


class BulkAction(StrEnum):
    RETRY = "retry"
    CANCEL = "cancel"


class Outcome(StrEnum):
    """What happened to one matching workflow."""

    OK = "ok"
    SKIPPED = "skipped"
    ERROR = "error"
    DRY_RUN = "dry_run"  # would have been acted on


class BulkFilter(BaseModel):
    """Which workflows: every given field must match (as in ``GET /workflows``)."""

    model_config = ConfigDict(extra="forbid")

    status: WorkflowStatus | None = Field(
        default=None, description="Only this status (retry: FAILED unless given)."
    )
    type: str | None = Field(default=None, min_length=1, description="Only this workflow type.")
    since: datetime | None = Field(default=None, description="Created at or after (ISO 8601).")
    until: datetime | None = Field(default=None, description="Created before (ISO 8601).")


class BulkRequest(BaseModel):
    """``POST /bulk/{retry,cancel}``: a filter and an explicit limit (the confirmation)."""

    model_config = ConfigDict(extra="forbid")

    filter: BulkFilter
    max_count: int = Field(
        ge=1,
        le=MAX_COUNT,
        description="Required confirmation: act on at most this many matching workflows "
        "(newest first); any beyond are left alone and the outcome says so (truncated).",
    )
    dry_run: bool = Field(default=False, description="Record what would be done, change nothing.")


class BulkRetryRequest(BulkRequest):
    """``POST /bulk/retry`` (``filter.status``: a failed status; FAILED when not given)."""


class BulkCancelRequest(BulkRequest):
    """``POST /bulk/cancel`` (``filter.status``, if given: one that is not terminal)."""

    reason: str | None = Field(default=None, max_length=1000)


def filter_problem(action: BulkAction, wanted: BulkFilter) -> tuple[str, str] | None:
    """(parameter, what is wrong) when the filter cannot mean what was asked; None if fine."""
    status = wanted.status
    if action is BulkAction.RETRY and status is not None and status not in RETRYABLE:
        names = ", ".join(sorted(RETRYABLE))
        return "filter.status", f"retry applies to failed workflows ({names}), not {status}"
    if action is BulkAction.CANCEL and status is not None and status.is_terminal:
        return "filter.status", f"a {status} workflow cannot be cancelled"
    since, until = _utc(wanted.since), _utc(wanted.until)
    if since is not None and until is not None and since >= until:
        return "filter.until", "is not after since: nothing can match"
    return None


def _utc(moment: datetime | None) -> datetime | None:
    """A time without a zone is UTC (as in ``GET /workflows``)."""
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)


class BulkSpec(BaseModel):
    """The operation as its workflow's state holds it (written once, when it starts)."""

    action: BulkAction
    actor: str
    status: WorkflowStatus | None
    workflow_type: str | None
    since: datetime | None
    until: datetime
    max_count: int
    dry_run: bool
    reason: str | None = None

    @classmethod
    def of(
        cls, action: BulkAction, request: BulkRequest, actor: str, started_at: datetime
    ) -> BulkSpec:
        """Only workflows created before ``started_at``: later ones are not what was asked."""
        wanted = request.filter
        status = wanted.status
        if action is BulkAction.RETRY and status is None:
            status = WorkflowStatus.FAILED
        until = _utc(wanted.until)
        until = min(until, started_at) if until is not None else started_at
        return cls(
            action=action,
            actor=actor,
            status=status,
            workflow_type=wanted.type,
            since=_utc(wanted.since),
            until=until,
            max_count=request.max_count,
            dry_run=request.dry_run,
            reason=request.reason if isinstance(request, BulkCancelRequest) else None,
        )

    def initial_state(self) -> dict[str, Any]:
        """The bulk workflow's state when it starts."""
        return {
            "request": self.model_dump(mode="json"),
            "cursor": None,
            "more": True,
            "truncated": False,
            "counts": {outcome.value: 0 for outcome in Outcome},
            "outcomes": [],
        }
