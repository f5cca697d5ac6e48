"""The UI's pure parts: the form generated from an input model, and the timeline's layout."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from ruvon.providers.runs import RunKind, RunStatus, StepRunRecord
from ruvon.records import AuditEntry
from ruvon.server.ui.forms import fields_of, read_input, read_raw_input, validation_errors
from ruvon.server.ui.views import branch_runs, timeline
from tests.server.ui_workflows.steps import ReviewInput

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def test_each_field_kind_of_the_input_model_gets_its_input() -> None:
    fields = {field.name: field for field in fields_of(ReviewInput)}
    assert [(f.kind, f.required) for f in fields.values()] == [
        ("text", True),
        ("integer", True),
        ("select", False),
        ("checkbox", False),
        ("text", False),
    ]
    assert fields["priority"].choices == ("low", "high") and fields["priority"].default == "low"
    assert fields["amount"].description == "Approved amount, in euros"
    assert fields["note"].label == "Note"


def test_form_values_become_typed_input_and_bad_ones_name_their_field() -> None:
    fields = fields_of(ReviewInput)
    good = read_input(
        fields, {"input.reviewer": " ann ", "input.amount": "7", "input.urgent": "true"}
    )
    assert good.errors == {} and good.data == {"reviewer": "ann", "amount": 7, "urgent": True}
    assert validation_errors(ReviewInput, good.data) == {}
    missing = read_input(fields, {"input.amount": "x"})
    assert missing.errors == {"reviewer": "a value is required"}
    assert missing.data == {"amount": "x", "urgent": False}  # as typed, for the model to judge
    assert (
        "valid integer"
        in validation_errors(ReviewInput, {"reviewer": "ann", "amount": "x"})["amount"]
    )
    assert read_raw_input({"input_json": "[1]"}).errors == {
        "input_json": "must be a JSON object ({...})"
    }
    assert read_raw_input({"input_json": '{"a": 1}'}).data == {"a": 1}


def _entry(event: str, step: str | None, at: float, **details: object) -> AuditEntry:
    new = "WAITING_HUMAN" if event == "STEP_SUSPENDED" else None
    return AuditEntry("w", event, step, None, new, dict(details), T0 + timedelta(seconds=at))


def test_the_audit_timeline_shows_attempts_and_the_wait_for_a_person() -> None:
    audit = [
        _entry("WORKFLOW_CREATED", None, 0.0),
        _entry("STEP_RETRY", "Charge", 1.0, error="timeout", attempt=1),
        _entry("STEP_COMPLETED", "Charge", 2.0, duration_ms=500.0),
        _entry("STEP_SUSPENDED", "Review", 2.0),
        _entry("STEP_COMPLETED", "Review", 10.0, duration_ms=1000.0),
    ]
    found = timeline([], audit, T0 + timedelta(seconds=20))
    assert found.source == "audit log" and found.seconds == 10.0
    rows = [(b.label, b.attempt, b.status, b.seconds) for b in found.bars]
    assert rows == [
        ("Charge", 1, "FAILED", 1.0),
        ("Charge", 2, "DONE", 0.5),
        ("Review (waiting)", 0, "WAITING", 7.0),
        ("Review", 1, "DONE", 1.0),
    ]
    for bar in found.bars:
        assert bar.offset_pct >= 0 and bar.offset_pct + bar.width_pct <= 100.0001
    assert found.bars[2].offset_pct == 20.0 and found.bars[2].width_pct == 70.0


def test_step_runs_lay_out_by_claim_and_finish_and_branches_are_listed() -> None:
    def run(
        number: int, kind: RunKind, branch: str, start: float, end: float | None
    ) -> StepRunRecord:
        return StepRunRecord(
            run_id=number, workflow_id="w", kind=kind, step_name="Fan", branch=branch,
            run_number=1, status=RunStatus.DONE if end else RunStatus.RUNNING, attempt=1,
            queue="q", worker=f"worker-{number}", created_at=T0,
            started_at=T0 + timedelta(seconds=start),
            finished_at=T0 + timedelta(seconds=end) if end else None,
        )  # fmt: skip

    runs = [run(1, RunKind.BRANCH, "0", 0, 2), run(2, RunKind.BRANCH, "1", 1, None)]
    found = timeline(runs, [], T0 + timedelta(seconds=4))
    assert found.source == "step runs" and found.seconds == 4.0
    assert [(b.worker, b.offset_pct, b.width_pct) for b in found.bars] == [
        ("worker-1", 0.0, 50.0),
        ("worker-2", 25.0, 75.0),  # still running: up to now
    ]
    assert [r.branch for r in branch_runs(runs)] == ["0", "1"]
