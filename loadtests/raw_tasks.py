"""Empty Celery tasks for the raw-Celery baselines (:mod:`loadtests.raw_celery`).

They run in a real Ruvon worker, so they see its configuration (acks late, prefetch 1, JSON,
events, results in Redis): the baselines measure Celery itself under the settings Ruvon uses.
Load them with ``ruvon worker --queues Q -- --include loadtests.raw_tasks``. Senders use the
names (``loadtests.raw_celery.NOOP``...), never this module, which would create the worker's app
in the sender.
"""

from __future__ import annotations

from typing import Any

from worker.app import app

__all__ = ["echo", "join", "noop"]


@app.task(name="ruvon.bench.noop")
def noop() -> None:
    """Do nothing: the cost measured is Celery's alone."""


@app.task(name="ruvon.bench.echo")
def echo(value: Any) -> Any:
    """Return the argument (a chord header task)."""
    return value


@app.task(name="ruvon.bench.join")
def join(results: list[Any]) -> int:
    """A chord callback: how many header results arrived."""
    return len(results)
