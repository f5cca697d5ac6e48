"""The seams of the engine, as ``typing.Protocol``s: persistence, execution, observation."""

from __future__ import annotations

from ruvon.providers.execution import ExecutionProvider, StepCall
from ruvon.providers.observer import BaseObserver, WorkflowObserver
from ruvon.providers.persistence import PersistenceProvider

NoopObserver = BaseObserver

__all__ = [
    "BaseObserver",
    "ExecutionProvider",
    "NoopObserver",
    "PersistenceProvider",
    "StepCall",
    "StepContext",
    "WorkflowObserver",
]

from ruvon.models import StepContext  # noqa: E402  - re-export for convenience
