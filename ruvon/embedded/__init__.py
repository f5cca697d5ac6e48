"""Embedded mode's own process: the runner that keeps time on a SQLite file.

:class:`~ruvon.embedded.runner.EmbeddedRunner` fires due WAIT timers, approval deadlines and
schedule ticks (``ruvon worker --embedded``); :mod:`ruvon.embedded.claims` makes two of them,
or one and ``ruvon resume``, safe on one file.
"""

from __future__ import annotations

from ruvon.embedded.claims import Claimant
from ruvon.embedded.runner import EmbeddedRunner, PassReport, RunnerOptions

__all__ = ["Claimant", "EmbeddedRunner", "PassReport", "RunnerOptions"]
