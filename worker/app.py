"""The worker's Celery app and process helpers, under the name deployments and scripts use.

Everything here lives in :mod:`ruvon.cluster` (:mod:`~ruvon.cluster.app`,
:mod:`~ruvon.cluster.process`); this module only keeps ``from worker.app import app`` working.
"""

from __future__ import annotations

from ruvon.cluster.app import app, create_app
from ruvon.cluster.process import process_persistence, process_runner

__all__ = ["app", "create_app", "process_persistence", "process_runner"]
