"""The observer behind ``ruvon run``: one line per step start, finish, retry, status change."""

from __future__ import annotations

import time

from rich.text import Text

from ruvon.cli.render import Output, format_duration, short_id, status_style
from ruvon.models import WorkflowStatus
from ruvon.providers.observer import (
    BaseObserver,
    CompensationRan,
    StatusChanged,
    StepCompleted,
    StepFailed,
    StepStarted,
    WorkflowFinished,
    WorkflowStarted,
)


class LiveObserver(BaseObserver):
    """Prints workflow progress as it happens.

    The first workflow it sees (or the one named by ``primary``) is printed without a prefix;
    lines about other workflows (children, spawned workflows) carry ``[Type id]``.
    """

    def __init__(self, output: Output, *, primary: str | None = None) -> None:
        self.output = output
        self.primary = primary
        # Durations are measured from the first attempt, so they include retries and backoff.
        self._started: dict[tuple[str, str], float] = {}
        # Latest (type, status) of every workflow this run touched, to list loose ends.
        self._seen: dict[str, tuple[str, str]] = {}

    def still_open(self, *, besides: set[str]) -> list[tuple[str, str, str]]:
        """(id, type, status) of touched workflows that are not terminal, except ``besides``."""
        return [
            (workflow_id, workflow_type, status)
            for workflow_id, (workflow_type, status) in self._seen.items()
            if workflow_id not in besides and not WorkflowStatus(status).is_terminal
        ]

    def _prefix(self, workflow_id: str, workflow_type: str) -> Text:
        if self.primary is None or workflow_id == self.primary:
            return Text("")
        return Text(f"[{workflow_type} {short_id(workflow_id)}] ", style="magenta")

    def _print(self, workflow_id: str, workflow_type: str, *parts: str | tuple[str, str]) -> None:
        self.output.line(Text("  "), self._prefix(workflow_id, workflow_type), *parts)

    def on_workflow_started(self, event: WorkflowStarted) -> None:
        self._seen[event.workflow_id] = (event.workflow_type, str(WorkflowStatus.ACTIVE))
        symbols = self.output.symbols
        if self.primary is None:
            self.primary = event.workflow_id
            self.output.line(
                (f"{symbols.start} ", "bold"),
                ("Workflow started: ", "bold"),
                (event.workflow_id, "bold cyan"),
                f" ({event.workflow_type})",
            )
            return
        relation = "child" if event.parent_execution_id else "spawned"
        self._print(
            event.workflow_id,
            event.workflow_type,
            (f"{symbols.child} {relation} workflow started: ", "magenta"),
            (event.workflow_id, "cyan"),
        )

    def on_step_started(self, event: StepStarted) -> None:
        key = (event.workflow_id, event.step_name)
        if event.attempt == 1 or key not in self._started:
            self._started[key] = time.perf_counter()
        if event.attempt > 1:
            self._print(
                event.workflow_id,
                event.workflow_type,
                (f"{self.output.symbols.retry} {event.step_name}", "yellow"),
                f" attempt {event.attempt}",
            )
            return
        self._print(
            event.workflow_id,
            event.workflow_type,
            (f"{self.output.symbols.step} ", "dim"),
            (event.step_name, "bold"),
            (f" [{event.branch}]" if event.branch else "", "bold"),
            (f" ({event.step_type}) started", "dim"),
        )

    def on_step_completed(self, event: StepCompleted) -> None:
        began = self._started.pop((event.workflow_id, event.step_name), None)
        seconds = time.perf_counter() - began if began is not None else event.duration_seconds
        self._print(
            event.workflow_id,
            event.workflow_type,
            (f"{self.output.symbols.done} ", "green"),
            (event.step_name, "bold"),
            f" completed in {format_duration(seconds)}",
        )

    def on_step_failed(self, event: StepFailed) -> None:
        symbols = self.output.symbols
        if event.will_retry:
            self._print(
                event.workflow_id,
                event.workflow_type,
                (f"{symbols.retry} {event.step_name}", "yellow"),
                f" failed (attempt {event.attempt}): {event.error}; retrying",
            )
            return
        self._started.pop((event.workflow_id, event.step_name), None)
        self._print(
            event.workflow_id,
            event.workflow_type,
            (f"{symbols.fail} {event.step_name}", "bold red"),
            (f" failed (attempt {event.attempt}): {event.error}", "red"),
        )

    def on_status_changed(self, event: StatusChanged) -> None:
        self._seen[event.workflow_id] = (event.workflow_type, event.new_status)
        if event.step_name and event.new_status.startswith(("WAITING", "PENDING")):
            # A wait has no "step started" event; time the step from when it began waiting.
            self._started.setdefault((event.workflow_id, event.step_name), time.perf_counter())
        self._print(
            event.workflow_id,
            event.workflow_type,
            (f"{self.output.symbols.status} status ", "dim"),
            (event.old_status, status_style(event.old_status)),
            (" → ", "dim"),
            (event.new_status, status_style(event.new_status)),
            (f" at {event.step_name}" if event.step_name else "", "dim"),
        )

    def on_workflow_finished(self, event: WorkflowFinished) -> None:
        self._seen[event.workflow_id] = (event.workflow_type, event.status)
        if event.workflow_id == self.primary:
            return  # the command prints the primary workflow's outcome itself
        self._print(
            event.workflow_id,
            event.workflow_type,
            ("finished: ", "magenta"),
            (event.status, status_style(event.status)),
            (f" ({event.error})" if event.error else "", "red"),
        )

    def on_compensation(self, event: CompensationRan) -> None:
        symbols = self.output.symbols
        if event.succeeded:
            self._print(
                event.workflow_id,
                event.workflow_type,
                (f"{symbols.undo} compensated ", "yellow"),
                (event.step_name, "bold"),
            )
            return
        self._print(
            event.workflow_id,
            event.workflow_type,
            (f"{symbols.fail} compensation of {event.step_name} failed: ", "bold red"),
            (event.error or "", "red"),
        )
