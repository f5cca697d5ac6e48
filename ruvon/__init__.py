"""Ruvon: durable workflows from YAML and plain Python step functions.

Embedded (SQLite, in-process) by default; the same definitions run on a Celery cluster over
PostgreSQL. Start with :class:`WorkflowBuilder`.
"""

from __future__ import annotations

from ruvon.builder import WorkflowBuilder
from ruvon.client import Client
from ruvon.errors import (
    ConcurrencyConflict,
    DefinitionError,
    InputValidationError,
    PersistenceError,
    RuvonError,
    StateValidationError,
    StepFunctionError,
    WorkflowNotFound,
)
from ruvon.models import (
    SagaWorkflowException,
    StartSubWorkflowDirective,
    StepContext,
    StepType,
    WorkflowJumpDirective,
    WorkflowPauseDirective,
    WorkflowStatus,
)
from ruvon.workflow import Workflow

__version__ = "0.1.0"

__all__ = [
    "Client",
    "ConcurrencyConflict",
    "DefinitionError",
    "InputValidationError",
    "PersistenceError",
    "RuvonError",
    "SagaWorkflowException",
    "StartSubWorkflowDirective",
    "StateValidationError",
    "StepContext",
    "StepFunctionError",
    "StepType",
    "Workflow",
    "WorkflowBuilder",
    "WorkflowJumpDirective",
    "WorkflowNotFound",
    "WorkflowPauseDirective",
    "WorkflowStatus",
    "__version__",
]
