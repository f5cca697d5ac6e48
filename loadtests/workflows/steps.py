"""Trivial step functions of the distributed benchmark: what is measured is the engine's cost.

They run on the workers, which import them by path from the checkout (``REPO_ROOT`` is on the
workers' ``PYTHONPATH``).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel


def add_one(state: dict[str, Any], context: Any) -> dict[str, Any]:
    """An ASYNC step's body: read a counter, write it back incremented."""
    return {"counter": int(state.get("counter", 0)) + 1}


def branch_done(state: dict[str, Any], context: Any) -> dict[str, Any]:
    """A PARALLEL branch's body: a small constant result (the default merge keeps one)."""
    return {"branch_done": True}


def branch_item(state: dict[str, Any], context: Any, item: int) -> dict[str, Any]:
    """A dynamic PARALLEL branch's body: a small result (the default merge keeps the last)."""
    return {"last_item": item}


class Decision(BaseModel):
    """What the person answers at BenchHumanResume's ``Approve`` step."""

    approved: bool


def record_decision(state: dict[str, Any], context: Any, approved: bool) -> dict[str, Any]:
    """A HUMAN_IN_LOOP step's body: keep the answer (run by the resuming client)."""
    return {"approved": approved}


def reserve(state: dict[str, Any], context: Any) -> dict[str, Any]:
    """A COMPENSATABLE step of BenchSaga; undone by :func:`release`."""
    return {"reserved": True}


def release(state: dict[str, Any], context: Any) -> dict[str, Any]:
    return {"reserved": False}


def charge(state: dict[str, Any], context: Any) -> dict[str, Any]:
    """A COMPENSATABLE step of BenchSaga; undone by :func:`refund`."""
    return {"charged": True}


def refund(state: dict[str, Any], context: Any) -> dict[str, Any]:
    return {"charged": False}


def fail_on_purpose(state: dict[str, Any], context: Any) -> dict[str, Any]:
    """BenchSaga's last step: always fails, so the saga rolls back (the expected outcome)."""
    raise ValueError("BenchSaga fails here on purpose, to measure the rollback")


def stamp_call(state: dict[str, Any], context: Any) -> dict[str, Any]:
    """A rate-limited call's body: when it ran (UNIX seconds; the workers share a host)."""
    import time

    return {"called_at": time.time()}
