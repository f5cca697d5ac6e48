"""``ruvon signal ID NAME --data JSON``: send a named event to a workflow.

A workflow waiting at a WAIT_FOR_EVENT step for NAME moves on (embedded: here, as ``ruvon
resume`` runs it; on a cluster: the workers continue); otherwise the signal is kept until the
workflow reaches that wait. ``--event-id`` makes a retried send safe: the same id twice is
applied once.
"""

from __future__ import annotations

from pathlib import Path

import click

from ruvon.cli.commands_control import _CONFIG_DIR_OPTION, _drive_loaded
from ruvon.cli.inputs import input_options, read_json_input
from ruvon.cli.live import LiveObserver
from ruvon.cli.render import Output
from ruvon.cli.runtime import CliConfig, open_engine, require_database, run_async
from ruvon.embedded.claims import Claimant
from ruvon.signals import SignalOutcome, send_signal
from ruvon.workflow import Workflow

__all__ = ["signal_command"]

_SAID = {
    SignalOutcome.DELIVERED: "delivered: the workflow was waiting for it",
    SignalOutcome.STORED: "stored: the workflow takes it when it reaches its wait for it",
    SignalOutcome.DUPLICATE: "duplicate: a signal with this event id was already sent; "
    "nothing changed",
}


@click.command("signal")
@click.argument("workflow_id")
@click.argument("name")
@input_options(noun="event's data")
@click.option(
    "--event-id",
    help="The event's id (default: a new one); a second send with the same id changes nothing.",
)
@_CONFIG_DIR_OPTION
@click.pass_context
def signal_command(
    ctx: click.Context,
    workflow_id: str,
    name: str,
    input_json: str | None,
    input_file: str | None,
    event_id: str | None,
    config_dir: Path | None,
) -> None:
    """Send the event NAME (with --data) to WORKFLOW_ID's WAIT_FOR_EVENT step."""
    config: CliConfig = ctx.obj
    data = read_json_input(input_json, input_file) or {}
    settings = config.settings()
    require_database(workflow_id, settings)
    output = Output()
    actor = Claimant.here("ruvon-cli").owner

    async def first_move(wf: Workflow) -> None:
        sent = await send_signal(wf, name, data, event_id=event_id, actor=actor)
        output.line(
            ("Signal ", "dim"), (name, "bold"), (f" (event {sent.event_id}) ", "dim"),
            _SAID[sent.outcome],
        )  # fmt: skip

    async def main() -> int:
        observer = LiveObserver(output)
        async with open_engine(settings, observer) as engine:
            return await _drive_loaded(
                output, config, observer, engine, workflow_id, config_dir, "Signalling",
                first_move,
            )  # fmt: skip

    ctx.exit(run_async(main()))
