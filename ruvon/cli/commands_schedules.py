"""``ruvon schedules``: list, pause and resume the schedules that start workflows.

Schedules are rows of ``scheduled_workflows`` in the database of ``--db`` /
``RUVON_DATABASE_URL``: written by registry entries with a ``schedule`` (``registry:<type>``)
and by CRON_SCHEDULE steps; the beat starts their workflows. A registry schedule answers to its
type as well (``ruvon schedules pause Nightly`` for ``registry:Nightly``). An unknown name exits
4; a bare name that is both a schedule and a registry type exits 2, naming both (``--exact``
takes the name as written).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import click
from rich.table import Table
from rich.text import Text

from ruvon.cli.commands_inspect import json_option
from ruvon.cli.failures import EXIT_NOT_FOUND, EXIT_USAGE, CommandError
from ruvon.cli.render import Output, iso, local_time
from ruvon.cli.runtime import CliConfig, missing_sqlite_file, open_engine, run_async
from ruvon.cluster.schedules import (
    AmbiguousScheduleName,
    ScheduleNotFound,
    set_schedule_enabled,
)
from ruvon.records import ScheduleRecord


def schedule_data(schedule: ScheduleRecord) -> dict[str, Any]:
    """One schedule as JSON-ready data (``ruvon schedules list --json``)."""
    return {
        "name": schedule.name,
        "workflow_type": schedule.workflow_type,
        "spec": schedule.cron,
        "enabled": schedule.enabled,
        "next_run_at": iso(schedule.next_run_at),
        "last_run_at": iso(schedule.last_run_at),
        "initial_data": schedule.initial_data,
        "source_workflow_id": schedule.source_workflow_id,
    }


def schedule_table(schedules: Iterable[ScheduleRecord]) -> Table:
    """The ``ruvon schedules list`` table."""
    table = Table(header_style="bold", box=None, pad_edge=False)
    table.add_column("NAME", no_wrap=True)
    table.add_column("TYPE")
    table.add_column("SPEC", no_wrap=True)
    table.add_column("ENABLED", no_wrap=True)
    table.add_column("NEXT RUN", no_wrap=True)
    table.add_column("LAST RUN", no_wrap=True)
    for schedule in schedules:
        table.add_row(
            Text(schedule.name),
            Text(schedule.workflow_type, no_wrap=True, overflow="ellipsis"),
            Text(schedule.cron),
            Text("yes", style="green") if schedule.enabled else Text("paused", style="yellow"),
            Text(local_time(schedule.next_run_at) or "-"),
            Text(local_time(schedule.last_run_at) or "-"),
        )
    return table


@click.group("schedules")
def schedules_group() -> None:
    """List, pause and resume the schedules that start workflows (fired by `ruvon beat`)."""


@schedules_group.command("list")
@json_option
@click.pass_obj
def list_schedules_command(config: CliConfig, as_json: bool) -> None:
    """List every schedule: spec, enabled, next and last run (local time)."""
    output = Output()

    async def main() -> list[ScheduleRecord]:
        async with open_engine(config.settings(), read_only=True) as engine:
            return await engine.persistence.list_schedules()

    schedules = run_async(main())
    if as_json:
        output.json([schedule_data(schedule) for schedule in schedules])
    elif not schedules:
        output.line(("No schedules.", "dim"))
    else:
        output.print(schedule_table(schedules))


def _set_enabled(config: CliConfig, name: str, enabled: bool, exact: bool) -> ScheduleRecord:
    settings = config.settings()
    missing = missing_sqlite_file(settings)
    if missing is not None:  # say so, rather than create an empty database to look in
        raise CommandError(
            f"no schedule named '{name}': database {missing} does not exist (pass --db)",
            EXIT_NOT_FOUND,
        )

    async def main() -> ScheduleRecord:
        async with open_engine(settings) as engine:
            return await set_schedule_enabled(engine.persistence, name, enabled, exact=exact)

    try:
        return run_async(main())
    except ScheduleNotFound as exc:
        raise CommandError(str(exc), EXIT_NOT_FOUND) from None
    except AmbiguousScheduleName as exc:
        raise CommandError(str(exc), EXIT_USAGE) from None


_EXACT_HELP = "NAME is the full name as `list` shows it, never a registry type."


@schedules_group.command("pause")
@click.argument("name")
@click.option("--exact", is_flag=True, help=_EXACT_HELP)
@click.pass_obj
def pause_command(config: CliConfig, name: str, exact: bool) -> None:
    """Stop NAME from starting workflows until it is resumed (a registry type works too)."""
    schedule = _set_enabled(config, name, False, exact)
    Output().line(("Paused ", "bold"), (schedule.name, "bold cyan"), f" ({schedule.cron})")


@schedules_group.command("resume")
@click.argument("name")
@click.option("--exact", is_flag=True, help=_EXACT_HELP)
@click.pass_obj
def resume_command(config: CliConfig, name: str, exact: bool) -> None:
    """Let NAME start workflows again, from its next tick after now (missed ticks skipped)."""
    schedule = _set_enabled(config, name, True, exact)
    Output().line(
        ("Resumed ", "bold"),
        (schedule.name, "bold cyan"),
        f" ({schedule.cron}), next run {local_time(schedule.next_run_at) or '-'}",
    )
