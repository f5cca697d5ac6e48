"""``ruvon beat`` (the cluster's beat: sweeps and cron) and ``ruvon scan-zombies`` (expired leases).

``ruvon beat`` replaces itself with ``python -m ruvon.cluster.beat`` (like ``ruvon worker`` with
Celery: the beat is PID 1 in a container, and imports the step modules from the current
directory). The beat runs the sweeps itself (:mod:`ruvon.cluster.beat`). ``ruvon
scan-zombies`` lists step runs whose worker stopped renewing its lease; ``--fix`` runs the
beat's zombie sweep once, here (re-queue, or fail the workflows of runs that used up
``RUVON_CRASH_ATTEMPTS``).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click
from rich.table import Table

from ruvon.cli.commands_worker import LOGLEVEL_OPTION, exec_celery, require_module
from ruvon.cli.failures import CommandError
from ruvon.cli.render import Output, format_duration, short_id
from ruvon.cli.runtime import CliConfig, run_async

if TYPE_CHECKING:
    from ruvon.cluster.sweeps import SweepReport
    from ruvon.config import Settings
    from ruvon.implementations.persistence.postgres import PostgresPersistenceProvider

#: The beat's module, run with ``python -m`` (in the installed package, like the worker's app).
BEAT_MODULE = "ruvon.cluster.beat"


def beat_argv(*, loglevel: str) -> list[str]:
    """The argv of ``python -m ruvon.cluster.beat`` with these options."""
    return [sys.executable, "-m", BEAT_MODULE, "--loglevel", loglevel]


@click.command(
    "beat",
    context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False},
)
@LOGLEVEL_OPTION
@click.option(
    "--schedule-file",
    type=click.Path(dir_okay=False, path_type=Path),
    hidden=True,
    help="Ignored (the beat no longer runs Celery beat, which kept its last run times there).",
)
@click.argument("celery_args", nargs=-1, type=click.UNPROCESSED, metavar="")
@click.pass_obj
def beat_command(
    config: CliConfig, loglevel: str, schedule_file: Path | None, celery_args: tuple[str, ...]
) -> None:
    """Run the cluster's beat: sweeps and cron (replaces this process with the beat's own).

    The sweeps (zombies, lost messages, parents and joins, timers) run every
    RUVON_SWEEP_SECONDS and the cron poll every RUVON_SCHEDULE_POLL_SECONDS, here, against
    RUVON_DATABASE_URL; the runs they queue go to the workers through RUVON_BROKER_URL.
    """
    # Its sweeps announce the runs they queue through Celery's broker.
    require_module("celery", "ruvon beat needs Celery: pip install 'ruvon[celery,postgres]'")
    ignored = [*(["--schedule-file"] if schedule_file is not None else []), *celery_args]
    if ignored:
        click.echo(
            f"ruvon beat: ignoring {' '.join(ignored)} (Celery beat options: the beat no longer "
            "runs Celery beat)",
            err=True,
        )
    if config.db_url:
        os.environ["RUVON_DATABASE_URL"] = config.settings().database_url
    exec_celery(beat_argv(loglevel=loglevel.upper()))


@click.command("scan-zombies")
@click.option(
    "--threshold",
    type=click.FloatRange(min=0),
    default=0.0,
    show_default=True,
    help="Only leases expired at least this many seconds ago.",
)
@click.option("--fix", is_flag=True, help="Run the zombie sweep once: re-queue or fail them.")
@click.option("--limit", type=click.IntRange(min=1), default=100, show_default=True)
@click.pass_obj
def scan_zombies_command(config: CliConfig, threshold: float, fix: bool, limit: int) -> None:
    """List step runs whose worker died or hung (their lease expired); --fix recovers them."""
    settings = config.settings()
    if not settings.database_url.split("://", 1)[0].startswith("postgres"):
        raise CommandError(
            "scan-zombies reads the cluster's step runs: set RUVON_DATABASE_URL (or --db) to "
            "its PostgreSQL database"
        )
    output = Output()

    async def main() -> None:
        from ruvon.implementations.persistence.postgres import PostgresPersistenceProvider

        store = PostgresPersistenceProvider(
            settings.database_url, 1, 2, statement_timeout=settings.statement_timeout
        )
        await store.initialize()
        try:
            zombies = await store.expired_leases(threshold, limit)
            table = Table("run", "workflow", "type", "step", "attempt", "worker", "expired for")
            for z in zombies:
                step = f"{z.step_name}{f' [{z.branch}]' if z.branch else ''} ({z.kind})"
                table.add_row(
                    str(z.run_id),
                    short_id(z.workflow_id),
                    z.workflow_type,
                    step,
                    str(z.attempt),
                    z.worker or "?",
                    format_duration(z.expired_for),
                )
            if zombies:
                output.print(table)
            output.line(f"{len(zombies)} step run(s) with an expired lease")
            if fix and zombies:
                report = await _sweep_once(store, settings)
                output.line(
                    f"re-queued {report.requeued}, failed {report.failed} workflow(s) "
                    "(FAILED_WORKER_CRASH / rolled back)"
                )
        finally:
            await store.close()

    run_async(main())


async def _sweep_once(store: PostgresPersistenceProvider, settings: Settings) -> SweepReport:
    """The zombie sweep, run here with a Celery dispatcher and the configured registry."""
    from ruvon.cluster.runner import StepRunner
    from ruvon.cluster.sweeps import Sweeps
    from ruvon.implementations.execution.celery import CeleryExecutionProvider

    execution = CeleryExecutionProvider(settings=settings)
    try:
        runner = StepRunner.for_settings(
            settings, store, execution, owner=f"scan-zombies:{os.getpid()}"
        )
        return await Sweeps(runner, settings).recover_zombies()
    finally:
        execution.close()
