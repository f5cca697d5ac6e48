"""The shared tail of run, start, resume and retry: drive, then say where things stand."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

from rich.text import Text

from ruvon.cli.driver import DriveResult
from ruvon.cli.failures import EXIT_FAILURE, EXIT_OK, Interrupted
from ruvon.cli.live import LiveObserver
from ruvon.cli.render import Output, fields_grid, status_text
from ruvon.cli.runtime import CliConfig, Engine
from ruvon.cli.waiting import (
    input_model,
    model_fields,
    paused_by_directive,
    resume_command,
    signal_command_line,
    waiting_event,
)
from ruvon.models import WorkflowStatus
from ruvon.workflow import Workflow


def exit_code_of(status: WorkflowStatus) -> int:
    """0 when completed or still going (waiting); 1 when failed or cancelled."""
    if status.is_failed or status is WorkflowStatus.CANCELLED:
        return EXIT_FAILURE
    return EXIT_OK


def print_waiting_for_person(output: Output, config: CliConfig, wf: Workflow) -> None:
    """Say which workflow waits, what input it takes, and the command that resumes it."""
    symbols = output.symbols
    output.print(Text(""))
    output.line(
        (f"{symbols.pause} Waiting for input: ", "bold cyan"),
        "workflow ",
        (wf.id, "bold"),
        f" ({wf.workflow_type}) at step ",
        (wf.current_step or "?", "bold"),
    )
    model = input_model(wf)
    if paused_by_directive(wf):
        output.line(("  the input is passed to the next step's function", "dim"))
    if model is not None:
        output.line(f"  Input fields ({model.__name__}):")
        rows = []
        for field in model_fields(model):
            note = "required" if field.required else f"default {field.default!r}"
            rows.append((f"    {field.name}", Text.assemble(field.type_name, (f"  {note}", "dim"))))
        output.print(fields_grid(rows))
    output.line("  Continue with:")
    event = waiting_event(wf)
    if event is not None:
        command = signal_command_line(config.command(), wf.id, event, model)
    else:
        command = resume_command(config.command(), wf.id, model)
    output.line("    ", (command, "bold"))


def print_loose_ends(
    output: Output, config: CliConfig, observer: LiveObserver, result: DriveResult
) -> None:
    """Other workflows this run started or moved that are not finished (FIRE_AND_FORGET)."""
    besides = {result.workflow.id}
    if result.waiting is not None:
        besides.add(result.waiting.id)
    if result.workflow.record.blocked_on_child_id:
        besides.add(result.workflow.record.blocked_on_child_id)
    loose = observer.still_open(besides=besides)
    if not loose:
        return
    output.print(Text(""))
    output.line(("Other workflows from this run that are not finished:", "bold"))
    for workflow_id, workflow_type, status in loose:
        output.line(
            f"  {workflow_id} ({workflow_type}) ",
            status_text(status),
            (": ", "dim"),
            config.command_line("resume", workflow_id),
        )


def print_outcome(
    output: Output,
    config: CliConfig,
    result: DriveResult,
    observer: LiveObserver | None = None,
) -> int:
    """The final status and state of the workflow, and the exit code they mean."""
    wf = result.workflow
    if observer is not None:
        print_loose_ends(output, config, observer, result)
    if result.waiting is not None:
        print_waiting_for_person(output, config, result.waiting)
    output.print(Text(""))
    rows: list[tuple[str, Text | str]] = [("Status", status_text(str(wf.status)))]
    if wf.status is WorkflowStatus.PENDING_SUB_WORKFLOW and wf.record.blocked_on_child_id:
        rows.append(("Waiting on", wf.record.blocked_on_child_id))
    if wf.error:
        rows.append(("Error", Text(wf.error, style="red")))
    output.print(fields_grid(rows))
    output.line(("Final state:" if wf.status.is_terminal else "State:", "dim"))
    output.pretty_json(wf.state_dict())
    if wf.status.is_failed and wf.status is not WorkflowStatus.FAILED_ROLLED_BACK:
        hint = config.command_line("retry", wf.id)
        output.line(("Fix the cause, then re-run the failed step with: ", "dim"), (hint, "bold"))
    if output.json_result:
        output.json(outcome_data(wf, result.waiting))
    return exit_code_of(wf.status)


def outcome_data(wf: Workflow, waiting: Workflow | None = None) -> dict[str, Any]:
    """The machine-readable result of ``run/start/resume --json``: where the workflow stands."""
    return {
        "id": wf.id,
        "workflow_type": wf.workflow_type,
        "status": str(wf.status),
        "current_step": wf.current_step,
        "state": wf.state_dict(),
        "error": wf.error,
        # The workflow (this one, or a child) that waits for a person, if any.
        "waiting_for_input": waiting.id if waiting is not None else None,
    }


async def print_interrupted(
    output: Output, engine: Engine, config: CliConfig, workflow_id: str | None
) -> None:
    """After Ctrl-C: the workflow's saved status and how to carry on."""
    output.print(Text(""))
    if workflow_id is None:
        output.line(("Interrupted before a workflow was saved; nothing to resume.", "yellow"))
        return
    where = ""
    # A cancellation still pending from the first Ctrl-C lands on the first await; on
    # Python 3.11 it cannot be withdrawn, so let it land and ask again.
    for _attempt in range(3):
        try:
            record = await engine.load_record(workflow_id)
        except asyncio.CancelledError:
            continue
        except Exception:
            break
        step = record.current_step_name
        where = f" It is saved as {record.status}" + (f" at step {step}." if step else ".")
        break
    output.line(
        ("Interrupted.", "bold yellow"),
        f" Workflow {workflow_id} keeps its last saved state.{where}",
    )
    output.line("Continue with: ", (config.command_line("resume", workflow_id), "bold"))


@contextlib.asynccontextmanager
async def interruptible(
    output: Output, engine: Engine, config: CliConfig, current: Callable[[], str | None]
) -> AsyncIterator[None]:
    """Turn Ctrl-C into a message about the workflow ``current()`` names.

    Ctrl-C cancels the command at its next await: whatever was saved stays saved (each
    transition is one save), so the workflow simply continues from there on the next resume.
    """
    try:
        yield
    except (asyncio.CancelledError, KeyboardInterrupt):
        # CancelledError: the first Ctrl-C (asyncio cancels the command at its next await).
        # KeyboardInterrupt: a second Ctrl-C, raised wherever the code was, e.g. in a step.
        await print_interrupted(output, engine, config, current())
        raise Interrupted from None
