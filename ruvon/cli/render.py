"""Terminal output: rich for people, plain JSON for ``--json``.

Everything that comes from users (state, step names, error messages) is printed as ``Text``,
never as console markup, so a ``[bold]`` inside a value is shown as typed. Colour follows rich's
rules, which honour ``NO_COLOR``.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import click
from pydantic import BaseModel
from rich.console import Console
from rich.table import Table
from rich.text import Text

from ruvon.models import WorkflowStatus
from ruvon.providers.runs import StepRunRecord
from ruvon.records import AuditEntry, ExecutionLogEntry, WorkflowRecord


@dataclass(frozen=True)
class Symbols:
    """Status glyphs; plain ASCII when the terminal cannot encode the fancy ones."""

    start: str
    step: str
    done: str
    fail: str
    retry: str
    status: str
    wait: str
    pause: str
    undo: str
    child: str


_UNICODE = Symbols("▶", "▸", "✓", "✗", "↻", "•", "⏳", "⏸", "↶", "↳")
_ASCII = Symbols(">", "-", "+", "x", "~", "*", "...", "||", "<", "->")

_STATUS_STYLES = {
    WorkflowStatus.COMPLETED: "bold green",
    WorkflowStatus.CANCELLED: "yellow",
    WorkflowStatus.WAITING_HUMAN: "bold cyan",
    WorkflowStatus.WAITING_TIMER: "cyan",
}


def status_style(status: str) -> str:
    """Colour of a status value."""
    if status.startswith("FAILED"):
        return "bold red"
    try:
        return _STATUS_STYLES.get(WorkflowStatus(status), "blue")
    except ValueError:
        return ""


def local_time(moment: datetime | None, *, short: bool = False) -> str:
    """A timestamp in the local zone, to the second ('' for None); ``short`` drops the year."""
    if moment is None:
        return ""
    return moment.astimezone().strftime("%m-%d %H:%M:%S" if short else "%Y-%m-%d %H:%M:%S")


def iso(moment: datetime | None) -> str | None:
    """ISO-8601 text for JSON output."""
    return moment.isoformat() if moment is not None else None


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    return str(value)


def to_json(data: Any) -> str:
    """Pretty, stable JSON text (datetimes as ISO strings)."""
    return json.dumps(data, indent=2, ensure_ascii=False, default=_json_default)


def format_duration(seconds: float) -> str:
    """``12.3 ms`` below a second, ``1.24 s`` above."""
    return f"{seconds * 1000:.1f} ms" if seconds < 1 else f"{seconds:.2f} s"


def short_id(workflow_id: str) -> str:
    """The first block of a UUID, enough to tell children apart in live output."""
    return workflow_id.split("-", 1)[0]


def silence_stdout() -> None:
    """Point stdout at /dev/null, so a reader that left does not fail the final flush."""
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())


class _Console(Console):
    """A console that goes quiet when its reader goes away (``ruvon run … | head``).

    rich's default raises SystemExit, which could surface in the middle of a workflow
    transition (observers print); output is a side show, the workflow must keep going.
    """

    def on_broken_pipe(self) -> None:
        self.quiet = True
        if not self.stderr:
            silence_stdout()


class Output:
    """The consoles of one command; built inside the command so test runners can capture it."""

    def __init__(self, *, json_result: bool = False) -> None:
        # With ``json_result`` (``run --json``) the lines for people go to stderr, so stdout
        # carries nothing but the one JSON result the command prints at the end.
        self.json_result = json_result
        self.out: Console = _Console(stderr=json_result, highlight=False, soft_wrap=True)
        self.err: Console = _Console(stderr=True, highlight=False, soft_wrap=True)
        encoding = (self.out.encoding or "").lower().replace("-", "")
        self.symbols = _UNICODE if encoding.startswith("utf") else _ASCII

    def line(self, *parts: str | tuple[str, str] | Text) -> None:
        """Print one line assembled from plain strings and (text, style) pairs."""
        self.out.print(Text.assemble(*parts))

    def print(self, renderable: Any) -> None:
        """Print any rich renderable."""
        self.out.print(renderable)

    def json(self, data: Any) -> None:
        """Machine-readable output: plain JSON, no colour, no wrapping."""
        click.echo(to_json(data))

    def json_lines(self, rows: Iterable[Any]) -> None:
        """One compact JSON object per line (``--output jsonl``)."""
        for row in rows:
            click.echo(json.dumps(row, ensure_ascii=False, default=_json_default))

    def pretty_json(self, data: Any) -> None:
        """Indented, highlighted JSON for people."""
        self.out.print_json(to_json(data))

    def warn(self, message: str) -> None:
        """A one-line warning on stderr."""
        self.err.print(Text(f"warning: {message}", style="yellow"))

    def error(self, message: str, hint: str | None = None) -> None:
        """The one-line error every failed command prints on stderr."""
        flat = " ".join(part.strip() for part in message.splitlines() if part.strip())
        self.err.print(Text(f"error: {flat}", style="bold red"))
        if hint:
            self.err.print(Text(f"hint: {hint}", style="dim"))


# ---------------------------------------------------------------------- records as data
def record_summary(record: WorkflowRecord) -> dict[str, Any]:
    """The fields ``ruvon list --json`` prints for one workflow."""
    return {
        "id": record.id,
        "workflow_type": record.workflow_type,
        "workflow_version": record.workflow_version,
        "status": str(record.status),
        "priority": record.priority,
        "current_step": record.current_step_name,
        "created_at": iso(record.created_at),
        "updated_at": iso(record.updated_at),
    }


def audit_data(entry: AuditEntry) -> dict[str, Any]:
    """One audit row as JSON-ready data."""
    return {
        "recorded_at": iso(entry.recorded_at),
        "event_type": entry.event_type,
        "step_name": entry.step_name,
        "old_status": entry.old_status,
        "new_status": entry.new_status,
        "details": entry.details,
    }


def log_data(entry: ExecutionLogEntry) -> dict[str, Any]:
    """One execution log line as JSON-ready data."""
    return {
        "logged_at": iso(entry.logged_at),
        "level": entry.level,
        "step_name": entry.step_name,
        "message": entry.message,
        "details": entry.details,
    }


def step_run_data(run: StepRunRecord) -> dict[str, Any]:
    """One step run as JSON-ready data (``ruvon steps --json``)."""
    return {
        "run_id": run.run_id,
        "kind": str(run.kind),
        "step_name": run.step_name,
        "branch": run.branch or None,
        "run_number": run.run_number,
        "status": str(run.status),
        "attempt": run.attempt,
        "worker": run.worker,
        "queue": run.queue,
        "created_at": iso(run.created_at),
        "run_at": iso(run.run_at),
        "claimed_at": iso(run.started_at),
        "finished_at": iso(run.finished_at),
        "duration_seconds": run.duration,
        "error": run.error,
    }


def record_detail(record: WorkflowRecord, audit: Sequence[AuditEntry]) -> dict[str, Any]:
    """Everything ``ruvon show --json`` prints."""
    steps = record.definition_snapshot.get("steps", [])
    return {
        **record_summary(record),
        "current_step_index": record.current_step,
        "step_count": len(steps),
        "state": record.state,
        "error": record.error,
        "run_at": iso(record.run_at),
        "completed_at": iso(record.completed_at),
        "deadline_at": iso(record.deadline_at),
        "parent_execution_id": record.parent_execution_id,
        "blocked_on_child_id": record.blocked_on_child_id,
        "idempotency_key": record.idempotency_key,
        "saga_mode": record.saga_mode,
        "version": record.version,
        "history": [audit_data(entry) for entry in audit],
    }


# ---------------------------------------------------------------------- tables
def _status_text(status: str | None) -> Text:
    return Text(status or "", style=status_style(status) if status else "")


def _type_text(record: WorkflowRecord) -> Text:
    """The type, and the version it started on (several may run side by side)."""
    text = Text(record.workflow_type, no_wrap=True, overflow="ellipsis")
    if record.workflow_version:
        text.append(f" v{record.workflow_version}", style="dim")
    return text


def workflow_table(records: Iterable[WorkflowRecord]) -> Table:
    """The ``ruvon list`` table."""
    table = Table(header_style="bold", box=None, pad_edge=False)
    table.add_column("ID", no_wrap=True)
    # TYPE and STEP give way on a narrow terminal: cut with an ellipsis, never wrapped.
    table.add_column("TYPE")
    table.add_column("STATUS", no_wrap=True)
    table.add_column("STEP")
    table.add_column("UPDATED", no_wrap=True)
    for record in records:
        table.add_row(
            Text(record.id),
            _type_text(record),
            _status_text(str(record.status)),
            Text(record.current_step_name or "-", no_wrap=True, overflow="ellipsis"),
            Text(local_time(record.updated_at, short=True)),
        )
    return table


_RUN_STATUS_STYLES = {"DONE": "green", "RUNNING": "bold blue", "QUEUED": "cyan", "SKIPPED": "dim"}


def step_run_table(runs: Iterable[StepRunRecord]) -> Table:
    """The ``ruvon steps`` table: one row per step run, oldest first."""
    table = Table(header_style="bold", box=None, pad_edge=False)
    for column in ("RUN", "STEP", "KIND", "ATTEMPT", "STATUS", "WORKER", "QUEUE"):
        table.add_column(column, no_wrap=column != "STEP")
    for column in ("CLAIMED", "FINISHED", "DURATION"):
        table.add_column(column, no_wrap=True)
    table.add_column("ERROR", overflow="fold")
    for run in runs:
        step = f"{run.step_name}[{run.branch}]" if run.branch else run.step_name
        if run.run_number > 1:
            step += f" #{run.run_number}"
        duration = run.duration
        table.add_row(
            Text(str(run.run_id)),
            Text(step, no_wrap=True, overflow="ellipsis"),
            Text(str(run.kind)),
            Text(str(run.attempt)),
            Text(str(run.status), style=_RUN_STATUS_STYLES.get(str(run.status), "")),
            Text(run.worker or "-"),
            Text(run.queue),
            Text(local_time(run.started_at, short=True) or "-"),
            Text(local_time(run.finished_at, short=True) or "-"),
            Text(format_duration(duration) if duration is not None else "-"),
            Text(run.error or "", style="red"),
        )
    return table


def _details_text(details: dict[str, Any]) -> Text:
    """``key=value`` pairs, values as compact JSON; empty values left out."""
    parts = [
        f"{key}={json.dumps(value, ensure_ascii=False, default=_json_default)}"
        for key, value in details.items()
        if value not in (None, {}, [])
    ]
    return Text(" ".join(parts), style="dim", no_wrap=True, overflow="ellipsis")


def audit_table(entries: Iterable[AuditEntry], *, title: str | None = None) -> Table:
    """Audit rows: when, what, which step, status change, details (cut to the width)."""
    table = Table(title=title, title_justify="left", header_style="bold", box=None)
    table.add_column("TIME", no_wrap=True)
    table.add_column("EVENT", no_wrap=True)
    # STEP and DETAILS give way when the terminal is narrow: their cells are cut, not wrapped.
    table.add_column("STEP", max_width=28)
    table.add_column("NEW STATUS", no_wrap=True)
    table.add_column("DETAILS")
    for entry in entries:
        changed = entry.new_status and entry.new_status != entry.old_status
        table.add_row(
            Text(local_time(entry.recorded_at, short=True)),
            Text(entry.event_type),
            Text(entry.step_name or "", no_wrap=True, overflow="ellipsis"),
            _status_text(entry.new_status) if changed else Text(""),
            _details_text(entry.details),
        )
    return table


_LEVEL_STYLES = {"ERROR": "bold red", "WARNING": "yellow", "DEBUG": "dim"}


def log_table(entries: Iterable[ExecutionLogEntry], *, title: str | None = None) -> Table:
    """Execution log lines: when, level, step, message."""
    table = Table(title=title, title_justify="left", header_style="bold", box=None)
    table.add_column("TIME", no_wrap=True)
    table.add_column("LEVEL", no_wrap=True)
    table.add_column("STEP", max_width=28)
    table.add_column("MESSAGE", overflow="fold")
    for entry in entries:
        table.add_row(
            Text(local_time(entry.logged_at, short=True)),
            Text(entry.level, style=_LEVEL_STYLES.get(entry.level.upper(), "")),
            Text(entry.step_name or "", no_wrap=True, overflow="ellipsis"),
            Text(entry.message),
        )
    return table


def fields_grid(rows: Iterable[tuple[str, Text | str]]) -> Table:
    """Two aligned columns: a dim label and its value."""
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="dim", no_wrap=True)
    grid.add_column(overflow="fold")
    for label, value in rows:
        grid.add_row(label, value if isinstance(value, Text) else Text(value))
    return grid


def status_text(status: str) -> Text:
    """A status value, coloured."""
    return _status_text(status)
