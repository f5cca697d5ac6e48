"""What the API sends and accepts: pydantic models at the boundary, built from Ruvon records."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ruvon.definitions.definition import WorkflowDefinition
from ruvon.providers.runs import StepRunRecord
from ruvon.records import AuditEntry, CompensationEntry, ListPosition, WorkflowRecord

# Items read field by field from a record of the same names (enums become their values).
_FROM_RECORD = ConfigDict(from_attributes=True)


class WorkflowSummary(BaseModel):
    """One workflow in a listing."""

    id: str
    workflow_type: str
    workflow_version: str | None
    status: str
    current_step: str | None
    parent_execution_id: str | None
    error: str | None
    created_at: datetime
    updated_at: datetime
    completed_at: datetime | None
    cursor: str = Field(description="Pass as ?cursor= to list the workflows after this one.")

    @classmethod
    def of(cls, record: WorkflowRecord) -> WorkflowSummary:
        return cls(
            id=record.id,
            workflow_type=record.workflow_type,
            workflow_version=record.workflow_version,
            status=str(record.status),
            current_step=record.current_step_name,
            parent_execution_id=record.parent_execution_id,
            error=record.error,
            created_at=record.created_at,
            updated_at=record.updated_at,
            completed_at=record.completed_at,
            cursor=ListPosition.of(record).to_cursor(),
        )


class WorkflowPage(BaseModel):
    """A page of workflows, newest first, and the cursor of the next page (None: last page)."""

    items: list[WorkflowSummary]
    next_cursor: str | None


class WorkflowDetail(BaseModel):
    """One workflow as stored: where it stands, its state and the definition it runs."""

    id: str
    workflow_type: str
    workflow_version: str | None
    status: str
    current_step: str | None
    current_step_index: int
    completed_steps: list[str]
    state: dict[str, Any]
    definition_snapshot: dict[str, Any]
    parent_execution_id: str | None
    blocked_on_child_id: str | None
    idempotency_key: str | None
    error: str | None
    run_at: datetime | None
    version: int
    created_at: datetime
    updated_at: datetime
    completed_at: datetime | None

    @classmethod
    def of(cls, record: WorkflowRecord) -> WorkflowDetail:
        return cls(
            id=record.id,
            workflow_type=record.workflow_type,
            workflow_version=record.workflow_version,
            status=str(record.status),
            current_step=record.current_step_name,
            current_step_index=record.current_step,
            completed_steps=list(record.completed_steps),
            state=dict(record.state),
            definition_snapshot=dict(record.definition_snapshot),
            parent_execution_id=record.parent_execution_id,
            blocked_on_child_id=record.blocked_on_child_id,
            idempotency_key=record.idempotency_key,
            error=record.error,
            run_at=record.run_at,
            version=record.version,
            created_at=record.created_at,
            updated_at=record.updated_at,
            completed_at=record.completed_at,
        )


class AuditItem(BaseModel):
    """One audited transition (or operator action)."""

    model_config = _FROM_RECORD

    event_type: str
    step_name: str | None
    old_status: str | None
    new_status: str | None
    details: dict[str, Any]
    recorded_at: datetime

    @classmethod
    def of(cls, entry: AuditEntry) -> AuditItem:
        return cls.model_validate(entry)


class StepRunItem(BaseModel):
    """One step run: where and how it ran (empty for workflows run in one process)."""

    model_config = _FROM_RECORD

    run_id: int
    kind: str
    step_name: str
    branch: str
    run_number: int
    status: str
    attempt: int
    queue: str
    worker: str | None
    created_at: datetime
    run_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    error: str | None

    @classmethod
    def of(cls, run: StepRunRecord) -> StepRunItem:
        return cls.model_validate(run)


class CompensationItem(BaseModel):
    """One compensation function run during a saga rollback."""

    model_config = _FROM_RECORD

    step_name: str
    function: str
    succeeded: bool
    error: str | None
    executed_at: datetime

    @classmethod
    def of(cls, entry: CompensationEntry) -> CompensationItem:
        return cls.model_validate(entry)


class WorkflowHistory(BaseModel):
    """Everything recorded about a workflow's past."""

    workflow_id: str
    audit: list[AuditItem]
    step_runs: list[StepRunItem]
    compensations: list[CompensationItem]


class StepInfo(BaseModel):
    name: str
    type: str


class DefinitionInfo(BaseModel):
    """A registered workflow type: its version and steps."""

    workflow_type: str
    workflow_version: str | None
    description: str | None
    steps: list[StepInfo]

    @classmethod
    def of(cls, definition: WorkflowDefinition) -> DefinitionInfo:
        spec = definition.spec
        return cls(
            workflow_type=definition.workflow_type,
            workflow_version=spec.workflow_version,
            description=spec.description,
            steps=[StepInfo(name=step.name, type=str(step.type)) for step in definition.steps],
        )


class DefinitionProblem(BaseModel):
    """A registered workflow type whose files do not load."""

    workflow_type: str
    error: str


class DefinitionList(BaseModel):
    definitions: list[DefinitionInfo]
    problems: list[DefinitionProblem]


class StartRequest(BaseModel):
    """``POST /workflows``: a new workflow of ``type`` with ``data`` as its initial state."""

    type: str = Field(min_length=1)
    data: dict[str, Any] = Field(default_factory=dict)
    idempotency_key: str | None = None


class ResumeRequest(BaseModel):
    """``POST /workflows/{id}/resume``: the input for the step the workflow waits at."""

    input: dict[str, Any] | None = None


class CancelRequest(BaseModel):
    reason: str | None = None


class Check(BaseModel):
    ok: bool | None
    summary: str


class Readiness(BaseModel):
    ready: bool
    checks: dict[str, Check]
