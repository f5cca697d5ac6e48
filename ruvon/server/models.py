"""What the API sends and accepts: pydantic models at the boundary, built from Ruvon records."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ruvon.definitions.definition import WorkflowDefinition
from ruvon.providers.runs import StepRunRecord
from ruvon.records import (
    AuditEntry,
    CompensationEntry,
    ListPosition,
    ScheduleRecord,
    WorkflowRecord,
)

# Items read field by field from a record of the same names (enums become their values).
_FROM_RECORD = ConfigDict(from_attributes=True)


class WorkflowSummary(BaseModel):
    """One workflow in a listing."""

    id: str
    workflow_type: str
    workflow_version: str | None
    status: str
    priority: int = 0
    current_step: str | None
    parent_execution_id: str | None
    idempotency_key: str | None = None
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
            priority=record.priority,
            current_step=record.current_step_name,
            parent_execution_id=record.parent_execution_id,
            idempotency_key=record.idempotency_key,
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
    priority: int = 0
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
    deadline_at: datetime | None = Field(
        default=None, description="Past it, the workflow fails (its workflow-level timeout)."
    )
    version: int
    created_at: datetime
    updated_at: datetime
    completed_at: datetime | None
    parent: WorkflowLink | None = Field(
        default=None, description="The parent workflow (GET /workflows/{id} only)."
    )
    children: list[WorkflowLink] | None = Field(
        default=None,
        description="Child workflows, oldest first, at most 100 (GET /workflows/{id} only; "
        "page through more with /workflows?parent=ID). None: not looked up.",
    )
    more_children: bool = Field(default=False, description="More children than listed.")
    concurrency: list[WorkflowSlot] | None = Field(
        default=None,
        description="The concurrency slots it holds or waits for (GET /workflows/{id} only; "
        "empty once it has ended). None: not looked up.",
    )

    @classmethod
    def of(cls, record: WorkflowRecord) -> WorkflowDetail:
        return cls(
            id=record.id,
            workflow_type=record.workflow_type,
            workflow_version=record.workflow_version,
            status=str(record.status),
            priority=record.priority,
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
            deadline_at=record.deadline_at,
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
    traceback: str | None = Field(
        default=None,
        description="The traceback of this run's last failed attempt (its last 8 KiB), "
        "from the STEP_RETRY / STEP_FAILED audit entry that recorded it.",
    )

    @classmethod
    def of(cls, run: StepRunRecord, traceback: str | None = None) -> StepRunItem:
        item = cls.model_validate(run)
        item.traceback = traceback
        return item


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
    parallel: list[ParallelStepItem] = Field(default_factory=list)
    timers: list[TimerItem] = Field(default_factory=list)


class StepInfo(BaseModel):
    name: str
    type: str


class DefinitionInfo(BaseModel):
    """One registered version of a workflow type: its steps, and whether starts get it."""

    workflow_type: str
    workflow_version: str | None
    latest: bool = Field(description="A start that names no version gets this one.")
    description: str | None
    steps: list[StepInfo]

    @classmethod
    def of(cls, definition: WorkflowDefinition, *, latest: bool = True) -> DefinitionInfo:
        spec = definition.spec
        return cls(
            workflow_type=definition.workflow_type,
            workflow_version=spec.workflow_version,
            latest=latest,
            description=spec.description,
            steps=[StepInfo(name=step.name, type=str(step.type)) for step in definition.steps],
        )


class DefinitionProblem(BaseModel):
    """A registered workflow type whose files do not load."""

    workflow_type: str
    error: str


class DefinitionList(BaseModel):
    """Every version of every registered type (by type, oldest version first)."""

    definitions: list[DefinitionInfo]
    problems: list[DefinitionProblem]


class StartRequest(BaseModel):
    """``POST /workflows``: a new workflow of ``type`` with ``data`` as its initial state."""

    type: str = Field(min_length=1)
    data: dict[str, Any] = Field(default_factory=dict)
    idempotency_key: str | None = None
    version: str | None = Field(
        default=None,
        min_length=1,
        description="The workflow_version to start (default: the latest registered).",
    )
    priority: int | None = Field(
        default=None,
        ge=0,
        le=9,
        strict=True,
        description="0 (lowest) to 9 (served first); default: the workflow file's, else 0.",
    )


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


# -- family, PARALLEL branches and timers (GET /workflows/{id}, .../history) ----------------------


class WorkflowLink(BaseModel):
    """Another workflow named by this one (its parent or a child)."""

    id: str
    workflow_type: str
    status: str
    current_step: str | None

    @classmethod
    def of(cls, record: WorkflowRecord) -> WorkflowLink:
        return cls(
            id=record.id,
            workflow_type=record.workflow_type,
            status=str(record.status),
            current_step=record.current_step_name,
        )


class BranchItem(BaseModel):
    """One branch of a PARALLEL step run: its run on the workers and its recorded outcome."""

    name: str
    status: str = Field(description="The branch run's status, or SUCCEEDED / FAILED recorded.")
    attempt: int | None = None
    worker: str | None = None
    queue: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    succeeded: bool | None = Field(default=None, description="None: no outcome recorded yet.")
    error: str | None = None


class ParallelStepItem(BaseModel):
    """One run of a PARALLEL step: how many branches, which failed, each branch (cluster)."""

    step_name: str
    run_number: int
    branch_count: int | None = Field(description="Branches planned (None: not recorded).")
    succeeded: int | None = Field(description="Branches merged successfully (None: not merged).")
    failed: dict[str, str] = Field(description="Failed branch -> its error.")
    merged: bool
    branches: list[BranchItem] = Field(
        description="Per branch (a cluster's branch runs); empty when run in one process."
    )


class TimerItem(BaseModel):
    """A WAIT timer or an approval deadline: pending (with when it is due) or already fired."""

    kind: str = Field(description="wait, approval_timeout or event_timeout")
    step_name: str | None
    due_at: datetime | None
    state: str = Field(description="pending, fired or timed_out")
    due: bool = Field(description="A pending timer whose time has come (the beat fires it).")


# -- approval ---------------------------------------------------------------------------------


class SignalRequest(BaseModel):
    """``POST /workflows/{id}/signals/{name}``: the event's data and, optionally, its id."""

    data: dict[str, Any] = Field(default_factory=dict)
    event_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        description="Unique per workflow: a second send with the same id changes nothing",
    )


class SignalResponse(BaseModel):
    """What a signal did: ``delivered`` (the workflow moved on), ``stored`` (kept until the
    workflow reaches its wait) or ``duplicate`` (this event id was sent before)."""

    outcome: str
    event_id: str
    workflow: WorkflowDetail


class DecisionRequest(BaseModel):
    """``POST /workflows/{id}/approve`` or ``/reject``: an optional reason."""

    reason: str | None = Field(default=None, max_length=10_000)


# -- schedules --------------------------------------------------------------------------------


class ScheduleItem(BaseModel):
    """One schedule that starts workflows (``ruvon schedules list``)."""

    model_config = _FROM_RECORD

    name: str
    workflow_type: str
    spec: str = Field(validation_alias="cron", description="The schedule's spec as stored.")
    enabled: bool
    next_run_at: datetime | None
    last_run_at: datetime | None
    initial_data: dict[str, Any]
    source_workflow_id: str | None
    created_at: datetime

    @classmethod
    def of(cls, schedule: ScheduleRecord) -> ScheduleItem:
        return cls.model_validate(schedule)


class ScheduleList(BaseModel):
    schedules: list[ScheduleItem]


class TriggerResult(BaseModel):
    """``POST /schedules/{name}/trigger``: the schedule and the workflow it started now."""

    schedule: ScheduleItem
    workflow: WorkflowDetail


# -- cluster ----------------------------------------------------------------------------------


class WorkerInfo(BaseModel):
    """A worker, by its heartbeat file and/or its answer to a ping."""

    node: str
    alive: bool | None = Field(default=None, description="Heartbeat younger than the max age.")
    ready: bool | None = None
    heartbeat_age: float | None = Field(default=None, description="Seconds since its heartbeat.")
    pid: int | None = None
    started_at: str | None = None
    queues: list[str] | None = None
    answered_ping: bool | None = Field(default=None, description="None: not pinged.")


class BrokerInfo(BaseModel):
    url: str = Field(description="The broker URL, password redacted.")
    ok: bool | None
    error: str | None


class QueueInfo(BaseModel):
    """One queue: messages on the broker and unfinished step runs in the database."""

    name: str
    depth: int | None = Field(description="Messages waiting on the broker (None: not counted).")
    queued: int
    due: int
    running: int
    oldest_due_at: datetime | None
    lag_seconds: float | None = Field(description="Age of the oldest due QUEUED run.")


class RecoveryItem(BaseModel):
    """A recovery the beat audited: a dead worker's run re-queued, a lost message re-sent, or a
    workflow failed for worker crashes."""

    workflow_id: str
    event_type: str
    step_name: str | None
    new_status: str | None
    details: dict[str, Any]
    recorded_at: datetime

    @classmethod
    def of(cls, entry: AuditEntry) -> RecoveryItem:
        return cls(
            workflow_id=entry.workflow_id,
            event_type=entry.event_type,
            step_name=entry.step_name,
            new_status=entry.new_status,
            details=dict(entry.details),
            recorded_at=entry.recorded_at,
        )


class ClusterView(BaseModel):
    """``GET /cluster``. ``mode`` embedded (SQLite): no workers, queues or beat to report."""

    mode: str = Field(description="cluster or embedded")
    as_of: datetime
    health_dir: str | None = Field(description="Where heartbeat files were read (None: unset).")
    workers: list[WorkerInfo]
    pinged: list[str] | None = Field(description="Nodes that answered a ping (None: no ping).")
    broker: BrokerInfo | None
    queues: list[QueueInfo]
    recoveries: list[RecoveryItem] = Field(description="Newest first.")


# -- concurrency slots (GET /concurrency, GET /workflows/{id}) --------------------------------


class SlotItem(BaseModel):
    """A holder of a slot of a key, or a waiter for one (``position``: its place in line)."""

    workflow_id: str
    step_name: str | None = Field(description="None: the workflow's own slot.")
    holder: str = Field(description="The workflow id, or '<workflow id>/<step>[/<branch>]'.")
    priority: int
    since: datetime = Field(description="Held since, or waiting since.")
    position: int | None = Field(
        default=None, description="1-based place in the waiting line (None: a holder)."
    )
    run_id: int | None = Field(default=None, description="The cluster step run it is bound to.")
    owner: str | None = Field(default=None, description="host:pid of the embedded process.")


class ConcurrencyKey(BaseModel):
    """One key: who holds its slots and who waits, in the order they will be served."""

    key: str
    limit: int = Field(description="Slots of the key held at once, as its holders asked.")
    holding: list[SlotItem]
    waiting: list[SlotItem]


class ConcurrencyView(BaseModel):
    """``GET /concurrency``: every key with a live holder or waiter, keys sorted."""

    keys: list[ConcurrencyKey]


class WorkflowSlot(BaseModel):
    """A slot one workflow holds or waits for (``GET /workflows/{id}``)."""

    key: str
    state: str = Field(description="HOLDING or WAITING")
    step_name: str | None = Field(description="None: the workflow's own slot.")
    holder: str
    limit: int
    position: int | None = Field(description="1-based place in line while WAITING.")


WorkflowDetail.model_rebuild()
WorkflowHistory.model_rebuild()
