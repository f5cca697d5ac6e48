"""The real ``ruvon`` command in a subprocess, in a scratch project directory.

Each test writes a small workflow (STANDARD + WAIT + HUMAN_IN_LOOP) and its step module into
``tmp_path`` and runs ``python -m ruvon.cli.main`` there, against the default SQLite file
(``ruvon.sqlite3`` in the working directory), exactly as a user would.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ruvon.implementations.persistence.sqlite import SQLitePersistenceProvider
from ruvon.records import AuditEntry, WorkflowRecord

STEPS_MODULE = """
from pathlib import Path

from pydantic import BaseModel


class Approval(BaseModel):
    approved: bool
    comment: str | None = None


def prepare(state, context):
    # One line per real execution: the crash test counts them.
    with Path("prepare_runs.txt").open("a") as marker:
        marker.write(context.workflow_id + "\\n")
    return {"prepared": True}


def record_decision(state, context, approved, comment=None):
    return {"approved": approved, "comment": comment}


def finish(state, context):
    return {"finished": True}
"""

WORKFLOW = """
workflow_type: OrderReview
workflow_version: "1.0"
initial_state_model: builtins.dict
steps:
  - name: Prepare
    type: STANDARD
    function: review_steps.prepare
    automate_next: true
  - name: Cool_Off
    type: WAIT
    wait_seconds: {wait}
    automate_next: true
  - name: Approve
    type: HUMAN_IN_LOOP
    function: review_steps.record_decision
    input_model: review_steps.Approval
    automate_next: true
  - name: Finish
    type: STANDARD
    function: review_steps.finish
"""

# The child sets SIGINT back to Python's handler: a test runner started in the background may
# hand its children an ignored SIGINT, and asyncio only turns Ctrl-C into cancellation when
# the default handler is in place.
_LAUNCH = (
    "import signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
    "from ruvon.cli.main import main; main(sys.argv[1:])"
)
STARTED = re.compile(r"Workflow started: ([0-9a-f-]{36})")


def write_project(directory: Path, *, wait: float) -> Path:
    """The step module and the workflow file; returns the workflow file's path."""
    (directory / "review_steps.py").write_text(textwrap.dedent(STEPS_MODULE))
    workflow = directory / "review.yaml"
    workflow.write_text(WORKFLOW.format(wait=wait))
    return workflow


def cli_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RUVON_", "DATABASE_URL"))}
    env.update({"NO_COLOR": "1", "COLUMNS": "200", "PYTHONUNBUFFERED": "1"})
    return env


def cli_argv(*args: str) -> list[str]:
    return [sys.executable, "-c", _LAUNCH, *args]


def ruvon(cwd: Path, *args: str, timeout: float = 20) -> subprocess.CompletedProcess[str]:
    """Run one ``ruvon`` command to completion."""
    return subprocess.run(
        cli_argv(*args), cwd=cwd, env=cli_env(), capture_output=True, text=True, timeout=timeout
    )


def ruvon_json(cwd: Path, *args: str) -> Any:
    result = ruvon(cwd, *args, "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def started_id(output: str) -> str:
    match = STARTED.search(output)
    assert match, output
    return match.group(1)


def read_db(cwd: Path, query: Callable[[SQLitePersistenceProvider], Any]) -> Any:
    """Look at the database the CLI writes, through the SDK (not through the CLI)."""

    async def run() -> Any:
        provider = SQLitePersistenceProvider(cwd / "ruvon.sqlite3")
        await provider.initialize()
        try:
            return await query(provider)
        finally:
            await provider.close()

    return asyncio.run(run())


def records(cwd: Path) -> list[WorkflowRecord]:
    return read_db(cwd, lambda p: p.list_workflows())  # type: ignore[no-any-return]


def audit(cwd: Path, workflow_id: str) -> list[AuditEntry]:
    return read_db(cwd, lambda p: p.get_audit_log(workflow_id))  # type: ignore[no-any-return]


def wait_for_status(cwd: Path, status: str, *, deadline: float) -> WorkflowRecord:
    """Poll the database until a workflow shows ``status``."""
    while time.monotonic() < deadline:
        if (cwd / "ruvon.sqlite3").exists():
            found = [r for r in records(cwd) if r.status == status]
            if found:
                return found[0]
        time.sleep(0.05)
    raise AssertionError(f"no workflow reached {status} in time")


@pytest.fixture
def project(tmp_path: Path) -> Path:
    write_project(tmp_path, wait=0.2)
    return tmp_path


def run_until_approval(project: Path) -> str:
    result = ruvon(project, "run", "review.yaml", "--input", '{"order_id": 7}')
    assert result.returncode == 0, result.stderr
    return started_id(result.stdout)


def test_run_prints_each_step_and_stops_at_the_human_step(project: Path) -> None:
    result = ruvon(project, "run", "review.yaml", "--input", '{"order_id": 7}')

    assert result.returncode == 0, result.stderr
    out = result.stdout
    workflow_id = started_id(out)
    assert re.search(r"Prepare \(STANDARD\) started", out)
    assert re.search(r"Prepare completed in [\d.]+ (ms|s)", out)
    assert "Cool_Off: waiting until" in out
    assert "Cool_Off completed" in out
    assert f"Waiting for input: workflow {workflow_id} (OrderReview) at step Approve" in out
    assert "approved" in out and "required" in out  # the input model's fields are listed
    expected = f"""ruvon resume {workflow_id} --input '{{"approved": true, "comment": null}}'"""
    assert expected in out
    assert "WAITING_HUMAN" in out
    assert result.stderr == ""


def test_show_json_has_the_state_so_far(project: Path) -> None:
    workflow_id = run_until_approval(project)

    shown = ruvon_json(project, "show", workflow_id)

    assert shown["id"] == workflow_id
    assert shown["workflow_type"] == "OrderReview"
    assert shown["workflow_version"] == "1.0"
    assert shown["status"] == "WAITING_HUMAN"
    assert shown["current_step"] == "Approve"
    assert shown["state"] == {"order_id": 7, "prepared": True}
    events = [entry["event_type"] for entry in shown["history"]]
    assert events[0] == "WORKFLOW_CREATED"
    assert "TIMER_FIRED" in events


def test_resume_with_input_runs_to_completion(project: Path) -> None:
    workflow_id = run_until_approval(project)

    result = ruvon(project, "resume", workflow_id, "--input", '{"approved": true, "comment": "ok"}')

    assert result.returncode == 0, result.stderr
    assert "Finish completed" in result.stdout
    assert "COMPLETED" in result.stdout
    shown = ruvon_json(project, "show", workflow_id)
    assert shown["status"] == "COMPLETED"
    assert shown["state"] == {
        "order_id": 7,
        "prepared": True,
        "approved": True,
        "comment": "ok",
        "finished": True,
    }


def test_resume_with_bad_input_changes_nothing(project: Path) -> None:
    workflow_id = run_until_approval(project)

    result = ruvon(project, "resume", workflow_id, "--input", '{"approved": "perhaps"}')

    assert result.returncode == 2
    assert result.stderr.startswith("error: input for step 'Approve'")
    assert "Traceback" not in result.stderr
    assert ruvon_json(project, "show", workflow_id)["status"] == "WAITING_HUMAN"


def test_list_json_filters_by_status_and_type(project: Path) -> None:
    finished = run_until_approval(project)
    assert ruvon(project, "resume", finished, "--input", '{"approved": false}').returncode == 0
    waiting = run_until_approval(project)

    everything = ruvon_json(project, "list")
    completed = ruvon_json(project, "list", "--status", "COMPLETED")
    still_waiting = ruvon_json(
        project, "list", "--status", "waiting_human", "--type", "OrderReview"
    )
    other_type = ruvon_json(project, "list", "--type", "Nope")

    assert {row["id"] for row in everything} == {finished, waiting}
    assert [row["id"] for row in completed] == [finished]
    assert [row["id"] for row in still_waiting] == [waiting]
    assert still_waiting[0]["current_step"] == "Approve"
    assert other_type == []


def test_unknown_id_exits_4_with_one_line(project: Path) -> None:
    run_until_approval(project)  # the database exists: the id is simply not in it

    for command in ("show", "resume", "logs", "cancel"):
        result = ruvon(project, command, "no-such-id")
        assert result.returncode == 4, (command, result.stderr)
        assert result.stderr.count("\n") == 1, result.stderr
        assert result.stderr.startswith("error: workflow 'no-such-id' not found")


def test_validate_names_the_file_and_line_of_malformed_yaml(tmp_path: Path) -> None:
    bad = tmp_path / "broken.yaml"
    bad.write_text("workflow_type: Broken\nsteps:\n  - name: A\n    type: [STANDARD\n")

    result = ruvon(tmp_path, "validate", "broken.yaml")

    assert result.returncode != 0
    assert re.match(r"error: broken\.yaml:\d+: malformed YAML", result.stderr), result.stderr
    assert "Traceback" not in result.stderr


def test_validate_lists_the_steps_of_a_good_file(project: Path) -> None:
    result = ruvon(project, "validate", "review.yaml")

    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("OK")
    for step in ("Prepare", "Cool_Off", "Approve", "Finish"):
        assert step in result.stdout


@pytest.mark.slow
def test_killed_during_wait_resumes_without_starting_over(tmp_path: Path) -> None:
    """Acceptance: SIGKILL during a 3 s WAIT; `ruvon resume` finishes the timer, not a new one."""
    write_project(tmp_path, wait=3)
    process = subprocess.Popen(
        cli_argv("run", "review.yaml"),
        cwd=tmp_path,
        env=cli_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        waiting = wait_for_status(tmp_path, "WAITING_TIMER", deadline=time.monotonic() + 8)
    finally:
        process.kill()  # SIGKILL: no cleanup, no goodbye
        process.communicate(timeout=5)
    assert process.returncode == -signal.SIGKILL
    assert waiting.current_step_name == "Cool_Off"
    assert waiting.run_at is not None

    started = time.monotonic()
    result = ruvon(tmp_path, "resume", waiting.id)
    elapsed = time.monotonic() - started

    assert result.returncode == 0, result.stderr
    assert "Cool_Off: waiting until" in result.stdout
    assert f"Waiting for input: workflow {waiting.id}" in result.stdout
    assert elapsed < 3.0 + 2.0  # slept what was left of the stored deadline, not a new 3 s
    entries = audit(tmp_path, waiting.id)
    prepared = [e for e in entries if e.event_type == "STEP_COMPLETED" and e.step_name == "Prepare"]
    assert len(prepared) == 1
    fired = [e for e in entries if e.event_type == "TIMER_FIRED"]
    assert [e.details["run_at"] for e in fired] == [waiting.run_at.isoformat()]
    assert (tmp_path / "prepare_runs.txt").read_text().splitlines() == [waiting.id]


@pytest.mark.slow
def test_ctrl_c_during_wait_keeps_the_workflow_and_says_how_to_continue(tmp_path: Path) -> None:
    write_project(tmp_path, wait=3)
    process = subprocess.Popen(
        cli_argv("run", "review.yaml"),
        cwd=tmp_path,
        env=cli_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        waiting = wait_for_status(tmp_path, "WAITING_TIMER", deadline=time.monotonic() + 8)
        time.sleep(0.3)  # let it get into the sleep
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()

    assert process.returncode == 130, err
    assert "Interrupted." in out
    assert "saved as WAITING_TIMER at step Cool_Off" in out
    assert f"ruvon resume {waiting.id}" in out
    assert "Traceback" not in err
    assert [r.status for r in records(tmp_path)] == ["WAITING_TIMER"]
