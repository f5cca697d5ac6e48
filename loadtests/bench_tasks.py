"""The empty tasks both Celery baselines run, registered on a given app under fixed names.

:mod:`loadtests.default_celery` registers them on a Celery app with the default configuration,
:mod:`loadtests.raw_tasks` on the Ruvon worker's app; the bodies and names are the same, so the
two baselines differ only in how Celery is configured. Senders use the names below (by
``send_task`` or ``app.signature``), never the task objects, so a client needs no task module.

Completion of tasks that store no result (``ignore_result=True``) is observed with a sentinel:
the last message of a batch is :data:`MARK_DONE`, whose body ``RPUSH``-es to a run-unique key the
client waits on with ``BLPOP`` (:mod:`loadtests.raw_celery`).
"""

from __future__ import annotations

from functools import cache
from typing import Any

import redis
from celery import Celery

__all__ = ["ECHO", "JOIN", "MARK_DONE", "NOOP", "NOOP_IGNORED", "register_bench_tasks"]

NOOP = "ruvon.bench.noop"
"""Does nothing; its result (None) goes to the backend: ``.delay().get()`` and chain links."""
NOOP_IGNORED = "ruvon.bench.noop_ignored"
"""Does nothing and stores no result (``ignore_result=True``): the empty-task throughput."""
MARK_DONE = "ruvon.bench.mark_done"
"""``mark_done(key)``: ``RPUSH key 1`` (no result stored): the sentinel ending a batch."""
ECHO = "ruvon.bench.echo"
"""``echo(value)`` returns ``value``: a chord's or a group's header task."""
JOIN = "ruvon.bench.join"
"""``join(results)`` returns ``len(results)``: a chord's callback."""


def register_bench_tasks(app: Celery) -> None:
    """Register the five tasks on ``app``."""

    @app.task(name=NOOP)
    def noop() -> None:
        """Do nothing: the cost measured is Celery's alone."""

    @app.task(name=NOOP_IGNORED, ignore_result=True)
    def noop_ignored() -> None:
        """Do nothing and store nothing."""

    @app.task(name=MARK_DONE, ignore_result=True, bind=True)
    def mark_done(task: Any, key: str) -> None:
        """Tell the waiting client that every task sent before this one has been taken."""
        _redis(task.app.conf.broker_url).rpush(key, 1)

    @app.task(name=ECHO)
    def echo(value: Any) -> Any:
        """Return the argument."""
        return value

    @app.task(name=JOIN)
    def join(results: list[Any]) -> int:
        """How many header results arrived."""
        return len(results)


@cache
def _redis(url: str) -> redis.Redis:
    # One connection per pool process, opened by the warm-up's sentinel, not by a measured one.
    return redis.Redis.from_url(url)
