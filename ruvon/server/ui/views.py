"""What the workflow page shows, worked out from the stored record and its history.

The step graph is the definition snapshot's steps with where the workflow stands; the
timeline is the step runs (on a cluster: attempts, workers, queues) or, where a store keeps
none (embedded SQLite), the audit log's completed and retried steps with their durations.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from ruvon.models import WorkflowStatus
from ruvon.providers.runs import RunKind, StepRunRecord
from ruvon.records import AuditEntry, WorkflowRecord

RETRYABLE = frozenset(
    {
        WorkflowStatus.FAILED,
        WorkflowStatus.FAILED_WORKER_CRASH,
        WorkflowStatus.FAILED_CHILD_WORKFLOW,
    }
)


@dataclass
class StepView:
    """One step of the definition and how far this workflow got with it."""

    index: int
    name: str
    type: str
    progress: str  # done | current | failed | waiting | pending | compensated
    description: str | None = None
    changed: dict[str, Any] | None = None  # what the step's last completion wrote to state
    duration_ms: float | None = None


@dataclass
class Bar:
    """One bar of the timeline: a step run (or attempt) from ``start`` to ``end``."""

    label: str
    step: str
    branch: str
    attempt: int
    status: str
    worker: str | None
    queue: str | None
    start: datetime
    end: datetime | None
    error: str | None = None
    offset_pct: float = 0.0
    width_pct: float = 100.0

    @property
    def seconds(self) -> float | None:
        return (self.end - self.start).total_seconds() if self.end is not None else None


@dataclass
class Timeline:
    """The bars, laid out on one time axis from ``start`` to ``end``."""

    bars: list[Bar] = field(default_factory=list)
    source: str = "none"  # step runs | audit log | none
    start: datetime | None = None
    end: datetime | None = None

    @property
    def seconds(self) -> float:
        if self.start is None or self.end is None:
            return 0.0
        return (self.end - self.start).total_seconds()


def step_views(
    record: WorkflowRecord, audit: list[AuditEntry], compensated: set[str] | None = None
) -> list[StepView]:
    """The definition's steps, each marked done / current / failed / waiting / pending, or
    compensated (a saga undid it)."""
    completed = set(record.completed_steps)
    undone = compensated or set()
    last_done: dict[str, AuditEntry] = {}
    for entry in audit:
        if entry.event_type == "STEP_COMPLETED" and entry.step_name:
            last_done[entry.step_name] = entry
    views: list[StepView] = []
    for index, spec in enumerate(record.definition_snapshot.get("steps", [])):
        name = str(spec.get("name", f"step {index + 1}"))
        done = last_done.get(name)
        views.append(
            StepView(
                index=index,
                name=name,
                type=str(spec.get("type") or "STANDARD"),
                progress="compensated"
                if name in undone
                else _progress(record, index, name in completed or done is not None),
                description=spec.get("description"),
                changed=_result(done),
                duration_ms=_duration_ms(done),
            )
        )
    return views


def _progress(record: WorkflowRecord, index: int, done: bool) -> str:
    status = record.status
    if index == record.current_step and status is not WorkflowStatus.COMPLETED:
        if status.is_failed or status is WorkflowStatus.CANCELLED:
            return "failed"
        if status in (WorkflowStatus.WAITING_HUMAN, WorkflowStatus.WAITING_TIMER):
            return "waiting"
        return "current"
    if done or index < record.current_step or status is WorkflowStatus.COMPLETED:
        return "done"
    return "pending"


def _result(entry: AuditEntry | None) -> dict[str, Any] | None:
    if entry is None:
        return None
    result = entry.details.get("result")
    return result if isinstance(result, dict) else None


def _duration_ms(entry: AuditEntry | None) -> float | None:
    if entry is None:
        return None
    value = entry.details.get("duration_ms")
    return float(value) if isinstance(value, int | float) else None


def timeline(runs: list[StepRunRecord], audit: list[AuditEntry], now: datetime) -> Timeline:
    """The Gantt view: step runs when the store keeps them, else the audit log's steps."""
    bars = [_run_bar(run, now) for run in runs] if runs else _audit_bars(audit)
    found = Timeline(bars=bars, source="step runs" if runs else "audit log" if bars else "none")
    if not bars:
        return found
    start = min(bar.start for bar in bars)
    end = max(bar.end or now for bar in bars)
    found.start, found.end = start, end
    span = max((end - start).total_seconds(), 1e-6)
    for bar in bars:
        bar.offset_pct = round(100 * (bar.start - start).total_seconds() / span, 2)
        length = ((bar.end or now) - bar.start).total_seconds()
        bar.width_pct = max(round(100 * length / span, 2), 0.6)  # a visible sliver at least
        bar.offset_pct = min(bar.offset_pct, 100 - bar.width_pct)
    return found


def _run_bar(run: StepRunRecord, now: datetime) -> Bar:
    start = run.started_at or run.run_at or run.created_at
    label = run.step_name if run.kind is not RunKind.BRANCH else f"{run.step_name} {run.branch}"
    return Bar(
        label=label,
        step=run.step_name,
        branch=run.branch,
        attempt=run.attempt,
        status=str(run.status) if run.error is None else "FAILED",
        worker=run.worker,
        queue=run.queue,
        start=min(start, now),
        end=run.finished_at,
        error=run.error,
    )


def _audit_bars(audit: list[AuditEntry]) -> list[Bar]:
    """Bars from STEP_COMPLETED (duration) and STEP_RETRY / STEP_FAILED (since the last event)."""
    bars: list[Bar] = []
    attempts: dict[str, int] = {}
    suspended: dict[str, AuditEntry] = {}
    previous: datetime | None = None
    for entry in audit:
        step = entry.step_name
        if step and entry.event_type == "STEP_SUSPENDED":
            suspended[step] = entry
        if step and entry.event_type in ("STEP_COMPLETED", "STEP_RETRY", "STEP_FAILED"):
            waited = suspended.pop(step, None)
            attempts[step] = attempts.get(step, 0) + 1
            end = entry.recorded_at
            duration = _duration_ms(entry)
            if duration is not None:
                start = end - timedelta(milliseconds=duration)
            else:
                start = previous or end
            ok = entry.event_type == "STEP_COMPLETED"
            if waited is not None and waited.recorded_at < start:
                bars.append(_waiting_bar(step, waited, start))
            bars.append(
                Bar(
                    label=step,
                    step=step,
                    branch="",
                    attempt=attempts[step],
                    status="DONE" if ok else "FAILED",
                    worker=None,
                    queue=None,
                    start=start,
                    end=end,
                    error=None if ok else str(entry.details.get("error") or ""),
                )
            )
            if ok:
                attempts.pop(step, None)
        previous = entry.recorded_at
    return bars


def _waiting_bar(step: str, suspended: AuditEntry, until: datetime) -> Bar:
    """The time a step spent suspended: waiting for a person or a timer, or queued."""
    waiting = suspended.new_status in ("WAITING_HUMAN", "WAITING_TIMER")
    return Bar(
        label=f"{step} ({'waiting' if waiting else 'queued'})",
        step=step,
        branch="",
        attempt=0,
        status="WAITING" if waiting else "QUEUED",
        worker=None,
        queue=None,
        start=suspended.recorded_at,
        end=until,
    )


def branch_runs(runs: list[StepRunRecord]) -> list[StepRunRecord]:
    """The PARALLEL branches' runs (a cluster's store keeps one per branch)."""
    return [run for run in runs if run.kind is RunKind.BRANCH]


def parallel_summaries(audit: list[AuditEntry]) -> list[AuditEntry]:
    """The audit's PARALLEL merges (branches, succeeded, failed), where no runs are kept."""
    return [entry for entry in audit if entry.event_type == "PARALLEL_TASKS_MERGED"]


def error_details(audit: list[AuditEntry]) -> list[AuditEntry]:
    """The audit entries that carry a traceback (failed attempts: retries and failures),
    oldest first; the workflow's own error is shown above them."""
    return [entry for entry in audit if "traceback" in entry.details]
