"""The Ruvon worker from a checkout: ``celery -A worker worker`` (= ``ruvon worker``).

A thin entry point kept for deployments that run the checkout with this directory on the path:
the worker's runtime, its Celery app included, is :mod:`ruvon.cluster` (installed with the
package; ``celery -A ruvon.cluster.app worker`` needs no checkout). ``worker.app`` is that app.
"""

from __future__ import annotations

from ruvon.cluster.app import app

__all__ = ["app"]
