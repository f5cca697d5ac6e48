"""``ruvon resume``, ``ruvon retry`` and ``ruvon cancel``: act on a stored workflow."""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import click
from rich.text import Text

from ruvon.builder import WorkflowBuilder
from ruvon.cli.driver import Driver, advance
from ruvon.cli.inputs import input_options, read_json_input
from ruvon.cli.live import LiveObserver
from ruvon.cli.params import json_result_option
from ruvon.cli.render import Output, status_text
from ruvon.cli.runtime import (
    REGISTRY_FILE_NAME,
    CliConfig,
    Engine,
    open_engine,
    require_database,
    run_async,
)
from ruvon.cli.session import interruptible, outcome_data, print_outcome
from ruvon.cli.waiting import check_resume_input
from ruvon.clock import utc_now
from ruvon.embedded.claims import Claimant, claim_workflow, release_workflow
from ruvon.errors import InvalidWorkflowOperation, RuvonError
from ruvon.models import WorkflowStatus
from ruvon.workflow import Workflow

_CONFIG_DIR_OPTION = click.option(
    "--config-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help=f"Directory with the {REGISTRY_FILE_NAME} for sub-workflows "
    "(default: next to the workflow's YAML file).",
)


def _describe(output: Output, verb: str, wf: Workflow) -> None:
    output.line(
        (f"{output.symbols.start} {verb} workflow ", "bold"),
        (wf.id, "bold cyan"),
        f" ({wf.workflow_type}): ",
        status_text(str(wf.status)),
        f" at step {wf.current_step}" if wf.current_step else "",
    )


def check_resumable(wf: Workflow, user_input: dict[str, Any] | None) -> None:
    """Refuse before anything is printed or changed: terminal workflows, input that won't do."""
    status = wf.status
    if status.is_terminal:
        hint = "; use `ruvon retry` to re-run the failed step" if status.is_failed else ""
        raise InvalidWorkflowOperation(f"workflow '{wf.id}' is {status}: nothing to resume{hint}")
    if status is WorkflowStatus.WAITING_HUMAN and not _approval_timed_out(wf, user_input):
        check_resume_input(wf, user_input or {})


def _approval_timed_out(wf: Workflow, user_input: dict[str, Any] | None) -> bool:
    """No input for an approval past its deadline: the driver applies the timeout."""
    deadline = wf.record.run_at
    return user_input is None and deadline is not None and deadline <= utc_now()


async def apply_resume_input(
    output: Output, wf: Workflow, user_input: dict[str, Any] | None
) -> None:
    """Hand the operator's input to the workflow, in the way its status calls for."""
    status = wf.status
    if status is WorkflowStatus.WAITING_HUMAN:
        if not _approval_timed_out(wf, user_input):
            await advance(wf, user_input or {})
    elif user_input is not None:
        if status is WorkflowStatus.ACTIVE:
            await advance(wf, user_input)
        else:
            output.warn(f"--input ignored: workflow '{wf.id}' is {status}, not waiting for input")


async def _drive_loaded(
    output: Output,
    config: CliConfig,
    observer: LiveObserver,
    engine: Engine,
    workflow_id: str,
    config_dir: Path | None,
    verb: str,
    first_move: Callable[[Workflow], Awaitable[None]],
    precheck: Callable[[Workflow], None] | None = None,
) -> int:
    """Load a workflow, make ``first_move`` on it, then run it to its next stop."""
    builder = await engine.builder_for(workflow_id, config_dir=config_dir)
    wf = await builder.load_workflow(workflow_id)
    if wf.record.runtime.get("cluster"):
        return await _hand_to_cluster(
            output, config, engine, builder, wf, verb, first_move, precheck
        )
    if precheck is not None:
        precheck(wf)
    # An embedded runner may be firing this workflow's timer: take it first, or leave it be.
    me = Claimant.here("ruvon-cli")
    taken = await claim_workflow(wf, me)
    if taken is not None:
        raise InvalidWorkflowOperation(
            f"workflow '{wf.id}' is being run by {taken['owner']} (an embedded runner that fired "
            "its timer or deadline); nothing was changed: wait until it reaches its next wait "
            "(`ruvon show` tells), then try again"
        )
    observer.primary = wf.id
    _describe(output, verb, wf)
    driver = Driver(builder, output, config)
    driver.current_id = wf.id
    try:
        async with interruptible(output, engine, config, lambda: driver.current_id):
            await first_move(wf)
            result = await driver.drive(wf, follow_parent=True)
    finally:
        await _release(builder, wf.id, me)
    return print_outcome(output, config, result, observer)


async def _release(builder: WorkflowBuilder, workflow_id: str, me: Claimant) -> None:
    """Drop this command's claim from the workflow as stored (the driver may have reloaded it)."""
    with contextlib.suppress(RuvonError):  # a claim left behind is stale once this process ends
        await release_workflow(await builder.load_workflow(workflow_id), me)


async def _hand_to_cluster(
    output: Output,
    config: CliConfig,
    engine: Engine,
    builder: WorkflowBuilder,
    local: Workflow,
    verb: str,
    first_move: Callable[[Workflow], Awaitable[None]],
    precheck: Callable[[Workflow], None] | None,
) -> int:
    """A workflow started on the cluster: make the move here, let the workers continue."""
    from ruvon.implementations.execution.celery import CeleryExecutionProvider

    execution = CeleryExecutionProvider(settings=engine.settings)
    try:
        execution.check_broker()
        wf = await builder.load_workflow(
            local.id, persistence_provider=engine.persistence, execution_provider=execution
        )
        if precheck is not None:
            precheck(wf)
        _describe(output, verb, wf)
        await first_move(wf)
    finally:
        execution.close()
    output.line(
        ("Handed to the workers: ", "dim"),
        status_text(str(wf.status)),
        ("  follow it with ", "dim"),
        (config.command_line("show", wf.id), "bold"),
    )
    if output.json_result:
        output.json(outcome_data(wf))
    return 1 if wf.status.is_failed else 0


@click.command("resume")
@click.argument("workflow_id")
@input_options(noun="input for the waiting step")
@_CONFIG_DIR_OPTION
@json_result_option
@click.pass_context
def resume_command(
    ctx: click.Context,
    workflow_id: str,
    input_json: str | None,
    input_file: str | None,
    config_dir: Path | None,
    as_json: bool,
) -> None:
    """Continue WORKFLOW_ID from where it was saved, and keep running it here.

    A workflow waiting for a person gets --input (checked against the step's input model
    first). A WAITING_TIMER workflow sleeps until its stored deadline, so a run that was
    killed during a WAIT resumes without starting over.
    """
    config: CliConfig = ctx.obj
    user_input = read_json_input(input_json, input_file)
    settings = config.settings()
    require_database(workflow_id, settings)
    output = Output(json_result=as_json)

    async def first_move(wf: Workflow) -> None:
        await apply_resume_input(output, wf, user_input)

    async def main() -> int:
        observer = LiveObserver(output)
        async with open_engine(settings, observer) as engine:
            return await _drive_loaded(
                output,
                config,
                observer,
                engine,
                workflow_id,
                config_dir,
                "Resuming",
                first_move,
                precheck=lambda wf: check_resumable(wf, user_input),
            )

    ctx.exit(run_async(main()))


@click.command("retry")
@click.argument("workflow_id")
@_CONFIG_DIR_OPTION
@click.pass_context
def retry_command(ctx: click.Context, workflow_id: str, config_dir: Path | None) -> None:
    """Re-run the step WORKFLOW_ID failed at (after fixing the cause), then keep running."""
    config: CliConfig = ctx.obj
    settings = config.settings()
    require_database(workflow_id, settings)
    output = Output()

    async def first_move(wf: Workflow) -> None:
        await wf.retry()

    async def main() -> int:
        observer = LiveObserver(output)
        async with open_engine(settings, observer) as engine:
            return await _drive_loaded(
                output, config, observer, engine, workflow_id, config_dir, "Retrying", first_move
            )

    ctx.exit(run_async(main()))


@click.command("cancel")
@click.argument("workflow_id")
@click.option("--reason", help="Why it was cancelled (stored as the workflow's error).")
@click.pass_context
def cancel_command(ctx: click.Context, workflow_id: str, reason: str | None) -> None:
    """Cancel WORKFLOW_ID (no compensation runs; the status becomes CANCELLED)."""
    config: CliConfig = ctx.obj
    settings = config.settings()
    require_database(workflow_id, settings)
    output = Output()

    async def main() -> None:
        async with open_engine(settings) as engine:
            wf = await engine.open_workflow(workflow_id)
            await wf.cancel(reason)
            output.print(
                Text.assemble(
                    "Cancelled workflow ",
                    (wf.id, "bold"),
                    f" ({wf.workflow_type}): ",
                    status_text(str(wf.status)),
                    f" ({reason})" if reason else "",
                )
            )

    run_async(main())
