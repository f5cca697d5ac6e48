"""The Ruvon beat: the periodic sweeps and the cron poll (``celery -A beat beat``, ``ruvon beat``).

The beat only sends tasks, by name, to the maintenance queue; workers run them
(``worker/tasks.py`` → :mod:`ruvon.maintenance`). Run one beat per cluster; two at once are
safe (every sweep is), only wasteful.
"""

from __future__ import annotations

from beat import metrics as _metrics  # noqa: F401  (RUVON_BEAT_METRICS_PORT: queue metrics)
from beat.schedule import app, beat_schedule, create_beat_app
from ruvon.implementations.observability.celery_logs import connect_json_logs

connect_json_logs()  # RUVON_LOG_FORMAT=json

__all__ = ["app", "beat_schedule", "create_beat_app"]
