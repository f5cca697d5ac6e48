"""The Ruvon beat: the periodic sweeps and the cron poll (``celery -A beat beat``, ``ruvon beat``).

The beat only sends tasks, by name, to the maintenance queue; workers run them
(``worker/tasks.py`` → :mod:`ruvon.maintenance`). Run one beat per cluster; two at once are
safe (every sweep is), only wasteful.
"""

from __future__ import annotations

from beat.schedule import app, beat_schedule, create_beat_app

__all__ = ["app", "beat_schedule", "create_beat_app"]
