"""Read-only commands: ``ruvon list``, ``ruvon show``, ``ruvon logs`` and ``ruvon steps``."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

import click
from rich.text import Text

from ruvon.cli.commands_concurrency import slot_data, slot_positions
from ruvon.cli.failures import CommandError
from ruvon.cli.params import (
    CursorType,
    MomentType,
    encode_cursor,
    output_format,
    output_option,
)
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
    step_run_data,
    step_run_table,
    workflow_table,
)
from ruvon.cli.runtime import CliConfig, open_engine, require_database, run_async
from ruvon.models import WorkflowStatus
from ruvon.providers.flow_control import FlowControl
from ruvon.providers.runs import StepRunRecord
from ruvon.records import AuditEntry, ExecutionLogEntry, ListPosition, WorkflowRecord

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
    "--version",
    "workflow_version",
    metavar="VERSION",
    help="Only workflows started on this workflow_version (exactly as the YAML spells it).",
)
@click.option(
    "--since",
    type=MomentType(),
    help="Only workflows created at or after this time: ISO (2024-05-01T12:00) or an age "
    "(15m, 2h, 1d).",
)
@click.option(
    "--until", type=MomentType(), help="Only workflows created before this time (as --since)."
)
@click.option(
    "--limit",
    "-n",
    type=click.IntRange(min=1),
    default=20,
    show_default=True,
    help="At most this many (newest first); when there are more, a cursor for the next page.",
)
@click.option(
    "--cursor",
    type=CursorType(),
    help="Continue after the page that printed this cursor (stable while workflows are added).",
)
@output_option("default")
@click.pass_obj
def list_command(
    config: CliConfig,
    status: str | None,
    workflow_type: str | None,
    workflow_version: str | None,
    since: datetime | None,
    until: datetime | None,
    limit: int,
    cursor: ListPosition | None,
    output: str | None,
    as_json: bool,
) -> None:
    """List workflows, newest first, a page at a time."""
    fmt = output_format(output, as_json)
    if since is not None and until is not None and since >= until:
        raise CommandError(
            f"--since ({since.isoformat()}) is not before --until ({until.isoformat()}): "
            "nothing can match"
        )
    out = Output()

    async def main() -> list[WorkflowRecord]:
        async with open_engine(config.settings(), read_only=True) as engine:
            return await engine.persistence.list_workflows(
                status=_status_choice(status),
                workflow_type=workflow_type,
                workflow_version=workflow_version,
                created_since=since,
                created_until=until,
                after=cursor,
                limit=limit + 1,  # one more tells whether there is a next page
            )

    found = run_async(main())
    records, more = found[:limit], len(found) > limit
    rows = [
        {**record_summary(record), "cursor": encode_cursor(ListPosition.of(record))}
        for record in records
    ]
    if fmt == "json":
        out.json(rows)
    elif fmt == "jsonl":
        out.json_lines(rows)
    elif not records:
        out.line(("No workflows found.", "dim"))
    else:
        out.print(workflow_table(records))
        if more:
            again = _list_arguments(status, workflow_type, workflow_version, since, until, limit)
            next_page = config.command_line("list", *again, "--cursor", rows[-1]["cursor"])
            out.line(("Next page: ", "dim"), (next_page, "bold"))


def _list_arguments(
    status: str | None,
    workflow_type: str | None,
    workflow_version: str | None,
    since: datetime | None,
    until: datetime | None,
    limit: int,
) -> list[str]:
    """The filters of this listing as arguments (times made absolute: the page stays put)."""
    arguments: list[str] = []
    for option, value in (
        ("--status", status),
        ("--type", workflow_type),
        ("--version", workflow_version),
        ("--since", since.isoformat() if since else None),
        ("--until", until.isoformat() if until else None),
    ):
        if value is not None:
            arguments += [option, value]
    return [*arguments, "--limit", str(limit)]


def _progress(record: WorkflowRecord) -> str:
    steps = record.definition_snapshot.get("steps", [])
    name = record.current_step_name
    if name is None:
        return f"- (past the last of {len(steps)} steps)"
    return f"{name} ({record.current_step + 1} of {len(steps)})"


def _slot_line(slot: dict[str, Any]) -> Text:
    what = f"step {slot['step_name']}" if slot["step_name"] else "the workflow"
    if slot["state"] == "HOLDING":
        return Text(f"holds a slot of {slot['key']} (limit {slot['limit']}) for {what}")
    return Text(
        f"waits for a slot of {slot['key']} for {what}: #{slot['position']} in line",
        style="yellow",
    )


def _print_workflow(
    output: Output,
    record: WorkflowRecord,
    history: list[AuditEntry],
    slots: list[dict[str, Any]] | None = None,
) -> None:
    version = f"  (version {record.workflow_version})" if record.workflow_version else ""
    rows: list[tuple[str, Text | str]] = [
        ("Workflow", Text(record.id, style="bold")),
        ("Type", f"{record.workflow_type}{version}"),
        ("Status", status_text(str(record.status))),
        ("Priority", str(record.priority)),
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
    rows += [("Concurrency", _slot_line(slot)) for slot in slots or ()]
    if record.error:
        rows.append(("Error", Text(record.error, style="red")))
    output.print(fields_grid(rows))
    output.print(Text("\nState", style="bold"))
    output.pretty_json(record.state)
    output.print(Text(""))
    output.print(audit_table(history, title="History"))


async def _load(
    config: CliConfig, workflow_id: str
) -> tuple[WorkflowRecord, list[AuditEntry], list[dict[str, Any]]]:
    """The record, its history and (unfinished) the concurrency slots it holds or waits for,
    each with its place in its key's line."""
    settings = config.settings()
    require_database(workflow_id, settings)
    async with open_engine(settings, read_only=True) as engine:
        record = await engine.load_record(workflow_id)
        history = await engine.persistence.get_audit_log(workflow_id)
        store = engine.persistence
        held: list[dict[str, Any]] = []
        if not record.status.is_terminal and isinstance(store, FlowControl):
            lines = await store.list_slots(workflow_id=workflow_id)
            places = slot_positions(lines)
            held = [
                slot_data(s, places.get((s.key, s.holder)))
                for s in lines
                if s.workflow_id == workflow_id
            ]
        return record, history, held


@click.command("show")
@click.argument("workflow_id")
@json_option
@click.pass_obj
def show_command(config: CliConfig, workflow_id: str, as_json: bool) -> None:
    """Show one workflow: status, current step, state, error and history."""
    output = Output()
    record, history, slots = run_async(_load(config, workflow_id))
    if as_json:
        output.json({**record_detail(record, history), "concurrency": slots})
    else:
        _print_workflow(output, record, history, slots)


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


@click.command("steps")
@click.argument("workflow_id")
@output_option("default")
@click.pass_obj
def steps_command(config: CliConfig, workflow_id: str, output: str | None, as_json: bool) -> None:
    """List the step runs of WORKFLOW_ID on a cluster: attempt, worker, queue, times, error.

    Step runs exist where workers run the steps (a cluster's PostgreSQL); a workflow run in
    one process (`ruvon run`) has none: `ruvon show` and `ruvon logs` tell its story.
    """
    fmt = output_format(output, as_json)
    out = Output()
    settings = config.settings()
    require_database(workflow_id, settings)

    async def main() -> list[StepRunRecord]:
        async with open_engine(settings, read_only=True) as engine:
            await engine.load_record(workflow_id)  # WorkflowNotFound for an unknown id
            return await engine.persistence.list_step_runs(workflow_id)

    runs = run_async(main())
    if fmt == "json":
        out.json([step_run_data(run) for run in runs])
    elif fmt == "jsonl":
        out.json_lines([step_run_data(run) for run in runs])
    elif not runs:
        out.line(
            (f"No step runs for workflow {workflow_id}: ", "dim"),
            ("only workflows the cluster's workers run have them (see `ruvon show`).", "dim"),
        )
    else:
        out.print(step_run_table(runs))
