"""The Ruvon worker, as Celery finds it: ``celery -A worker worker`` (``ruvon worker``).

A thin entry point: the worker's runtime lives in :mod:`ruvon.cluster` (the app, its tasks,
each process's resources). ``worker.app`` is the Celery application.
"""

from __future__ import annotations

from ruvon.cluster.app import app

__all__ = ["app"]
