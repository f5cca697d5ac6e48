"""What a workflow's records say about its family, its PARALLEL steps and its timers.

Nothing here is stored for the API: each answer is read back from what the engine already keeps.

* **Children** are the workflows whose ``parent_execution_id`` is this one (SUB_WORKFLOW), plus
  the ids FIRE_AND_FORGET steps recorded in ``runtime["spawned"]``.
* **PARALLEL branches**: a cluster runs each branch as a step run of kind ``BRANCH`` and
  records its outcome in the run ledger; in one process the branches leave only the
  ``PARALLEL_TASKS_MERGED`` audit entry (how many, which failed). Both are combined per step run.
* **Timers**: the pending one is the record's ``run_at`` while it waits at a WAIT step or an
  approval with a deadline; fired ones are the ``TIMER_FIRED`` / ``APPROVAL_TIMED_OUT`` audit
  entries.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime

from ruvon.clock import utc_now
from ruvon.errors import WorkflowNotFound
from ruvon.models import StepType, WorkflowStatus
from ruvon.providers.ledger import RunLedger
from ruvon.providers.persistence import PersistenceProvider
from ruvon.providers.runs import BranchOutcome, RunKind, StepRunRecord
from ruvon.records import AuditEntry, WorkflowRecord
from ruvon.server.models import BranchItem, ParallelStepItem, TimerItem, WorkflowLink

MAX_CHILDREN = 100
MERGED = "PARALLEL_TASKS_MERGED"


async def parent_of(
    persistence: PersistenceProvider, record: WorkflowRecord
) -> WorkflowLink | None:
    """The parent workflow, if it has one (and it is still stored)."""
    if record.parent_execution_id is None:
        return None
    try:
        return WorkflowLink.of(await persistence.load_workflow(record.parent_execution_id))
    except WorkflowNotFound:
        return None


async def children_of(
    persistence: PersistenceProvider, record: WorkflowRecord
) -> tuple[list[WorkflowLink], bool]:
    """Up to :data:`MAX_CHILDREN` children, oldest first, and whether there are more."""
    found = await persistence.list_workflows(parent_execution_id=record.id, limit=MAX_CHILDREN + 1)
    more = len(found) > MAX_CHILDREN
    children = {child.id: child for child in reversed(found[:MAX_CHILDREN])}
    for spawned_id in record.runtime.get("spawned", []):
        if len(children) >= MAX_CHILDREN:
            more = True
            break
        if spawned_id not in children:
            try:
                children[spawned_id] = await persistence.load_workflow(spawned_id)
            except WorkflowNotFound:
                continue
    return [WorkflowLink.of(child) for child in children.values()], more


def run_tracebacks(audit: Sequence[AuditEntry]) -> dict[int, str]:
    """Step run id -> the traceback of its last failed attempt.

    Read from the audit rather than kept on the run: the STEP_RETRY / STEP_FAILED row that
    carries it commits in the same transaction that re-queues or closes the run, and names it.
    """
    found: dict[int, str] = {}
    for entry in audit:
        if entry.event_type not in ("STEP_RETRY", "STEP_FAILED"):
            continue
        run, text = entry.details.get("run"), entry.details.get("traceback")
        if isinstance(run, int) and isinstance(text, str):
            found[run] = text
    return found


#: The audit event of a missed deadline, and the timer kind it closes.
_TIMED_OUT = {"APPROVAL_TIMED_OUT": "approval_timeout", "EVENT_TIMED_OUT": "event_timeout"}


def _parallel_steps(record: WorkflowRecord) -> list[str]:
    steps = record.definition_snapshot.get("steps", [])
    return [str(s["name"]) for s in steps if str(s.get("type")) == StepType.PARALLEL.value]


async def parallel_runs(
    persistence: PersistenceProvider,
    record: WorkflowRecord,
    runs: Sequence[StepRunRecord],
    audit: Sequence[AuditEntry],
) -> list[ParallelStepItem]:
    """Every run of every PARALLEL step the records know about, in step then run order."""
    names = _parallel_steps(record)
    branch_runs: dict[tuple[str, int], dict[str, StepRunRecord]] = defaultdict(dict)
    for run in runs:
        if run.kind is RunKind.BRANCH and run.step_name in names:
            branch_runs[(run.step_name, run.run_number)][run.branch] = run  # the latest attempt
    merges = _merges_by_run(audit, names)
    out_now = record.runtime.get("parallel", {})
    items: list[ParallelStepItem] = []
    for name in names:
        numbers = {number for step, number in branch_runs if step == name}
        numbers |= {number for step, number in merges if step == name}
        if name in out_now:
            numbers.add(int(out_now[name]["run"]))
        for number in sorted(numbers):
            outcomes: list[BranchOutcome] = []
            if isinstance(persistence, RunLedger) and branch_runs.get((name, number)):
                outcomes = await persistence.branch_results(record.id, name, number)
            merge = merges.get((name, number))
            planned = out_now[name]["branches"] if name in out_now else None
            items.append(
                _item(name, number, planned, merge, branch_runs.get((name, number), {}), outcomes)
            )
    return items


def _merges_by_run(
    audit: Sequence[AuditEntry], names: Sequence[str]
) -> dict[tuple[str, int], AuditEntry]:
    """The latest merge of each (step, run number): a retried run merges again, and the last
    one is its outcome. An entry without ``run`` (written before it was recorded) counts as the
    run after the step's previous merge."""
    found: dict[tuple[str, int], AuditEntry] = {}
    last: dict[str, int] = defaultdict(int)
    for entry in audit:
        name = entry.step_name
        if entry.event_type != MERGED or name is None or name not in names:
            continue
        run = entry.details.get("run")
        number = int(run) if isinstance(run, int) else last[name] + 1
        last[name] = number
        found[(name, number)] = entry
    return found


def _item(
    name: str,
    number: int,
    planned: int | None,
    merge: AuditEntry | None,
    runs: dict[str, StepRunRecord],
    outcomes: Sequence[BranchOutcome],
) -> ParallelStepItem:
    recorded = {outcome.branch: outcome for outcome in outcomes}
    branches: list[BranchItem] = []
    for branch_name in [*runs, *(b for b in recorded if b not in runs)]:
        run, outcome = runs.get(branch_name), recorded.get(branch_name)
        status = str(run.status) if run is not None else "RECORDED"
        branches.append(
            BranchItem(
                name=branch_name,
                status=status,
                attempt=run.attempt if run is not None else None,
                worker=run.worker if run is not None else None,
                queue=run.queue if run is not None else None,
                started_at=run.started_at if run is not None else None,
                finished_at=run.finished_at if run is not None else None,
                succeeded=outcome.succeeded if outcome is not None else None,
                error=(outcome.error if outcome is not None else None)
                or (run.error if run is not None else None),
            )
        )
    details = merge.details if merge is not None else {}
    failed = {str(k): str(v) for k, v in dict(details.get("failed") or {}).items()}
    if not failed:
        failed = {b.name: b.error or "failed" for b in branches if b.succeeded is False}
    count = details.get("branches", planned if planned is not None else len(branches) or None)
    return ParallelStepItem(
        step_name=name,
        run_number=number,
        branch_count=int(count) if count is not None else None,
        succeeded=int(details["succeeded"]) if "succeeded" in details else None,
        failed=failed,
        merged=merge is not None,
        branches=branches,
    )


def _step_type(record: WorkflowRecord) -> str | None:
    steps = record.definition_snapshot.get("steps", [])
    if 0 <= record.current_step < len(steps):
        return str(steps[record.current_step].get("type"))
    return None


def timers(
    record: WorkflowRecord, audit: Sequence[AuditEntry], now: datetime | None = None
) -> list[TimerItem]:
    """Fired timers and approval timeouts (oldest first), then the pending one, if any."""
    moment = now or utc_now()
    found: list[TimerItem] = []
    for entry in audit:
        if entry.event_type == "TIMER_FIRED":
            due = entry.details.get("run_at")
            found.append(
                TimerItem(
                    kind="wait", step_name=entry.step_name, due_at=due, state="fired", due=False
                )
            )
        elif entry.event_type in _TIMED_OUT:
            timed_out = entry.recorded_at
            found.append(
                TimerItem(
                    kind=_TIMED_OUT[entry.event_type],
                    step_name=entry.step_name,
                    due_at=timed_out,
                    state="timed_out",
                    due=False,
                )
            )
    step_type = _step_type(record)
    kind = None
    if record.status is WorkflowStatus.WAITING_TIMER and step_type == StepType.WAIT.value:
        kind = "wait"
    elif (
        record.status is WorkflowStatus.WAITING_HUMAN and step_type == StepType.HUMAN_APPROVAL.value
    ):
        kind = "approval_timeout"
    elif (
        record.status is WorkflowStatus.WAITING_HUMAN and step_type == StepType.WAIT_FOR_EVENT.value
    ):
        kind = "event_timeout"
    if kind is not None and record.run_at is not None:
        found.append(
            TimerItem(
                kind=kind,
                step_name=record.current_step_name,
                due_at=record.run_at,
                state="pending",
                due=record.run_at <= moment,
            )
        )
    return found
