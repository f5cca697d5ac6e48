"""Plain records that cross the persistence boundary.

The engine and every persistence provider speak these dataclasses; nothing here knows how or
where they are stored. Timestamps are timezone-aware UTC.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypedDict

from ruvon.clock import utc_now
from ruvon.models import WorkflowStatus


class ParallelRun(TypedDict):
    """A PARALLEL step whose branches are out on the workers."""

    run: int  # the step's run number the branches belong to
    branches: int  # how many branch runs the fan-out enqueued


class ChildResult(TypedDict):
    """What a parent keeps of a child that completed."""

    workflow_type: str
    status: str
    state: dict[str, Any]
    final_result: dict[str, Any]  # the same as ``state`` (Ruvon's name for it)


class RunnerClaim(TypedDict):
    """Which process is advancing a workflow a timer woke (``ruvon worker --embedded``)."""

    owner: str  # "<role>@<host>:<pid>", shown in logs and errors
    host: str
    pid: int
    since: str  # ISO-8601 UTC


class WorkflowRuntime(TypedDict, total=False):
    """The engine's bookkeeping of one workflow, stored as JSON with the record.

    Every key is optional; a key is absent until the step kind that uses it writes it.
    """

    # How many times each step has been entered: the run number (a loop that comes back to a
    # step enters it again). Part of the idempotency key; a retry of one run keeps it.
    runs: dict[str, int]
    # A step function raised WorkflowPauseDirective: the workflow resumes *after* that step.
    resume_after: bool
    # Input given to next_step() for an ASYNC step, by step name, until the step succeeds
    # (a crash-recovered run, a worker's run and a retry call the function with it).
    pending_input: dict[str, dict[str, Any]]
    # LOOP progress, by step name: the next iteration's index (saved after every iteration).
    loops: dict[str, int]
    # Distributed PARALLEL steps whose branches are out, by step name.
    parallel: dict[str, ParallelRun]
    # Branch errors a PARALLEL step with allow_partial_success tolerated, by step name, then
    # by branch name.
    parallel_errors: dict[str, dict[str, str]]
    # Results of finished children, by child workflow id.
    sub_workflow_results: dict[str, ChildResult]
    # Ids of the workflows FIRE_AND_FORGET steps started.
    spawned: list[str]
    # The workflow was started on a cluster: tools that act on it later go through the cluster.
    cluster: bool
    # dynamic_injection rules that matched, as "step#rule": their inserted steps run, the
    # inserted steps of any other rule are passed over (see ruvon.definitions.injection).
    injected: list[str]
    # An embedded runner (or `ruvon resume`) took this workflow to fire its due timer or
    # approval deadline and run it to its next wait; the others leave it alone while it lives.
    claim: RunnerClaim
    # Event ids of the signals WAIT_FOR_EVENT steps consumed: a signal is consumed by the save
    # that records its step's transition, so it is taken exactly once (workflow_signals keeps
    # every signal as sent; this list says which of them are spent).
    signals_consumed: list[str]
    # The rendered key of the workflow-level concurrency slot it holds until it ends (taken
    # before its first step; ruvon.engine.admission).
    admitted: str


@dataclass
class WorkflowRecord:
    """One workflow instance as stored: identity, status, state and the definition snapshot.

    ``version`` is the optimistic-concurrency counter: every successful save bumps it by one and a
    save that expects an older version raises ``ConcurrencyConflict``.
    """

    id: str
    workflow_type: str
    status: WorkflowStatus
    state: dict[str, Any]
    definition_snapshot: dict[str, Any]
    current_step: int = 0
    workflow_version: str | None = None
    version: int = 0
    parent_execution_id: str | None = None
    blocked_on_child_id: str | None = None
    idempotency_key: str | None = None
    saga_mode: bool = False
    completed_steps: list[str] = field(default_factory=list)
    run_at: datetime | None = None
    error: str | None = None
    runtime: WorkflowRuntime = field(default_factory=lambda: WorkflowRuntime())
    metadata: dict[str, Any] = field(default_factory=dict)
    data_region: str | None = None
    priority: int = 0
    owner_id: str | None = None
    org_id: str | None = None
    created_at: datetime = field(default_factory=utc_now)
    updated_at: datetime = field(default_factory=utc_now)
    completed_at: datetime | None = None
    # Start + the workflow's `timeout`, fixed at creation: past it, it fails unless terminal.
    deadline_at: datetime | None = None

    @property
    def current_step_name(self) -> str | None:
        """Name of the step the workflow is at, or None past the last step."""
        steps = self.definition_snapshot.get("steps", [])
        if 0 <= self.current_step < len(steps):
            return str(steps[self.current_step]["name"])
        return None


@dataclass(frozen=True, slots=True)
class ListPosition:
    """Where a newest-first listing of workflows stopped: its last workflow's (created_at, id).

    ``list_workflows(after=position)`` continues with the workflows that sort after it (older,
    or as old with a smaller id): a keyset, so a page is stable while workflows are inserted.
    """

    created_at: datetime
    workflow_id: str

    @classmethod
    def of(cls, record: WorkflowRecord) -> ListPosition:
        """The position of ``record`` in the listing."""
        return cls(record.created_at, record.id)

    def to_cursor(self) -> str:
        """URL-safe text for this position (base64 of a small JSON array): a page's cursor.

        ``ruvon list --cursor`` and the server's ``?cursor=`` take the same text.
        """
        raw = json.dumps([self.created_at.isoformat(), self.workflow_id], separators=(",", ":"))
        return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")

    @classmethod
    def from_cursor(cls, text: str) -> ListPosition:
        """The position :meth:`to_cursor` wrote; ``ValueError`` for anything else."""
        stripped = text.strip()
        try:
            raw = base64.urlsafe_b64decode(stripped + "=" * (-len(stripped) % 4))
            created_at, workflow_id = json.loads(raw)
            moment = datetime.fromisoformat(created_at)
        except (binascii.Error, UnicodeDecodeError, TypeError, ValueError) as exc:
            raise ValueError(f"bad cursor {text!r}") from exc
        if moment.tzinfo is None or not isinstance(workflow_id, str):
            raise ValueError(f"bad cursor {text!r}")
        return cls(moment, workflow_id)


#: The audit event of an operator's action (details ``{action, by}``): who started, resumed,
#: cancelled or retried a workflow through ``ruvon.Client`` (the server names its token).
OPERATOR_ACTION = "OPERATOR_ACTION"


@dataclass(slots=True)
class AuditEntry:
    """One audited transition, written in the same transaction as the state change it describes.

    Not frozen: several are built per step, and frozen dataclasses cost ~5x more to construct.
    """

    workflow_id: str
    event_type: str
    step_name: str | None = None
    old_status: str | None = None
    new_status: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    recorded_at: datetime = field(default_factory=utc_now)


@dataclass(frozen=True)
class ExecutionLogEntry:
    """A human-readable log line attached to a workflow (what `ruvon logs` prints)."""

    workflow_id: str
    level: str
    message: str
    step_name: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    logged_at: datetime = field(default_factory=utc_now)


@dataclass(frozen=True)
class CompensationEntry:
    """The outcome of one compensation function run during a saga rollback."""

    workflow_id: str
    step_name: str
    function: str
    succeeded: bool
    error: str | None = None
    state_before: dict[str, Any] = field(default_factory=dict)
    executed_at: datetime = field(default_factory=utc_now)


@dataclass(frozen=True)
class ScheduleRecord:
    """A cron schedule that starts ``workflow_type`` with ``initial_data`` on every tick."""

    name: str
    workflow_type: str
    cron: str
    initial_data: dict[str, Any] = field(default_factory=dict)
    enabled: bool = True
    source_workflow_id: str | None = None
    next_run_at: datetime | None = None
    last_run_at: datetime | None = None
    created_at: datetime = field(default_factory=utc_now)


@dataclass(frozen=True)
class SignalRecord:
    """A named event sent to one workflow (``ruvon signal``), kept until a WAIT_FOR_EVENT
    step for that name consumes it. ``event_id`` is unique per workflow: a second send with
    the same id is a duplicate and changes nothing."""

    workflow_id: str
    name: str
    event_id: str
    data: dict[str, Any] = field(default_factory=dict)
    sent_by: str | None = None
    sent_at: datetime = field(default_factory=utc_now)
