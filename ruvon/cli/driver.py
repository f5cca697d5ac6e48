"""Run a workflow in this process until it finishes or waits for a person.

Timers are slept through (the deadline is the stored ``run_at``, so a process started later
sleeps only what is left); sub-workflows are followed into; a human wait ends the run.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from rich.text import Text

from ruvon.builder import WorkflowBuilder
from ruvon.cli.render import Output, local_time, short_id
from ruvon.cli.runtime import CliConfig
from ruvon.clock import utc_now
from ruvon.models import WorkflowStatus
from ruvon.workflow import Workflow

# A crash between "PENDING_*" being saved and the step finishing leaves these behind; the
# next transition re-runs the step.
_INTERRUPTED_STATUSES = (WorkflowStatus.PENDING_ASYNC, WorkflowStatus.PENDING_PARALLEL)
# Sleep a little past the deadline: the loop clock and the wall clock may disagree slightly.
_TIMER_SLACK_SECONDS = 0.01


@dataclass(frozen=True)
class DriveResult:
    """Where a run stopped."""

    workflow: Workflow
    # The workflow (this one or a descendant) that waits for a person, if any.
    waiting: Workflow | None = None


async def advance(wf: Workflow, user_input: dict[str, object] | None = None) -> None:
    """One ``next_step``; a step failure the engine already recorded is not an error here."""
    try:
        await wf.next_step(user_input=user_input)
    except Exception:
        if not wf.status.is_terminal:
            raise


class Driver:
    """Runs workflows for one command, remembering which one is in progress (for Ctrl-C)."""

    def __init__(self, builder: WorkflowBuilder, output: Output, config: CliConfig) -> None:
        self.builder = builder
        self.output = output
        self.config = config
        self.current_id: str | None = None
        self.root_id: str | None = None

    async def drive(self, wf: Workflow, *, follow_parent: bool = False) -> DriveResult:
        """Advance ``wf`` as far as it can go here.

        With ``follow_parent``, a child that finishes hands over to its parent, so resuming a
        child waiting for input carries the whole tree forward.
        """
        self.current_id = wf.id
        if self.root_id is None:
            self.root_id = wf.id
        while True:
            status = await wf.run()
            if status is WorkflowStatus.WAITING_TIMER and wf.record.run_at is not None:
                await self._sleep_until_due(wf)
                continue
            if status in _INTERRUPTED_STATUSES:
                await advance(wf)
                if wf.status is status:
                    break  # running elsewhere (a remote executor): nothing to do here
                continue
            if status is WorkflowStatus.PENDING_SUB_WORKFLOW and wf.record.blocked_on_child_id:
                child_result = await self._drive_child(wf, wf.record.blocked_on_child_id)
                if child_result.waiting is not None:
                    self.current_id = wf.id
                    return DriveResult(wf, child_result.waiting)
                wf = await self._reload(wf)
                if wf.status is WorkflowStatus.PENDING_SUB_WORKFLOW:
                    # The child ended without moving its parent on: apply its result here.
                    await advance(wf)
                    if wf.status is WorkflowStatus.PENDING_SUB_WORKFLOW:
                        break
                continue
            break
        self.current_id = wf.id
        if follow_parent and wf.status.is_terminal and wf.parent_execution_id:
            parent = await self.builder.load_workflow(wf.parent_execution_id)
            if not parent.status.is_terminal:
                self.output.line(
                    (f"{self.output.symbols.child} continuing parent workflow ", "magenta"),
                    (parent.id, "cyan"),
                    f" ({parent.workflow_type})",
                )
                return await self.drive(parent, follow_parent=True)
        return DriveResult(wf, wf if wf.status is WorkflowStatus.WAITING_HUMAN else None)

    async def _drive_child(self, parent: Workflow, child_id: str) -> DriveResult:
        child = await self.builder.load_workflow(child_id)
        result = await self.drive(child)
        self.current_id = parent.id
        return result

    async def _reload(self, wf: Workflow) -> Workflow:
        return await self.builder.load_workflow(wf.id)

    async def _sleep_until_due(self, wf: Workflow) -> None:
        run_at = wf.record.run_at
        assert run_at is not None
        seconds = (run_at - utc_now()).total_seconds()
        if seconds > 0:
            step = wf.current_step or "?"
            who = "" if wf.id == self.root_id else f"[{wf.workflow_type} {short_id(wf.id)}] "
            self.output.print(
                Text.assemble(
                    "  ",
                    (who, "magenta"),
                    (f"{self.output.symbols.wait} {step}: ", "cyan"),
                    f"waiting until {local_time(run_at)} ({seconds:.1f}s)",
                    (
                        f"; Ctrl-C is safe, `{self.config.command_line('resume', wf.id)}`"
                        " continues later",
                        "dim",
                    ),
                )
            )
            await asyncio.sleep(seconds + _TIMER_SLACK_SECONDS)
