"""``ruvon signal`` on an embedded SQLite database, and WAIT_FOR_EVENT's load-time checks."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from tests.unit.test_cli import Workspace, assert_one_line_error, invoke

WAITING_STEPS = """
- name: First
  function: {m}.first
  automate_next: true
- name: AwaitPayment
  type: WAIT_FOR_EVENT
  event: paid
  automate_next: true
- name: Done
  function: {m}.first
"""


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Workspace:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    for name in ("RUVON_DATABASE_URL", "DATABASE_URL", "RUVON_DB_URL", "RUVON_DEBUG"):
        monkeypatch.delenv(name, raising=False)
    return Workspace(tmp_path)


def _show(db: str, workflow_id: str) -> dict[str, object]:
    shown = invoke("--db", db, "show", workflow_id, "--json")
    assert shown.exit_code == 0, shown.stderr
    return dict(json.loads(shown.stdout))


def test_signal_resumes_the_waiting_workflow_and_a_duplicate_changes_nothing(
    project: Workspace,
) -> None:
    path = project.workflow("flow.yaml", "Flow", WAITING_STEPS)
    db = str(project.root / "cli.db")
    run = invoke("--db", db, "run", str(path))
    assert run.exit_code == 0, run.stderr
    workflow_id = json.loads(invoke("--db", db, "list", "--json").stdout)[0]["id"]
    assert _show(db, workflow_id)["status"] == "WAITING_HUMAN"
    # The hint the run printed is the command that continues it.
    assert f"signal {workflow_id} paid --data '{{}}'" in run.stdout

    sent = invoke("--db", db, "signal", workflow_id, "paid", "--data", '{"amount": 5}',
                  "--event-id", "pay-1")  # fmt: skip
    assert sent.exit_code == 0, sent.stderr
    assert "Signal paid (event pay-1) delivered" in sent.stdout
    shown = _show(db, workflow_id)
    assert shown["status"] == "COMPLETED"
    assert dict(shown["state"])["amount"] == 5  # type: ignore[call-overload]

    again = invoke("--db", db, "signal", workflow_id, "paid", "--data", '{"amount": 6}',
                   "--event-id", "pay-1")  # fmt: skip
    assert_one_line_error(again, 1, f"workflow '{workflow_id}' is COMPLETED: it waits for no")


def test_signal_refusals_are_one_line_errors(project: Workspace) -> None:
    path = project.workflow("flow.yaml", "Flow", WAITING_STEPS)
    db = str(project.root / "cli.db")
    invoke("--db", db, "run", str(path))
    workflow_id = json.loads(invoke("--db", db, "list", "--json").stdout)[0]["id"]

    unknown_name = invoke("--db", db, "signal", workflow_id, "shipped")
    unknown_workflow = invoke("--db", db, "signal", "no-such-id", "paid")
    bad_json = invoke("--db", db, "signal", workflow_id, "paid", "--data", "{nope")

    assert_one_line_error(unknown_name, 1, f"workflow '{workflow_id}' (Flow) has no WAIT_FOR_")
    assert_one_line_error(unknown_workflow, 4, "workflow 'no-such-id' not found")
    assert bad_json.exit_code == 2 and "not valid JSON" in bad_json.stderr
    assert _show(db, workflow_id)["status"] == "WAITING_HUMAN"


def test_wait_for_event_keys_are_checked_at_load_time(project: Workspace) -> None:
    path = project.workflow(
        "flow.yaml",
        "Flow",
        """
        - name: Wait
          type: WAIT_FOR_EVENT
          on_timeout: auto_approve
          timeout_data: {{a: 1}}
        - name: Sleep
          type: WAIT
          wait_seconds: 1
          event: x
        """,
    )
    result = invoke("validate", str(path))
    assert result.exit_code == 1
    assert "flow.yaml:4, step 'Wait', field 'event': a WAIT_FOR_EVENT step needs 'event'" in (
        result.stderr
    )
    assert (
        "flow.yaml:6, step 'Wait', field 'on_timeout': a WAIT_FOR_EVENT step's on_timeout is"
        in (result.stderr)
    )
    assert "flow.yaml:7, step 'Wait', field 'timeout_data'" in result.stderr
    assert "flow.yaml:11, step 'Sleep', field 'event': only WAIT_FOR_EVENT steps" in result.stderr
