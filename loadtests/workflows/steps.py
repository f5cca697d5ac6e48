"""Trivial step functions of the distributed benchmark: what is measured is the engine's cost.

They run on the workers, which import them by path from the checkout (``REPO_ROOT`` is on the
workers' ``PYTHONPATH``).
"""

from __future__ import annotations

from typing import Any


def add_one(state: dict[str, Any], context: Any) -> dict[str, Any]:
    """An ASYNC step's body: read a counter, write it back incremented."""
    return {"counter": int(state.get("counter", 0)) + 1}


def branch_done(state: dict[str, Any], context: Any) -> dict[str, Any]:
    """A PARALLEL branch's body: a small constant result (the default merge keeps one)."""
    return {"branch_done": True}
