"""The ``ruvon`` command in-process (click's CliRunner): arguments, output, exit codes.

Workflows here use ``--db memory://`` so nothing outlives one invocation; the subprocess tests
in ``tests/integration/test_cli_process.py`` cover runs that span several commands.
"""

from __future__ import annotations

import io
import json
import logging
import re
import sys
import textwrap
import uuid
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from pydantic import BaseModel
from rich.console import Console

from ruvon import __version__
from ruvon.cli import commands_inspect
from ruvon.cli.failures import exit_code_for
from ruvon.cli.live import LiveObserver
from ruvon.cli.logs_to_terminal import engine_logs_to_terminal
from ruvon.cli.main import cli
from ruvon.cli.render import Output
from ruvon.cli.runtime import CliConfig, normalize_db_url
from ruvon.cli.waiting import example_input, model_fields, resume_command
from ruvon.errors import (
    ConcurrencyConflict,
    ConfigurationError,
    DefinitionError,
    InputValidationError,
    InvalidWorkflowOperation,
    PersistenceError,
    StepFunctionError,
    WorkflowNotFound,
    WorkflowTypeNotFound,
)
from ruvon.providers.observer import (
    CompensationRan,
    StatusChanged,
    StepCompleted,
    StepFailed,
    StepStarted,
    WorkflowStarted,
)

STEPS = """
def first(state, context):
    return {"first": True}


def explode(state, context):
    raise ValueError("kaboom [bold]not markup[/bold]")
"""


class Workspace:
    """A scratch project: a uniquely named step module and workflow files next to it."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.module = f"cli_steps_{uuid.uuid4().hex[:10]}"
        (root / f"{self.module}.py").write_text(textwrap.dedent(STEPS))

    def workflow(self, name: str, workflow_type: str, steps: str) -> Path:
        path = self.root / name
        body = textwrap.indent(textwrap.dedent(steps).format(m=self.module), "  ")
        path.write_text(f"workflow_type: {workflow_type}\nsteps:\n{body}")
        return path


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Workspace:
    monkeypatch.chdir(tmp_path)
    # The CLI puts project directories on sys.path; keep that out of other tests.
    monkeypatch.setattr(sys, "path", list(sys.path))
    for name in ("RUVON_DATABASE_URL", "DATABASE_URL", "RUVON_DB_URL", "RUVON_DEBUG"):
        monkeypatch.delenv(name, raising=False)
    return Workspace(tmp_path)


def invoke(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), env={"NO_COLOR": "1", **(env or {})})


def assert_one_line_error(result: Result, code: int, starts: str) -> None:
    assert result.exit_code == code, (result.stdout, result.stderr)
    assert result.stderr.startswith(f"error: {starts}"), result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    assert "Traceback" not in result.stderr


OK_STEPS = """
- name: First
  function: {m}.first
"""

FAILING_STEPS = """
- name: First
  function: {m}.first
  automate_next: true
- name: Explode
  function: {m}.explode
"""


# ---------------------------------------------------------------------- global options
def test_version() -> None:
    result = invoke("--version")
    assert result.exit_code == 0
    assert result.stdout.strip() == f"ruvon, version {__version__}"


def test_help_lists_every_command() -> None:
    result = invoke("--help")
    assert result.exit_code == 0
    for command in ("run", "start", "resume", "retry", "cancel", "list", "show", "logs"):
        assert command in result.stdout
    assert "--db" in result.stdout


def test_db_option_overrides_environment() -> None:
    env = {"RUVON_DATABASE_URL": "sqlite:///env.db"}
    assert CliConfig().settings(env).database_url == "sqlite:///env.db"
    assert CliConfig("memory://").settings(env).database_url == "memory://"
    assert CliConfig().settings({"RUVON_DB_URL": "sqlite:///x.db"}).database_url == (
        "sqlite:///x.db"
    )
    assert CliConfig().settings({}).database_url == "sqlite:///ruvon.sqlite3"


def test_a_bare_db_path_means_sqlite() -> None:
    assert normalize_db_url("data/app.db") == "sqlite:///data/app.db"
    assert normalize_db_url("/abs/app.db") == "sqlite:////abs/app.db"
    assert normalize_db_url("memory://") == "memory://"


def test_follow_up_commands_repeat_the_db_option() -> None:
    assert CliConfig("my db.sqlite").command_line("resume", "abc") == (
        "ruvon --db 'my db.sqlite' resume abc"
    )


# ---------------------------------------------------------------------- JSON input
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-d", '{"amount": 1,'], "--input is not valid JSON: Expecting"),
        (["--data", "[1, 2]"], "--input must be a JSON object"),
        (["--input-file", "nope.json"], "--input-file nope.json: file not found"),
        (["--input", "{}", "--input-file", "x.json"], "give either --input or --input-file"),
    ],
)
def test_bad_input_is_a_one_line_usage_error(
    workspace: Workspace, args: list[str], message: str
) -> None:
    path = workspace.workflow("flow.yaml", "Flow", OK_STEPS)
    result = invoke("--db", "memory://", "run", str(path), *args)
    assert_one_line_error(result, 2, message)


def test_input_file_is_the_initial_data(workspace: Workspace) -> None:
    path = workspace.workflow("flow.yaml", "Flow", OK_STEPS)
    (workspace.root / "data.json").write_text('{"customer": "ada"}')

    result = invoke("--db", "memory://", "run", str(path), "--input-file", "data.json")

    assert result.exit_code == 0, result.stderr
    assert '"customer": "ada"' in result.stdout


# ---------------------------------------------------------------------- run / start
def test_run_prints_steps_final_status_and_state(workspace: Workspace) -> None:
    path = workspace.workflow("flow.yaml", "Flow", OK_STEPS)

    result = invoke("--db", "memory://", "run", str(path), "-d", '{"n": 1}')

    assert result.exit_code == 0, result.stderr
    assert "Workflow started:" in result.stdout
    assert "First (STANDARD) started" in result.stdout
    assert "First completed in" in result.stdout
    assert "COMPLETED" in result.stdout
    state = json.loads(result.stdout[result.stdout.index("Final state:") + 12 :])
    assert state == {"n": 1, "first": True}


def test_run_exits_1_when_the_workflow_fails(workspace: Workspace) -> None:
    path = workspace.workflow("flow.yaml", "Flow", FAILING_STEPS)

    result = invoke("--db", "memory://", "run", str(path))

    assert result.exit_code == 1
    assert "FAILED" in result.stdout
    # User text is printed as typed, never interpreted as console markup.
    assert "ValueError: kaboom [bold]not markup[/bold]" in result.stdout
    assert "ruvon --db memory:// retry" in result.stdout
    assert result.stderr == ""


def test_run_refuses_a_child_type_nobody_registered(workspace: Workspace) -> None:
    steps = """
    - name: Spawn
      type: SUB_WORKFLOW
      target_workflow_type: Missing
    """
    path = workspace.workflow("parent.yaml", "Parent", steps)

    result = invoke("--db", "memory://", "run", str(path))

    assert_one_line_error(result, 2, f"{path}, step 'Spawn', field 'target_workflow_type'")


def test_run_resolves_child_types_from_the_sibling_registry(workspace: Workspace) -> None:
    parent = workspace.workflow(
        "parent.yaml",
        "Parent",
        """
        - name: Spawn
          type: SUB_WORKFLOW
          target_workflow_type: Child
        """,
    )
    workspace.workflow("child.yaml", "Child", OK_STEPS)
    (workspace.root / "workflow_registry.yaml").write_text(
        "workflows:\n  - type: Child\n    config_file: child.yaml\n"
    )

    result = invoke("--db", "memory://", "run", str(parent))

    assert result.exit_code == 0, result.stderr
    assert "child workflow started" in result.stdout
    assert "COMPLETED" in result.stdout


def test_run_given_a_registry_says_to_use_start(workspace: Workspace) -> None:
    registry = workspace.root / "workflow_registry.yaml"
    registry.write_text("workflows: []\n")
    result = invoke("--db", "memory://", "run", str(registry))
    assert_one_line_error(result, 2, f"{registry}: is a workflow registry")


def test_run_missing_file(workspace: Workspace) -> None:
    result = invoke("--db", "memory://", "run", "missing.yaml")
    assert_one_line_error(result, 2, "missing.yaml: file not found")


def test_start_without_a_registry(workspace: Workspace) -> None:
    result = invoke("--db", "memory://", "start", "Flow")
    assert_one_line_error(result, 2, "workflow registry config/workflow_registry.yaml not found")


def test_start_runs_a_registered_type(workspace: Workspace) -> None:
    config = workspace.root / "config"
    config.mkdir()
    workspace.workflow("config/flow.yaml", "Flow", OK_STEPS)
    (config / "workflow_registry.yaml").write_text(
        "workflows:\n  - type: Flow\n    config_file: flow.yaml\n"
    )

    ok = invoke("--db", "memory://", "start", "Flow", "--data", '{"n": 2}')
    unknown = invoke("--db", "memory://", "start", "Nope", "--config-dir", "config")

    assert ok.exit_code == 0, ok.stderr
    assert '"first": true' in ok.stdout
    assert_one_line_error(unknown, 2, "unknown workflow type 'Nope' (known: Flow)")


def test_start_takes_a_version_and_list_filters_by_it(workspace: Workspace) -> None:
    config = workspace.root / "config"
    config.mkdir()
    for version in ("1.0.0", "2.0.0"):
        path = workspace.workflow(f"config/flow_{version[0]}.yaml", "Flow", OK_STEPS)
        path.write_text(f"workflow_version: '{version}'\n" + path.read_text())
    (config / "workflow_registry.yaml").write_text(
        "workflows:\n"
        "  - {type: Flow, config_file: flow_1.yaml}\n"
        "  - {type: Flow, config_file: flow_2.yaml}\n"
    )
    db = str(workspace.root / "cli.db")

    latest = invoke("--db", db, "start", "Flow")
    pinned = invoke("--db", db, "start", "Flow", "--version", "1.0.0")
    unknown = invoke("--db", db, "start", "Flow", "--version", "9")
    on_v1 = json.loads(invoke("--db", db, "list", "--version", "1.0.0", "--json").stdout)
    everything = json.loads(invoke("--db", db, "list", "--json").stdout)
    table = invoke("--db", db, "list", "--version", "1.0.0", env={"COLUMNS": "120"})

    assert latest.exit_code == 0 and pinned.exit_code == 0, (latest.stderr, pinned.stderr)
    assert_one_line_error(
        unknown, 2, "workflow type 'Flow' has no version '9' (known: 1.0.0, 2.0.0)"
    )
    assert [row["workflow_version"] for row in on_v1] == ["1.0.0"]
    assert sorted(row["workflow_version"] for row in everything) == ["1.0.0", "2.0.0"]
    assert "Flow v1.0.0" in table.stdout and "v2.0.0" not in table.stdout


def test_start_takes_a_priority_and_show_and_list_report_it(workspace: Workspace) -> None:
    config = workspace.root / "config"
    config.mkdir()
    path = workspace.workflow("config/flow.yaml", "Flow", OK_STEPS)
    path.write_text("priority: 2\n" + path.read_text())
    (config / "workflow_registry.yaml").write_text(
        "workflows:\n  - {type: Flow, config_file: flow.yaml}\n"
    )
    db = str(workspace.root / "cli.db")

    default = invoke("--db", db, "start", "Flow")
    urgent = invoke("--db", db, "start", "Flow", "--priority", "8")
    refused = invoke("--db", db, "start", "Flow", "--priority", "10")
    listed = json.loads(invoke("--db", db, "list", "--json").stdout)

    assert default.exit_code == 0 and urgent.exit_code == 0, (default.stderr, urgent.stderr)
    assert refused.exit_code == 2 and "--priority" in refused.stderr
    assert "10 is not in the range 0<=x<=9" in refused.stderr
    assert sorted(row["priority"] for row in listed) == [2, 8]  # the file's, the start's
    [urgent_row] = [row for row in listed if row["priority"] == 8]
    shown = invoke("--db", db, "show", urgent_row["id"], env={"COLUMNS": "120"})
    assert shown.exit_code == 0 and "Priority" in shown.stdout and " 8" in shown.stdout


# ---------------------------------------------------------------------- stored workflows
def test_read_commands_do_not_create_a_database(workspace: Workspace) -> None:
    listed = invoke("list")
    listed_json = invoke("list", "--json")
    shown = invoke("show", "abc")

    assert listed.exit_code == 0 and "No workflows found" in listed.stdout
    assert json.loads(listed_json.stdout) == []
    assert_one_line_error(shown, 4, "workflow 'abc' not found: database ruvon.sqlite3 does not")
    assert not (workspace.root / "ruvon.sqlite3").exists()


def test_resume_and_retry_refuse_what_they_cannot_do(workspace: Workspace) -> None:
    path = workspace.workflow("flow.yaml", "Flow", OK_STEPS)
    db = str(workspace.root / "cli.db")
    run = invoke("--db", db, "run", str(path))
    workflow_id = json.loads(invoke("--db", db, "list", "--json").stdout)[0]["id"]

    resumed = invoke("--db", db, "resume", workflow_id)
    retried = invoke("--db", db, "retry", workflow_id)

    assert run.exit_code == 0, run.stderr
    assert_one_line_error(resumed, 1, f"workflow '{workflow_id}' is COMPLETED: nothing to resume")
    assert_one_line_error(retried, 1, f"workflow '{workflow_id}' is COMPLETED; only FAILED")


def test_bad_database_url_is_a_usage_error(workspace: Workspace) -> None:
    result = invoke("--db", "mysql://nowhere/x", "list")
    assert_one_line_error(result, 2, "unsupported database URL scheme 'mysql'")


def test_unreachable_postgres_is_a_database_error(workspace: Workspace) -> None:
    result = invoke("--db", "postgresql://ruvon:s3cret@nowhere.invalid/x", "list")
    assert_one_line_error(result, 3, "cannot connect to PostgreSQL at nowhere.invalid")
    assert "s3cret" not in result.stderr


def test_database_failure_exits_3(workspace: Workspace) -> None:
    path = workspace.workflow("flow.yaml", "Flow", OK_STEPS)
    result = invoke("--db", str(workspace.root / "no" / "such" / "dir.db"), "run", str(path))
    assert_one_line_error(result, 3, "cannot open SQLite database")


def test_fire_and_forget_children_left_open_are_listed(workspace: Workspace) -> None:
    parent = workspace.workflow(
        "parent.yaml",
        "Parent",
        """
        - name: Spawn
          type: FIRE_AND_FORGET
          target_workflow_type: Child
        """,
    )
    workspace.workflow("child.yaml", "Child", "- name: Ask\n  type: HUMAN_IN_LOOP\n")
    (workspace.root / "workflow_registry.yaml").write_text(
        "workflows:\n  - type: Child\n    config_file: child.yaml\n"
    )

    result = invoke("--db", "memory://", "run", str(parent))

    assert result.exit_code == 0, result.stderr
    assert "Other workflows from this run that are not finished:" in result.stdout
    assert re.search(
        r"[0-9a-f-]{36} \(Child\) WAITING_HUMAN: ruvon --db memory:// resume", result.stdout
    )


def test_logs_filters_by_step_and_level(workspace: Workspace) -> None:
    path = workspace.workflow("flow.yaml", "Flow", FAILING_STEPS)
    db = str(workspace.root / "cli.db")
    assert invoke("--db", db, "run", str(path)).exit_code == 1
    workflow_id = json.loads(invoke("--db", db, "list", "--json").stdout)[0]["id"]

    everything = json.loads(invoke("--db", db, "logs", workflow_id, "--json").stdout)
    explode = json.loads(
        invoke("--db", db, "logs", workflow_id, "--step", "Explode", "--json").stdout
    )
    first = json.loads(invoke("--db", db, "logs", workflow_id, "--step", "First", "--json").stdout)
    table = invoke("--db", db, "logs", workflow_id, "--level", "error")

    assert everything["audit"][0]["event_type"] == "WORKFLOW_CREATED"
    assert {e["step_name"] for e in explode["audit"]} == {"Explode"}
    assert [line["level"] for line in explode["logs"]] == ["ERROR"]
    assert first["logs"] == []
    assert table.exit_code == 0
    assert "kaboom" in table.stdout and "Audit trail" in table.stdout


def test_engine_log_records_become_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    logger = logging.getLogger("ruvon.cli_test")
    root = logging.getLogger("ruvon")
    before = (root.level, root.propagate, list(root.handlers))

    with engine_logs_to_terminal():
        try:
            raise ValueError("bad observer")
        except ValueError:
            logger.exception("observer failed")
        logger.info("not shown without RUVON_DEBUG")

    assert capsys.readouterr().err == "error: observer failed: ValueError: bad observer\n"
    assert (root.level, root.propagate, list(root.handlers)) == before


# ---------------------------------------------------------------------- validate
def test_validate_prints_ok_and_the_steps(workspace: Workspace) -> None:
    path = workspace.workflow("flow.yaml", "Flow", FAILING_STEPS)

    text = invoke("validate", str(path))
    data = invoke("validate", str(path), "--json")

    assert text.exit_code == 0 and text.stdout.startswith("OK")
    assert "Explode" in text.stdout
    assert json.loads(data.stdout)["workflows"][0]["steps"] == [
        {"name": "First", "type": "STANDARD"},
        {"name": "Explode", "type": "STANDARD"},
    ]


def test_validate_a_registry(workspace: Workspace) -> None:
    workspace.workflow("flow.yaml", "Flow", OK_STEPS)
    registry = workspace.root / "workflow_registry.yaml"
    registry.write_text("workflows:\n  - type: Flow\n    config_file: flow.yaml\n")

    result = invoke("validate", str(registry), "--json")

    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["kind"] == "registry"
    assert [w["workflow_type"] for w in data["workflows"]] == ["Flow"]


def test_validate_reports_the_definition_error_with_its_line(workspace: Workspace) -> None:
    steps = """
    - name: First
      function: {m}.does_not_exist
    """
    path = workspace.workflow("flow.yaml", "Flow", steps)

    text = invoke("validate", str(path))
    data = invoke("validate", str(path), "--json")

    assert_one_line_error(text, 1, f"{path}:5, step 'First', field 'function': cannot import")
    assert data.exit_code == 1
    assert json.loads(data.stdout)["line"] == 5


THREE_BAD_STEPS = """
- name: Charge
  function: {m}.does_not_exist
- name: Route
  type: DECISION
  routes:
    - condition: "state.amount >"
      target: Ship
    - default: Nowhere
- name: Ship
  type: HUMAN_IN_LOOP
  input_model: {m}.NoSuchModel
"""


def test_validate_reports_every_error_of_a_file(workspace: Workspace) -> None:
    """Not just the first: each problem with its file, line, step and field, exit 1."""
    path = workspace.workflow("flow.yaml", "Flow", THREE_BAD_STEPS)

    text = invoke("validate", str(path))
    data = invoke("validate", str(path), "--json")

    assert text.exit_code == 1, text.stdout
    assert text.stdout == ""
    lines = text.stderr.splitlines()
    expected = [
        f"error: {path}:5, step 'Charge', field 'function': cannot import",
        f"error: {path}:9, step 'Route', field 'routes[0].condition': invalid expression",
        f"error: {path}:11, step 'Route', field 'routes[1].default': route #2 targets 'Nowhere'",
        f"error: {path}:14, step 'Ship', field 'input_model': cannot import input model",
    ]
    assert len(lines) == len(expected) + 1, text.stderr
    for line, start in zip(lines, expected, strict=False):
        assert line.startswith(start), (line, start)
    assert lines[-1] == "4 problems"
    assert "Traceback" not in text.stderr

    assert data.exit_code == 1
    report = json.loads(data.stdout)
    assert report["ok"] is False
    assert report["line"] == 5  # the first problem, as before
    assert [(e["line"], e["step"], e["field"]) for e in report["errors"]] == [
        (5, "Charge", "function"),
        (9, "Route", "routes[0].condition"),
        (11, "Route", "routes[1].default"),
        (14, "Ship", "input_model"),
    ]
    assert "more problem" not in "".join(e["error"] for e in report["errors"])
    assert all(e["file"] == str(path) for e in report["errors"])


def test_validate_reports_every_schema_error_of_a_file(workspace: Workspace) -> None:
    steps = """
    - name: First
      functoin: {m}.first
    - name: Second
      type: NOT_A_TYPE
    - name: Third
      function: {m}.first
      automate_next: maybe
    """
    path = workspace.workflow("flow.yaml", "Flow", steps)
    data = invoke("validate", str(path), "--json")
    assert data.exit_code == 1
    errors = json.loads(data.stdout)["errors"]
    assert [(e["line"], e["step"], e["field"]) for e in errors] == [
        (5, "First", "functoin"),
        (7, "Second", "type"),
        (10, "Third", "automate_next"),
    ]
    assert "unknown key 'functoin'" in errors[0]["message"]


def test_validate_a_registry_reports_the_errors_of_every_file(workspace: Workspace) -> None:
    first = workspace.workflow("first.yaml", "First", THREE_BAD_STEPS)
    second = workspace.workflow("second.yaml", "Second", "- name: Only\n  function: {m}.nope\n")
    registry = workspace.root / "workflow_registry.yaml"
    registry.write_text(
        "workflows:\n"
        "  - {type: First, config_file: first.yaml}\n"
        "  - {type: Second, config_file: second.yaml}\n"
    )
    data = invoke("validate", str(registry), "--json")
    assert data.exit_code == 1
    errors = json.loads(data.stdout)["errors"]
    assert [(Path(e["file"]).name, e["line"]) for e in errors] == [
        (first.name, 5),
        (first.name, 9),
        (first.name, 11),
        (first.name, 14),
        (second.name, 4),
    ]
    assert Path(errors[-1]["file"]) == second


# ---------------------------------------------------------------------- unexpected failures
def test_unexpected_exception_is_one_line_and_a_hint(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(commands_inspect, "open_engine", broken)

    quiet = invoke("list")
    loud = invoke("list", env={"RUVON_DEBUG": "1"})

    assert quiet.exit_code == 1
    assert quiet.stderr.splitlines() == [
        "error: unexpected RuntimeError: disk on fire",
        "hint: set RUVON_DEBUG=1 to see the traceback",
    ]
    assert loud.exit_code == 1
    assert "Traceback (most recent call last)" in loud.stderr


def test_ctrl_c_outside_a_workflow_exits_130(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    def interrupted(*args: Any, **kwargs: Any) -> Any:
        raise KeyboardInterrupt

    monkeypatch.setattr(commands_inspect, "open_engine", interrupted)
    result = invoke("list")
    assert result.exit_code == 130
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (WorkflowNotFound("x"), 4),
        (PersistenceError("db down"), 3),
        (ConcurrencyConflict("x", 3), 3),
        (DefinitionError("bad"), 2),
        (InputValidationError("bad"), 2),
        (ConfigurationError("bad"), 2),
        (WorkflowTypeNotFound("bad"), 2),
        (InvalidWorkflowOperation("no"), 1),
        (StepFunctionError("boom"), 1),
        (RuntimeError("?"), 1),
        (KeyboardInterrupt(), 130),
    ],
)
def test_exit_codes(error: BaseException, code: int) -> None:
    assert exit_code_for(error) == code


# ---------------------------------------------------------------------- helpers
class Approval(BaseModel):
    approved: bool
    score: int
    note: str | None = None
    tags: list[str] = []


def test_example_input_fills_every_field() -> None:
    assert example_input(Approval) == {"approved": True, "score": 0, "note": None, "tags": []}
    assert example_input(None) == {}
    fields = {f.name: (f.type_name, f.required) for f in model_fields(Approval)}
    assert fields == {
        "approved": ("bool", True),
        "score": ("int", True),
        "note": ("str | None", False),
        "tags": ("list[str]", False),
    }


def test_resume_command_is_shell_quoted() -> None:
    command = resume_command(["ruvon"], "abc", Approval)
    assert command == (
        """ruvon resume abc --input '{"approved": true, "score": 0, "note": null, "tags": []}'"""
    )


def live_output() -> tuple[Output, io.StringIO]:
    output = Output()
    buffer = io.StringIO()
    output.out = Console(file=buffer, width=200, no_color=True, highlight=False)
    return output, buffer


def test_live_observer_prints_progress_retries_and_children() -> None:
    output, buffer = live_output()
    observer = LiveObserver(output)

    observer.on_workflow_started(WorkflowStarted("w1", "Order"))
    observer.on_step_started(StepStarted("w1", "Order", "Charge", "STANDARD"))
    observer.on_step_failed(StepFailed("w1", "Order", "Charge", "STANDARD", "E: x", 1, True))
    observer.on_step_started(StepStarted("w1", "Order", "Charge", "STANDARD", 2))
    observer.on_step_completed(StepCompleted("w1", "Order", "Charge", "STANDARD", 0.0))
    observer.on_status_changed(StatusChanged("w1", "Order", "ACTIVE", "WAITING_TIMER", "Nap"))
    observer.on_workflow_started(WorkflowStarted("c2-1", "Child", {}, "w1"))
    observer.on_compensation(CompensationRan("w1", "Order", "Charge", True))

    lines = buffer.getvalue().splitlines()
    assert lines[0] == "▶ Workflow started: w1 (Order)"
    assert "Charge (STANDARD) started" in lines[1]
    assert "Charge failed (attempt 1): E: x; retrying" in lines[2]
    assert "Charge attempt 2" in lines[3]
    assert "Charge completed in" in lines[4]
    assert "status ACTIVE → WAITING_TIMER at Nap" in lines[5]
    assert "[Child c2] ↳ child workflow started: c2-1" in lines[6]
    assert "compensated Charge" in lines[7]
