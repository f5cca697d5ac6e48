"""The public API is pinned: removing or renaming an export must be a deliberate change."""

from __future__ import annotations

import importlib

import ruvon

EXPECTED_ALL = {
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
}

# Import paths that user code written against the Ruvon documentation relies on.
DOCUMENTED_PATHS = [
    ("ruvon.models", "StepContext"),
    ("ruvon.models", "WorkflowJumpDirective"),
    ("ruvon.models", "WorkflowPauseDirective"),
    ("ruvon.models", "StartSubWorkflowDirective"),
    ("ruvon.models", "SagaWorkflowException"),
    ("ruvon.builder", "WorkflowBuilder"),
    ("ruvon.workflow", "Workflow"),
    ("ruvon.implementations.persistence.sqlite", "SQLitePersistenceProvider"),
    ("ruvon.implementations.persistence.memory", "MemoryPersistenceProvider"),
    ("ruvon.implementations.persistence.memory", "InMemoryPersistenceProvider"),
    ("ruvon.implementations.execution.sync", "SyncExecutor"),
    ("ruvon.implementations.execution.sync", "SyncExecutionProvider"),
    ("ruvon.implementations.execution.thread_pool", "ThreadPoolExecutionProvider"),
    ("ruvon.implementations.execution.celery", "CeleryExecutor"),
    ("ruvon.implementations.execution.celery", "CeleryExecutionProvider"),
    ("ruvon.implementations.observability.logging", "LoggingObserver"),
    ("ruvon.providers.observer", "NoopObserver"),
    ("ruvon.providers.persistence", "PersistenceProvider"),
    ("ruvon.providers.execution", "ExecutionProvider"),
]


def test_all_is_pinned() -> None:
    assert set(ruvon.__all__) == EXPECTED_ALL
    for name in ruvon.__all__:
        assert hasattr(ruvon, name), name


def test_documented_import_paths_resolve() -> None:
    missing = [
        f"{module}.{name}"
        for module, name in DOCUMENTED_PATHS
        if not hasattr(importlib.import_module(module), name)
    ]
    assert missing == []


def test_directives_escape_except_exception() -> None:
    from ruvon.models import WorkflowJumpDirective

    def step() -> None:
        try:
            raise WorkflowJumpDirective("Elsewhere")
        except Exception:  # user code that swallows errors must not swallow control flow
            raise AssertionError("directive was swallowed") from None

    try:
        step()
    except WorkflowJumpDirective as directive:
        assert directive.target_step_name == "Elsewhere"
    else:
        raise AssertionError("directive did not propagate")
