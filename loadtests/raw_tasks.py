"""The baseline tasks (:mod:`loadtests.bench_tasks`) on the Ruvon worker's app.

They run in a real Ruvon worker, so they see its configuration
(:func:`ruvon.implementations.execution.celery_config.celery_config`: acks late, reject on
worker lost, prefetch 1, JSON, task events, ``task_track_started``, results in Redis) and its
log level (``ruvon worker`` runs at INFO): the "raw Celery under Ruvon's worker settings"
baseline. Load them with ``ruvon worker --queues Q -- --include loadtests.raw_tasks``. Senders
use the names (``loadtests.bench_tasks.NOOP``...), never this module, which would create the
worker's app in the sender.
"""

from __future__ import annotations

from loadtests.bench_tasks import register_bench_tasks
from worker.app import app

register_bench_tasks(app)
