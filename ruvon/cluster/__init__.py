"""The cluster's runtime in one wing: what Celery workers and the beat run.

* :mod:`~ruvon.cluster.runner` — what a worker does with one step-run message: claim, run,
  commit, continue, announce; :mod:`~ruvon.cluster.continuation` — the runs a worker's commit
  takes for it to run next in the same task, and that chain's budget.
* :mod:`~ruvon.cluster.sweeps` — the beat's sweeps (zombies, lost messages, reconciliation,
  timers) over :class:`~ruvon.providers.ledger.Maintenance`.
* :mod:`~ruvon.cluster.schedules` — cron schedules that start workflows (specs:
  :mod:`~ruvon.cluster.schedule_spec`).
* :mod:`~ruvon.cluster.app`, :mod:`~ruvon.cluster.tasks`, :mod:`~ruvon.cluster.process` — the
  worker's Celery app, its task shims, and each pool process's bridge, provider and runner;
  :mod:`~ruvon.cluster.health` and :mod:`~ruvon.cluster.metrics` its probes and ``/metrics``;
  :mod:`~ruvon.cluster.lost_connection` keeps a worker alive through a broker restart.
* :mod:`~ruvon.cluster.beat`, :mod:`~ruvon.cluster.beat_loop`,
  :mod:`~ruvon.cluster.beat_metrics` — the beat: a process of its own that runs the sweeps at
  their intervals, and its ``/metrics``; :mod:`~ruvon.cluster.celery_beat` keeps
  ``celery -A beat beat`` working for one release.

Everything a cluster runs ships in the package: ``ruvon worker`` is ``celery -A
ruvon.cluster.app worker``, ``ruvon beat`` is ``python -m ruvon.cluster.beat``, ``ruvon
flower`` is ``celery -A ruvon.cluster.app flower``. The checkout's top-level ``worker/`` and
``beat/`` packages only re-export them (``celery -A worker worker``, ``python -m beat``).
Nothing below this package imports it, except the CLI commands that run it.
"""
