"""Step functions and workflow shapes the benchmarks run (module-level so they import by path)."""

from __future__ import annotations

from typing import Any

from ruvon.builder import WorkflowBuilder


def add_one(state: dict[str, Any], context: Any) -> dict[str, Any]:
    """A minimal STANDARD step: read a counter, write it back incremented."""
    return {"counter": state.get("counter", 0) + 1}


def register_linear(builder: WorkflowBuilder, *, steps: int = 5, name: str = "Linear") -> str:
    """A workflow of ``steps`` STANDARD steps chained with automate_next."""
    builder.register_workflow_inline(
        name,
        steps=[
            {"name": f"step_{i}", "type": "STANDARD", "function": add_one, "automate_next": True}
            for i in range(steps)
        ],
    )
    return name
