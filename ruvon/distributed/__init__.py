"""Distributed execution: steps as durable step runs claimed by workers (DESIGN.md, "The
correctness model").

* :mod:`~ruvon.providers.runs` — what a step run is (requests, claims, the writes a commit
  carries).
* :mod:`~ruvon.providers.ledger` — the protocol of a store that keeps step runs (PostgreSQL).
* :mod:`~ruvon.providers.dispatch` — the protocol of whatever sends the "run this" hints.
* :mod:`~ruvon.cluster.runner` — what a worker does with one message: claim, run, commit.
* :mod:`~ruvon.implementations.execution.task_thread` — sync step functions run in the Celery
  task's thread.
"""
