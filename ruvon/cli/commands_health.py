"""``ruvon health``: the cluster on one screen, or a worker's liveness probe.

* ``ruvon health`` checks the database (connect, schema revision), the migrations (current vs
  head), the broker (ping) and the workers (their heartbeat files in ``RUVON_HEALTH_DIR``;
  ``--ping`` also asks them over the broker). Exit 0 when everything that applies is healthy,
  1 otherwise; ``--json`` for machines.
* ``ruvon health --worker-file DIR/NODE.alive --max-age 30`` only looks at one heartbeat file
  written by a worker (``.ready`` for readiness): exit 0 if it was written within the limit,
  else 1. No database, broker or Celery involved, so it is cheap enough for a Kubernetes exec
  probe.
"""

from __future__ import annotations

from pathlib import Path

import click
from rich.text import Text

from ruvon.cli.failures import EXIT_FAILURE
from ruvon.cli.render import Output, fields_grid
from ruvon.cli.runtime import CliConfig, run_async

_DEFAULT_MAX_AGE = 30.0


@click.command("health")
@click.option(
    "--worker-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Probe mode: exit 0 if this heartbeat file (.alive or .ready) is younger than "
    "--max-age, else 1.",
)
@click.option(
    "--max-age",
    type=click.FloatRange(min=0),
    default=_DEFAULT_MAX_AGE,
    show_default=True,
    help="Seconds after which a heartbeat file is stale.",
)
@click.option(
    "--health-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where the workers keep their heartbeat files (default: $RUVON_HEALTH_DIR).",
)
@click.option("--ping", is_flag=True, help="Also ask the workers over the broker (Celery ping).")
@click.option(
    "--timeout",
    type=click.FloatRange(min=0.1),
    default=5.0,
    show_default=True,
    help="Seconds each check may take.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
def health_command(
    config: CliConfig,
    worker_file: Path | None,
    max_age: float,
    health_dir: Path | None,
    ping: bool,
    timeout: float,
    as_json: bool,
) -> None:
    """Check database, migrations, broker and workers; exit 1 if something is unhealthy."""
    output = Output()
    if worker_file is not None:
        _probe(output, worker_file, max_age, as_json)
        return
    from ruvon.implementations.observability.health import health
    from ruvon.implementations.observability.settings import ObservabilitySettings

    settings = config.settings()
    directory = health_dir or ObservabilitySettings.from_env().health_dir
    report = run_async(
        health(settings, health_dir=directory, max_age=max_age, ping=ping, timeout=timeout)
    )
    if as_json:
        output.json(report.as_dict())
    else:
        rows = [(check.name, _status(check.ok, check.summary)) for check in report.checks]
        output.print(fields_grid(rows))
        for worker in report.as_dict()["workers"].get("workers", []):
            state = "ready" if worker["ready"] else "alive" if worker["alive"] else "STALE"
            output.line(f"  {worker['node']}: {state}, written {worker['age']:.1f} s ago")
    if not report.ok:
        raise click.exceptions.Exit(EXIT_FAILURE)


def _status(ok: bool | None, summary: str) -> Text:
    if ok is None:
        return Text.assemble(("-  ", "dim"), (summary, "dim"))
    return Text.assemble(("ok  ", "green") if ok else ("FAIL  ", "bold red"), summary)


def _probe(output: Output, path: Path, max_age: float, as_json: bool) -> None:
    from ruvon.implementations.observability.heartbeat_files import file_age

    age = file_age(path)
    ok = age is not None and age <= max_age
    if as_json:
        output.json({"ok": ok, "file": str(path), "age": age, "max_age": max_age})
    elif age is None:
        output.err.print(Text(f"unhealthy: {path} does not exist (the worker is not running)"))
    elif not ok:
        output.err.print(
            Text(f"unhealthy: {path} was written {age:.1f} s ago (limit {max_age:g} s)")
        )
    else:
        output.line(f"ok: {path} written {age:.1f} s ago")
    if not ok:
        raise click.exceptions.Exit(EXIT_FAILURE)
