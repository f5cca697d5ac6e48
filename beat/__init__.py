"""The Ruvon beat from a checkout: ``python -m beat`` (= ``ruvon beat``), ``celery -A beat beat``.

A thin entry point: the beat lives in :mod:`ruvon.cluster.beat`, installed with the package
(``ruvon beat`` runs ``python -m ruvon.cluster.beat``, which needs no checkout). It runs the
cluster's sweeps (zombies, lost messages, parents and joins, timers, cron) in its own process
against PostgreSQL and announces the runs they queue through the broker; it sends no
maintenance tasks. Run one beat per cluster; two at once are safe (every sweep is), only
wasteful.

``app`` is a Celery app kept for one release so that ``celery -A beat beat`` still works: its
Celery beat has nothing to send and hosts the Ruvon beat (:mod:`ruvon.cluster.celery_beat`).
"""

from __future__ import annotations

from ruvon.cluster.celery_beat import app, create_beat_app

__all__ = ["app", "create_beat_app"]
