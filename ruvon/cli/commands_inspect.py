"""Read-only commands: ``ruvon list``, ``ruvon show`` and ``ruvon logs``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click
from rich.text import Text

from ruvon.cli.render import (
    Output,
    audit_data,
    audit_table,
    fields_grid,
    local_time,
    log_data,
    log_table,
    record_detail,
    record_summary,
    status_text,
    workflow_table,
)
from ruvon.cli.runtime import CliConfig, open_engine, require_database, run_async
from ruvon.models import WorkflowStatus
from ruvon.records import AuditEntry, ExecutionLogEntry, WorkflowRecord

F = TypeVar("F", bound=Callable[..., Any])

json_option: Callable[[F], F] = click.option(
    "--json", "as_json", is_flag=True, help="Print JSON instead of tables."
)


def _status_choice(value: str | None) -> WorkflowStatus | None:
    return WorkflowStatus(value.upper()) if value else None


@click.command("list")
@click.option(
    "--status",
    type=click.Choice([s.value for s in WorkflowStatus], case_sensitive=False),
    help="Only workflows in this status.",
)
@click.option("--type", "workflow_type", metavar="TYPE", help="Only workflows of this type.")
@click.option(
    "--limit",
    "-n",
    type=click.IntRange(min=1),
    default=20,
    show_default=True,
    help="At most this many (newest first).",
)
@json_option
@click.pass_obj
def list_command(
    config: CliConfig, status: str | None, workflow_type: str | None, limit: int, as_json: bool
) -> None:
    """List workflows, newest first."""
    output = Output()

    async def main() -> list[WorkflowRecord]:
        async with open_engine(config.settings(), read_only=True) as engine:
            return await engine.persistence.list_workflows(
                status=_status_choice(status), workflow_type=workflow_type, limit=limit
            )

    records = run_async(main())
    if as_json:
        output.json([record_summary(record) for record in records])
    elif not records:
        output.line(("No workflows found.", "dim"))
    else:
        output.print(workflow_table(records))


def _progress(record: WorkflowRecord) -> str:
    steps = record.definition_snapshot.get("steps", [])
    name = record.current_step_name
    if name is None:
        return f"- (past the last of {len(steps)} steps)"
    return f"{name} ({record.current_step + 1} of {len(steps)})"


def _print_workflow(output: Output, record: WorkflowRecord, history: list[AuditEntry]) -> None:
    version = f"  (version {record.workflow_version})" if record.workflow_version else ""
    rows: list[tuple[str, Text | str]] = [
        ("Workflow", Text(record.id, style="bold")),
        ("Type", f"{record.workflow_type}{version}"),
        ("Status", status_text(str(record.status))),
        ("Step", _progress(record)),
        ("Created", local_time(record.created_at)),
        ("Updated", local_time(record.updated_at)),
    ]
    if record.run_at is not None:
        rows.append(("Wakes at", local_time(record.run_at)))
    if record.completed_at is not None:
        rows.append(("Finished", local_time(record.completed_at)))
    if record.parent_execution_id:
        rows.append(("Parent", record.parent_execution_id))
    if record.blocked_on_child_id:
        rows.append(("Waiting on", record.blocked_on_child_id))
    if record.error:
        rows.append(("Error", Text(record.error, style="red")))
    output.print(fields_grid(rows))
    output.print(Text("\nState", style="bold"))
    output.pretty_json(record.state)
    output.print(Text(""))
    output.print(audit_table(history, title="History"))


async def _load(config: CliConfig, workflow_id: str) -> tuple[WorkflowRecord, list[AuditEntry]]:
    settings = config.settings()
    require_database(workflow_id, settings)
    async with open_engine(settings, read_only=True) as engine:
        record = await engine.load_record(workflow_id)
        return record, await engine.persistence.get_audit_log(workflow_id)


@click.command("show")
@click.argument("workflow_id")
@json_option
@click.pass_obj
def show_command(config: CliConfig, workflow_id: str, as_json: bool) -> None:
    """Show one workflow: status, current step, state, error and history."""
    output = Output()
    record, history = run_async(_load(config, workflow_id))
    if as_json:
        output.json(record_detail(record, history))
    else:
        _print_workflow(output, record, history)


@click.command("logs")
@click.argument("workflow_id")
@click.option("--step", metavar="NAME", help="Only entries about this step.")
@click.option(
    "--level",
    type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
    help="Only log lines at this level or above (the audit trail is not filtered).",
)
@click.option(
    "--limit",
    "-n",
    type=click.IntRange(min=1),
    default=50,
    show_default=True,
    help="Show the last N entries of each kind.",
)
@json_option
@click.pass_obj
def logs_command(
    config: CliConfig,
    workflow_id: str,
    step: str | None,
    level: str | None,
    limit: int,
    as_json: bool,
) -> None:
    """Show the execution log lines and the audit trail of WORKFLOW_ID."""
    output = Output()
    settings = config.settings()
    require_database(workflow_id, settings)
    floor = _LEVELS.index(level.upper()) if level else 0

    async def main() -> tuple[list[AuditEntry], list[ExecutionLogEntry]]:
        async with open_engine(settings, read_only=True) as engine:
            await engine.load_record(workflow_id)  # WorkflowNotFound for an unknown id
            audit = await engine.persistence.get_audit_log(workflow_id)
            logs = await engine.persistence.get_execution_logs(workflow_id)
        if step is not None:
            audit = [entry for entry in audit if entry.step_name == step]
            logs = [entry for entry in logs if entry.step_name == step]
        logs = [entry for entry in logs if _level_rank(entry.level) >= floor]
        return audit[-limit:], logs[-limit:]

    audit, logs = run_async(main())
    if as_json:
        output.json(
            {
                "workflow_id": workflow_id,
                "logs": [log_data(entry) for entry in logs],
                "audit": [audit_data(entry) for entry in audit],
            }
        )
        return
    if logs:
        output.print(log_table(logs, title="Execution log"))
    else:
        output.line(("No execution log lines.", "dim"))
    output.print(Text(""))
    output.print(audit_table(audit, title="Audit trail"))


_LEVELS = ["DEBUG", "INFO", "WARNING", "ERROR"]


def _level_rank(level: str) -> int:
    """Position of a level in DEBUG < INFO < WARNING < ERROR (unknown levels count as INFO)."""
    name = level.upper()
    return _LEVELS.index(name) if name in _LEVELS else 1
