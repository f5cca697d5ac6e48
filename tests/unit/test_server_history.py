"""The server's reading of timers from a workflow's record and audit log (no I/O)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from ruvon.models import WorkflowStatus
from ruvon.records import AuditEntry, WorkflowRecord
from ruvon.server.history import timers

NOW = datetime(2026, 1, 1, 12, tzinfo=UTC)
STEPS = {"steps": [{"name": "Nap", "type": "WAIT"}, {"name": "Sign", "type": "HUMAN_APPROVAL"}]}


def record(status: WorkflowStatus, step: int, run_at: datetime | None) -> WorkflowRecord:
    return WorkflowRecord(
        id="wf", workflow_type="T", status=status, state={}, definition_snapshot=STEPS,
        current_step=step, run_at=run_at,
    )  # fmt: skip


def test_a_pending_wait_is_due_once_its_time_has_come() -> None:
    later = record(WorkflowStatus.WAITING_TIMER, 0, NOW + timedelta(minutes=5))
    [pending] = timers(later, [], NOW)
    assert (pending.kind, pending.step_name, pending.state, pending.due) == (
        "wait", "Nap", "pending", False
    )  # fmt: skip
    [overdue] = timers(record(WorkflowStatus.WAITING_TIMER, 0, NOW - timedelta(seconds=1)), [], NOW)
    assert overdue.due is True


def test_an_approval_deadline_is_a_timer_but_a_plain_wait_for_a_person_is_not() -> None:
    [deadline] = timers(record(WorkflowStatus.WAITING_HUMAN, 1, NOW), [], NOW)
    assert (deadline.kind, deadline.step_name, deadline.due) == ("approval_timeout", "Sign", True)
    assert timers(record(WorkflowStatus.WAITING_HUMAN, 1, None), [], NOW) == []  # no deadline
    assert timers(record(WorkflowStatus.ACTIVE, 0, NOW), [], NOW) == []  # run_at, not waiting


def test_fired_timers_come_from_the_audit_log_oldest_first() -> None:
    audit = [
        AuditEntry("wf", "TIMER_FIRED", "Nap", details={"run_at": NOW.isoformat()}),
        AuditEntry("wf", "STEP_COMPLETED", "Nap"),
        AuditEntry("wf", "APPROVAL_TIMED_OUT", "Sign", recorded_at=NOW + timedelta(hours=1)),
    ]
    found = timers(record(WorkflowStatus.COMPLETED, 2, None), audit, NOW)
    assert [(t.kind, t.step_name, t.state, t.due_at) for t in found] == [
        ("wait", "Nap", "fired", NOW),
        ("approval_timeout", "Sign", "timed_out", NOW + timedelta(hours=1)),
    ]
