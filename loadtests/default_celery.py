"""Celery with its default configuration: the baseline of a user who picked plain Celery.

The worker is started as that user would start it, ``celery -A loadtests.default_celery worker
--concurrency 2`` (prefork, Celery's default pool; default log level WARNING; mingle, gossip and
heartbeats on), by :func:`loadtests.raw_celery.default_celery_worker`, which adds only
``--hostname`` (so its readiness ping has a known destination). The app is
``Celery(broker=URL, backend=URL)`` on Redis, and nothing else is configured: prefetch
multiplier 4, early acknowledgement, no task events, no ``task_track_started``, JSON, results
kept a day, the default queue ``celery``. The one setting added is a run-unique
``global_keyprefix`` on the broker's and the backend's keys (``broker_transport_options``,
``result_backend_transport_options``), so that the baseline shares the Redis server with Ruvon's
cluster and with other runs without seeing their messages; it renames keys and changes nothing
else. The tasks are :mod:`loadtests.bench_tasks`, the same bodies the Ruvon-configured baseline
runs; :data:`~loadtests.bench_tasks.NOOP_IGNORED` is declared with ``ignore_result=True``, as a
user would declare a fire-and-forget task.

The worker reads the Redis URL and the prefix from :data:`REDIS_URL_ENV` and
:data:`KEY_PREFIX_ENV`; a client builds its own app with :func:`create_app` and the same values.
"""

from __future__ import annotations

import os

from celery import Celery

from loadtests.bench_tasks import register_bench_tasks

__all__ = ["KEY_PREFIX_ENV", "REDIS_URL_ENV", "app", "create_app"]

REDIS_URL_ENV = "RUVON_BENCH_CELERY_REDIS_URL"
KEY_PREFIX_ENV = "RUVON_BENCH_CELERY_KEY_PREFIX"
_DEFAULT_URL = "redis://127.0.0.1:6379/0"


def create_app(redis_url: str, key_prefix: str = "") -> Celery:
    """``Celery(broker=redis_url, backend=redis_url)``, its keys under ``key_prefix``."""
    app = Celery(broker=redis_url, backend=redis_url)
    if key_prefix:  # isolation only (see the module docstring)
        app.conf.broker_transport_options = {"global_keyprefix": key_prefix}
        app.conf.result_backend_transport_options = {"global_keyprefix": key_prefix}
    return app


app = create_app(os.environ.get(REDIS_URL_ENV, _DEFAULT_URL), os.environ.get(KEY_PREFIX_ENV, ""))
register_bench_tasks(app)
