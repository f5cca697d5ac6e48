"""docs/tutorials/build-task-manager.md: SQLite, a pause for approval, then the resume."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.docs_tutorials.tutorials import (
    Erratum,
    documented_output,
    failure_report,
    lay_out,
    normalized_lines,
    run_script,
)

pytestmark = pytest.mark.slow

# The tutorial's own "minimal schema": `persistence.conn.executescript(...)` right after
# `initialize()`. `conn` is no part of the documented provider API (reference/api/providers.md),
# and the same docs say SQLitePersistenceProvider creates its tables itself on first startup
# (reference/configuration/database-schema.md), so the block only restates tables that already
# exist (CREATE TABLE IF NOT EXISTS) with columns Ruvon does not use. Dropped.
DROP_MINIMAL_SCHEMA = Erratum(
    "main.py",
    r'    # Create minimal schema\n    await persistence\.conn\.executescript\(""".*?"""\)\n',
    "",
    why="persistence.conn is undocumented; initialize() already creates the schema",
    regex=True,
)

ERRATA = (
    DROP_MINIMAL_SCHEMA,
    # Every step returns "step" and "status" (and the pause "message"), keys TaskState does not
    # declare; as in the parallel tutorial (see DECLARE_STEP there), the documented merge sets
    # them on the pydantic model, which refuses undeclared fields, and so does Ruvon.
    Erratum(
        "task_manager/models.py",
        '    workflow_status: str = "pending"  # pending, assigned, approved, completed\n',
        '    workflow_status: str = "pending"  # pending, assigned, approved, completed\n'
        "    step: Optional[str] = None\n"
        "    status: Optional[str] = None\n"
        "    message: Optional[str] = None\n",
        why="the steps return step/status/message, which TaskState does not declare",
    ),
    # A WorkflowPauseDirective leaves the workflow WAITING_HUMAN: so say the human-in-the-loop
    # guide (`assert workflow.status == "WAITING_HUMAN"`) and Ruvon's status contract. This page
    # checks for "PAUSED", a status no step sets, so as documented the loop never resumes.
    Erratum(
        "main.py",
        '"PAUSED"',
        '"WAITING_HUMAN"',
        why="the pause status is WAITING_HUMAN, not PAUSED",
    ),
)


def test_task_approval_pauses_then_completes_as_documented(tmp_path: Path) -> None:
    project = lay_out("build_task_manager", tmp_path / "ruvon-task-manager", ERRATA)

    result = run_script(project, "main.py")

    assert result.returncode == 0, failure_report(result)
    expected = normalized_lines(documented_output("build_task_manager"))
    assert normalized_lines(result.stdout) == expected, failure_report(result)
    assert (project / "tasks.db").is_file()
