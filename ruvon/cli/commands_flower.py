"""``ruvon flower``: Flower, Celery's web monitor, on the cluster's broker.

The command replaces itself with ``celery -A ruvon.cluster.app flower`` (like ``ruvon worker``:
in a container Flower is PID 1 and gets the SIGTERM). Flower uses the worker's Celery app, so it
reads the same ``RUVON_BROKER_URL`` and ``RUVON_BROKER_KEY_PREFIX`` and sees the workers' task
events: ``ruvon.run.step`` / ``branch`` / ``join`` / ``advance`` with ``(run_id, workflow_id,
step, branch)``; the beat's sweeps are no tasks (they run in the beat's process). Workers send
events only when asked (they cost three broker writes per task): this command asks every running
worker before Flower starts, and Flower asks again every few seconds, which reaches workers
started later (``RUVON_TASK_EVENTS=1`` makes workers send them from their start). A step a
worker continued in the same task (see the README) is part of that task: it has no task of its
own to show.
Its Prometheus metrics (``flower_*``) are at ``/metrics``, its HTTP API at ``/api/`` (which
Flower serves without authentication only with ``FLOWER_UNAUTHENTICATED_API=true``).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence

import click

from ruvon.cli.commands_worker import WORKER_APP, exec_celery, require_module

DEFAULT_PORT = 5555

logger = logging.getLogger("ruvon.cli")


def ask_workers_for_events() -> None:
    """Broadcast ``enable_events`` to the cluster's workers (best effort: Flower retries)."""
    from celery import Celery

    from ruvon.config import Settings
    from ruvon.implementations.execution.celery_config import celery_config

    app = Celery("ruvon-flower", set_as_current=False)
    app.conf.update(celery_config(Settings.from_env()))
    try:
        app.control.enable_events()
    except Exception as exc:  # Flower reports the broker itself; this only saves it a wait
        logger.warning("could not ask the workers for task events yet: %s", exc)
    finally:
        app.close()


def celery_flower_argv(*, port: int, address: str, extra: Sequence[str] = ()) -> list[str]:
    """The argv of ``python -m celery -A ruvon.cluster.app flower`` with these options."""
    # Flower parses its own options with tornado: only the `--name=value` form is understood.
    return [
        *(sys.executable, "-m", "celery", "-A", WORKER_APP, "flower"),
        *(f"--port={port}", f"--address={address}"),
        *extra,
    ]


def _check_installed() -> None:
    require_module("flower", "ruvon flower needs Flower: pip install 'ruvon[celery]'")


@click.command(
    "flower",
    context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False},
)
@click.option(
    "--port",
    "-p",
    type=click.IntRange(1, 65535),
    default=DEFAULT_PORT,
    show_default=True,
    help="HTTP port of the web UI, the API and /metrics.",
)
@click.option(
    "--address",
    default="127.0.0.1",
    show_default=True,
    help="Interface to listen on (0.0.0.0 in a container).",
)
@click.argument("flower_args", nargs=-1, type=click.UNPROCESSED, metavar="[-- FLOWER_OPTIONS]")
def flower_command(port: int, address: str, flower_args: tuple[str, ...]) -> None:
    """Run Flower on the cluster's broker (replaces this process with `celery flower`).

    It shows the workers and Ruvon's tasks (ruvon.run.*) live, from the
    workers' task events. Options after `--` go to Flower unchanged, in its `--name=value`
    form, e.g. `-- --basic_auth=user:password --persistent=True`.
    """
    _check_installed()
    argv = celery_flower_argv(port=port, address=address, extra=flower_args)
    ask_workers_for_events()
    exec_celery(argv)
