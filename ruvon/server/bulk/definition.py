"""``ruvon.BulkOperation``: the control plane's own workflow type, built into the package.

How workers get it without the user's registry listing it: they never look a type up to run
it. A workflow runs the **snapshot** of its definition stored with it when it started
(``WorkflowBuilder.load_workflow`` / ``workflow_from_record`` rebuild the definition from the
record), so only the process that *starts* one needs the definition: the server registers it
in its builder (:func:`register_bulk_operation`). What a worker does need is the step
function, which is named by import path in the snapshot: ``ruvon.server.bulk.steps``, part
of the ``ruvon`` package every worker has, and importable without the server extra.
"""

from __future__ import annotations

from ruvon.builder import WorkflowBuilder
from ruvon.definitions.definition import WorkflowDefinition
from ruvon.definitions.loader import load_definition_data
from ruvon.server.bulk.spec import MAX_COUNT
from ruvon.server.bulk.steps import PAGE
from ruvon.steps.registry import DEFAULT_HANDLERS

__all__ = ["BULK_OPERATION", "BULK_OPERATION_VERSION", "bulk_definition", "register_bulk_operation"]

BULK_OPERATION = "ruvon.BulkOperation"
BULK_OPERATION_VERSION = "1"

_DATA = {
    "workflow_type": BULK_OPERATION,
    "workflow_version": BULK_OPERATION_VERSION,
    "description": "Retry or cancel the workflows a filter matches (ruvon server's bulk "
    "actions); per-workflow outcomes in state.outcomes.",
    "initial_state_model_path": "builtins.dict",
    "steps": [
        {
            "name": "ApplyPages",
            "type": "LOOP",
            "mode": "WHILE",
            "while_condition": "state.more",
            "max_iterations": MAX_COUNT // PAGE + 2,
            "loop_body": [
                {
                    "name": "ApplyPage",
                    "type": "STANDARD",
                    "function": "ruvon.server.bulk.steps.apply_page",
                }
            ],
        }
    ],
}


def bulk_definition() -> WorkflowDefinition:
    """The validated definition of :data:`BULK_OPERATION`."""
    return load_definition_data(_DATA, file=f"<built-in {BULK_OPERATION}>", rules=DEFAULT_HANDLERS)


def register_bulk_operation(builder: WorkflowBuilder) -> WorkflowDefinition:
    """Make ``builder`` able to start bulk operations (the server does, at startup)."""
    return builder.register_definition(bulk_definition())
