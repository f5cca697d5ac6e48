"""``ruvon worker``: a Celery worker of the cluster (``celery -A ruvon.cluster.app worker``).

The command replaces itself with Celery (``os.execv``) instead of running it as a child: in a
container Celery then *is* PID 1, so ``docker stop`` / Kubernetes' SIGTERM reaches it directly
and triggers its warm shutdown (finish running tasks, close each process's bridge and pool),
and there is no wrapper process to forward signals or exit codes. Celery runs as
``python -m celery`` with this interpreter, so the worker uses the same environment as ``ruvon``
and imports the step modules from the current directory (``-m`` puts it first on ``sys.path``).

The Celery app is :mod:`ruvon.cluster.app`, part of the installed package: a wheel runs a
cluster on its own, and no top-level ``worker`` package is needed (a user's own ``worker``
package cannot shadow it). This module only names the app on Celery's command line.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

import click

from ruvon.cli.runtime import REGISTRY_FILE_NAME, CliConfig
from ruvon.errors import ConfigurationError
from ruvon.implementations.observability.tracing_settings import tracing_from_env

#: The Celery app of the cluster's workers (and of Flower), as ``celery -A`` takes it.
WORKER_APP = "ruvon.cluster.app"

#: ``--loglevel`` of the commands that exec Celery (worker, beat).
LOGLEVEL_OPTION = click.option(
    "--loglevel",
    "-l",
    default="INFO",
    show_default=True,
    type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"], case_sensitive=False),
    help="Celery log level.",
)


def celery_worker_argv(
    *,
    queues: str | None,
    concurrency: int | None,
    loglevel: str,
    extra: Sequence[str] = (),
) -> list[str]:
    """The argv of ``python -m celery -A ruvon.cluster.app worker`` with these options."""
    argv = [sys.executable, "-m", "celery", "-A", WORKER_APP, "worker", "--loglevel", loglevel]
    if queues:
        names = [name.strip() for name in queues.split(",") if name.strip()]
        if not names:
            raise ConfigurationError(f"--queues {queues!r} names no queue (use e.g. default,gpu)")
        argv += ["--queues", ",".join(names)]
    if concurrency is not None:
        argv += ["--concurrency", str(concurrency)]
    return [*argv, *extra]


def require_module(module: str, message: str) -> None:
    """``ConfigurationError(message)`` unless ``module`` is installed."""
    if importlib.util.find_spec(module) is None:
        raise ConfigurationError(message)


def exec_celery(argv: list[str]) -> NoReturn:
    """Replace this process with Celery (see the module docstring: Celery becomes PID 1)."""
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(argv[0], argv)


def _check_installed() -> None:
    require_module("celery", "ruvon worker needs Celery: pip install 'ruvon[celery,postgres]'")
    # A bad RUVON_OTEL stops the worker here, not in every task its pool processes take.
    tracing = tracing_from_env()
    if tracing is not None:
        sdk = "opentelemetry.sdk" if tracing.mode != "global" else "opentelemetry.trace"
        require_module(
            sdk, f"RUVON_OTEL={tracing.mode} needs OpenTelemetry: pip install 'ruvon[otel]'"
        )


@click.command(
    "worker",
    context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False},
)
@click.option(
    "--queues",
    "-Q",
    metavar="Q1,Q2",
    help="Comma-separated queues to consume (default: $RUVON_DEFAULT_QUEUE, i.e. 'default'; "
    "the beat runs its sweeps itself, so no worker needs the maintenance queue).",
)
@click.option(
    "--concurrency",
    "-c",
    type=click.IntRange(min=1),
    help="Pool processes (default: one per CPU).",
)
@click.option(
    "--loglevel",
    "-l",
    default="INFO",
    show_default=True,
    type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"], case_sensitive=False),
    help="Celery's log level (with --embedded: the runner's).",
)
@click.option(
    "--embedded",
    is_flag=True,
    help="No cluster: keep time on the embedded SQLite file (fire due WAIT timers, approval "
    "deadlines and schedules, and run each woken workflow here to its next wait).",
)
@click.option(
    "--once", is_flag=True, help="With --embedded: make one pass and exit (for cron and tests)."
)
@click.option(
    "--interval",
    type=click.FloatRange(min=0, min_open=True, max=3600),
    help="With --embedded: seconds between passes  [default: 1]",
)
@click.option(
    "--registry",
    type=click.Path(dir_okay=False, path_type=Path),
    help="With --embedded: the registry whose schedules to start and whose types to know "
    "(default: $RUVON_REGISTRY_FILE if it exists).",
)
@click.option(
    "--config-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help=f"With --embedded: the directory holding that {REGISTRY_FILE_NAME}.",
)
@click.argument("celery_args", nargs=-1, type=click.UNPROCESSED, metavar="[-- CELERY_OPTIONS]")
@click.pass_obj
def worker_command(
    config: CliConfig,
    queues: str | None,
    concurrency: int | None,
    loglevel: str,
    embedded: bool,
    once: bool,
    interval: float | None,
    registry: Path | None,
    config_dir: Path | None,
    celery_args: tuple[str, ...],
) -> None:
    """Run a Celery worker of the Ruvon cluster (replaces this process with Celery).

    Broker and database come from RUVON_BROKER_URL and RUVON_DATABASE_URL (or --db).
    Options after `--` go to `celery worker` unchanged, e.g. `-- --hostname gpu1@%h`.

    With --embedded it is the embedded mode's runner instead: on the SQLite file (--db), every
    --interval seconds it fires the WAIT timers, approval timeouts (on_timeout) and registry
    schedules that are due, running each workflow it wakes here, to its next wait. Two runners
    on one file are safe (each timer and each schedule tick fires once). SIGTERM / Ctrl-C stop it
    cleanly; --once makes one pass and exits.
    """
    embedded_only = {
        "--once": once,
        "--interval": interval is not None,
        "--registry": registry is not None,
        "--config-dir": config_dir is not None,
    }
    if not embedded:
        given = [name for name, used in embedded_only.items() if used]
        if given:
            raise click.UsageError(f"{', '.join(given)} only go with --embedded")
    else:
        cluster_only = {
            "--queues": queues is not None,
            "--concurrency": concurrency is not None,
            "-- CELERY_OPTIONS": bool(celery_args),
        }
        given = [name for name, used in cluster_only.items() if used]
        if given:
            raise click.UsageError(
                f"{', '.join(given)}: Celery worker options, not for --embedded (no Celery runs)"
            )
        from ruvon.cli.commands_embedded import run_embedded_runner

        run_embedded_runner(
            config,
            once=once,
            interval=interval if interval is not None else 1.0,
            registry=registry,
            config_dir=config_dir,
            loglevel=loglevel.upper(),
        )
        return
    if queues is None:
        queues = config.settings().default_queue
    argv = celery_worker_argv(
        queues=queues, concurrency=concurrency, loglevel=loglevel.upper(), extra=celery_args
    )
    _check_installed()
    if config.db_url:  # --db wins over the environment, as for every command
        os.environ["RUVON_DATABASE_URL"] = config.settings().database_url
    exec_celery(argv)
