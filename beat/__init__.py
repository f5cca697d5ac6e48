"""The Ruvon beat, as Celery finds it: ``celery -A beat beat`` (``ruvon beat``).

A thin entry point: the beat lives in :mod:`ruvon.cluster.beat` (its schedule, its metrics).
The beat only sends tasks, by name, to the maintenance queue; workers run them
(:mod:`ruvon.cluster.tasks` → :mod:`ruvon.cluster.sweeps`). Run one beat per cluster; two at
once are safe (every sweep is), only wasteful.
"""

from __future__ import annotations

from ruvon.cluster.beat import app, beat_schedule, create_beat_app

__all__ = ["app", "beat_schedule", "create_beat_app"]
