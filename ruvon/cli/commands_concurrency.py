"""``ruvon concurrency [KEY]``: who holds the slots of each concurrency key, and who waits.

Read from the store the workflows live in (a cluster's PostgreSQL, the SQLite file), so it
shows every process's holders and waiters: a workflow's own slot (``concurrency`` at the top
of its file), a step's (``concurrency`` on the step) and a queue's (``queues:`` in the
registry, keys ``queue:<name>``). Waiters are listed in the order they will be served.
"""

from __future__ import annotations

from typing import Any

import click
from rich.table import Table
from rich.text import Text

from ruvon.cli.failures import CommandError
from ruvon.cli.params import output_format, output_option
from ruvon.cli.render import Output, iso, local_time
from ruvon.cli.runtime import CliConfig, open_engine, run_async
from ruvon.providers.flow_control import FlowControl, SlotRecord, SlotState

__all__ = ["concurrency_command", "slot_data", "slot_positions"]


def slot_positions(records: list[SlotRecord]) -> dict[tuple[str, str], int]:
    """Each waiter's place in its key's line (1: served next)."""
    places: dict[tuple[str, str], int] = {}
    counts: dict[str, int] = {}
    for record in records:
        if record.state is SlotState.WAITING:
            counts[record.key] = counts.get(record.key, 0) + 1
            places[(record.key, record.holder)] = counts[record.key]
    return places


def slot_data(record: SlotRecord, position: int | None = None) -> dict[str, Any]:
    """One holder or waiter as JSON-ready data (``ruvon concurrency --json``)."""
    return {
        "key": record.key,
        "state": str(record.state),
        "position": position,
        "workflow_id": record.workflow_id,
        "step_name": record.step_name,
        "holder": record.holder,
        "limit": record.limit,
        "priority": record.priority,
        "since": iso(record.since),
        "run_id": record.run_id,
        "owner": record.owner,
    }


def _table(records: list[SlotRecord], places: dict[tuple[str, str], int]) -> Table:
    table = Table(header_style="bold", box=None, pad_edge=False)
    for column in ("KEY", "STATE", "WORKFLOW", "STEP", "PRIORITY", "SINCE", "BOUND TO"):
        table.add_column(column, no_wrap=column != "KEY")
    for record in records:
        place = places.get((record.key, record.holder))
        state = f"waiting #{place}" if place else f"holding (limit {record.limit})"
        bound = f"run {record.run_id}" if record.run_id is not None else (record.owner or "-")
        if record.step_name is None and record.state is SlotState.HOLDING:
            bound = "the workflow, until it ends"
        table.add_row(
            Text(record.key, overflow="fold"),
            Text(state, style="yellow" if place else "green"),
            Text(record.workflow_id),
            Text(record.step_name or "(workflow)"),
            Text(str(record.priority)),
            Text(local_time(record.since, short=True) or "-"),
            Text(bound),
        )
    return table


@click.command("concurrency")
@click.argument("key", required=False)
@click.option("--workflow", "workflow_id", help="Only the slots this workflow holds or waits for.")
@output_option("default")
@click.pass_obj
def concurrency_command(
    config: CliConfig, key: str | None, workflow_id: str | None, output: str | None, as_json: bool
) -> None:
    """Show who holds the slots of each concurrency KEY (every key without one) and who waits.

    Keys are what `concurrency: {key: ...}` rendered to (e.g. customer-42); a queue's
    max_concurrency is the key queue:<name>.
    """
    fmt = output_format(output, as_json)
    out = Output()
    settings = config.settings()

    async def main() -> list[SlotRecord]:
        async with open_engine(settings, read_only=True) as engine:
            store = engine.persistence
            if not isinstance(store, FlowControl):
                raise CommandError(f"{type(store).__name__} keeps no concurrency slots")
            return await store.list_slots(key)

    records = run_async(main())
    places = slot_positions(records)  # places in the whole line, before --workflow narrows it
    if workflow_id is not None:
        records = [r for r in records if r.workflow_id == workflow_id]
    rows = [slot_data(r, places.get((r.key, r.holder))) for r in records]
    if fmt == "json":
        out.json(rows)
    elif fmt == "jsonl":
        out.json_lines(rows)
    elif not records:
        scope = f" of '{key}'" if key else ""
        out.line((f"No slot{scope} is held or waited for.", "dim"))
    else:
        out.print(_table(records, places))
