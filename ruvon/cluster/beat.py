"""The beat schedule: which maintenance task is sent how often (all intervals are settings).

==========================  ==================================  =============================
task                        what it does                        interval
==========================  ==================================  =============================
recover_zombies             re-queue runs whose worker died,    ``RUVON_SWEEP_SECONDS`` (5)
                            fail those that lost too many
redispatch_lost             re-send runs whose message was lost ``RUVON_SWEEP_SECONDS``
reconcile_parents           resume parents whose child ended,   ``RUVON_SWEEP_SECONDS``
                            fire complete joins
fire_due_timers             WAIT timers, approval deadlines     ``RUVON_SWEEP_SECONDS``
poll_scheduled_workflows    start cron-scheduled workflows      ``RUVON_SCHEDULE_POLL_SECONDS``
                                                                (1)
==========================  ==================================  =============================

Each message expires after two of its intervals: while the workers are down, sweeps do not
pile up in the queue (the next one does the same work).
"""

from __future__ import annotations

from typing import Any

from celery import Celery

from ruvon.cluster import beat_metrics as _metrics  # noqa: F401  (RUVON_BEAT_METRICS_PORT)
from ruvon.config import Settings
from ruvon.implementations.execution.celery_config import MAINTENANCE_TASKS, celery_config
from ruvon.implementations.observability.celery_logs import connect_json_logs

__all__ = ["app", "beat_schedule", "create_beat_app"]


def beat_schedule(settings: Settings) -> dict[str, dict[str, Any]]:
    """Celery's ``beat_schedule`` for ``settings``."""
    sweep = settings.sweep_seconds

    def entry(task: str, every: float) -> dict[str, Any]:
        options = {"queue": settings.maintenance_queue, "expires": max(2 * every, 2.0)}
        return {"task": MAINTENANCE_TASKS[task], "schedule": every, "options": options}

    return {
        "ruvon-recover-zombies": entry("recover_zombies", sweep),
        "ruvon-redispatch-lost": entry("redispatch_lost", sweep),
        "ruvon-reconcile": entry("reconcile", sweep),
        "ruvon-fire-due-timers": entry("fire_due_timers", sweep),
        "ruvon-poll-schedules": entry("poll_schedules", settings.schedule_poll_seconds),
    }


def create_beat_app(settings: Settings | None = None) -> Celery:
    """A Celery app that only sends the maintenance tasks on schedule."""
    settings = settings or Settings.from_env()
    beat = Celery("ruvon-beat")
    beat.conf.update(celery_config(settings))
    beat.conf.beat_schedule = beat_schedule(settings)
    # Wake at least every second: the cron poll's resolution.
    beat.conf.beat_max_loop_interval = min(settings.schedule_poll_seconds, 5.0)
    return beat


app = create_beat_app()
connect_json_logs()  # RUVON_LOG_FORMAT=json
