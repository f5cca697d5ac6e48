"""``ruvon start --cluster --wait``: print each step as the workers commit it.

The workers are other processes, so there are no observer events here: the CLI polls the
workflow row (one primary-key read every 200 ms) and reads the audit log only when the row's
version moved. Each audit row commits with the transition it describes, so every committed step
is printed once, in order, with the worker, queue and duration its STEP_COMPLETED row carries.
"""

from __future__ import annotations

import asyncio
import json
import time

from ruvon.cli.render import Output, format_duration, status_style
from ruvon.client import SETTLED, Client
from ruvon.errors import WaitTimeout
from ruvon.records import AuditEntry, WorkflowRecord

__all__ = ["AuditPrinter", "follow_on_cluster"]

POLL_SECONDS = 0.2


class AuditPrinter:
    """Prints audit rows it has not printed yet, one line each (the lines ``ruvon run`` prints)."""

    def __init__(self, output: Output) -> None:
        self.output = output
        self._seen: set[tuple[str, str | None, str, str]] = set()

    def show(self, entries: list[AuditEntry]) -> None:
        """Print the entries not shown before, in log order."""
        for entry in entries:
            key = (
                entry.event_type,
                entry.step_name,
                entry.recorded_at.isoformat(),
                json.dumps(entry.details, sort_keys=True, default=str),
            )
            if key not in self._seen:
                self._seen.add(key)
                self._print(entry)

    def _where(self, entry: AuditEntry) -> str:
        worker, queue = entry.details.get("worker"), entry.details.get("queue")
        if not worker:
            return ""
        return f" on {worker}" + (f" (queue {queue})" if queue else "")

    def _print(self, entry: AuditEntry) -> None:
        symbols, step, details = self.output.symbols, entry.step_name or "?", entry.details
        if entry.event_type == "STEP_COMPLETED":
            seconds = details.get("duration_ms")
            took = (
                f" in {format_duration(seconds / 1000)}" if isinstance(seconds, int | float) else ""
            )
            self.output.line(
                "  ",
                (f"{symbols.done} ", "green"),
                (step, "bold"),
                f" completed{took}",
                (self._where(entry), "dim"),
            )
        elif entry.event_type == "STEP_RETRY":
            self.output.line(
                "  ",
                (f"{symbols.retry} {step}", "yellow"),
                f" failed (attempt {details.get('attempt', '?')}): {details.get('error', '')}; "
                f"retrying in {details.get('delay', '?')}s",
                (self._where(entry), "dim"),
            )
        elif entry.event_type == "STEP_FAILED":
            self.output.line(
                "  ",
                (f"{symbols.fail} {step}", "bold red"),
                (f" failed: {details.get('error', '')}", "red"),
            )
        elif entry.event_type == "WORKER_CRASH_DETECTED":
            self.output.line(
                "  ",
                (f"{symbols.retry} {step}", "yellow"),
                f": worker lost (attempt {details.get('attempt', '?')}), "
                f"{details.get('action', 'run again')}",
            )
        elif entry.old_status and entry.new_status and entry.new_status != entry.old_status:
            self.output.line(
                "  ",
                (f"{symbols.status} status ", "dim"),
                (entry.old_status, status_style(entry.old_status)),
                (" → ", "dim"),
                (entry.new_status, status_style(entry.new_status)),
                (f" at {entry.step_name}" if entry.step_name else "", "dim"),
            )


async def follow_on_cluster(
    client: Client, workflow_id: str, output: Output, *, timeout: float
) -> WorkflowRecord:
    """Print the workflow's steps as they commit until it settles; ``WaitTimeout`` after
    ``timeout`` seconds (the workflow goes on)."""
    printer = AuditPrinter(output)
    deadline = time.monotonic() + timeout
    version: int | None = None
    while True:
        record = await client.get(workflow_id)
        if record.version != version:
            version = record.version
            # Read after the row: the log holds at least what that version committed.
            printer.show(await client.history(workflow_id))
        if record.status in SETTLED:
            return record
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise WaitTimeout(
                f"workflow '{workflow_id}' is still {record.status} at step "
                f"'{record.current_step_name}' after {timeout:g}s"
            )
        await asyncio.sleep(min(POLL_SECONDS, remaining))
