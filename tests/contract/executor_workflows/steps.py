"""Step functions of the executor contract (``tests/contract/test_executors.py``).

They run in the test process (sync and thread-pool executors) and on Celery workers alike, so
each is a pure function of ``(state, context)``: everything a test checks comes back through
the workflow's state, status, error or audit log, never through a module global.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from pydantic import BaseModel

from ruvon.models import StepContext, WorkflowJumpDirective


class ApprovalInput(BaseModel):
    """What the person answering ``Approve`` (HUMAN_IN_LOOP) sends."""

    approved: bool
    approver: str


class PermanentError(Exception):
    """Listed in a retry policy's ``non_retryable``: never tried again."""


def _trail(state: dict[str, Any], context: StepContext) -> list[str]:
    return [*state.get("trail", []), context.step_name]


# --------------------------------------------------------------------------- ASYNC + STANDARD
def add_one(state: dict[str, Any], context: StepContext) -> dict[str, Any]:
    return {"counter": int(state.get("counter", 0)) + 1, "trail": _trail(state, context)}


async def add_ten_async(state: dict[str, Any], context: StepContext) -> dict[str, Any]:
    await asyncio.sleep(0)
    return {"counter": int(state.get("counter", 0)) + 10, "trail": _trail(state, context)}


def double_counter(state: dict[str, Any], context: StepContext) -> dict[str, Any]:
    return {"counter": int(state["counter"]) * 2, "trail": _trail(state, context)}


async def finish_async(state: dict[str, Any], context: StepContext) -> dict[str, Any]:
    return {"finished": True, "trail": _trail(state, context)}


# --------------------------------------------------------------------------- DECISION, LOOP
def classify(state: dict[str, Any], context: StepContext) -> dict[str, Any]:
    return {"size": "big" if int(state["amount"]) > 100 else "small"}


def handle_small(state: dict[str, Any], context: StepContext) -> dict[str, Any]:
    # Jumps over Handle_Big, which a small amount must never reach.
    raise WorkflowJumpDirective("Tally", result={"trail": _trail(state, context)})


def handle_big(state: dict[str, Any], context: StepContext) -> dict[str, Any]:
    return {"trail": _trail(state, context)}


def record_item(state: dict[str, Any], context: StepContext, item: Any) -> dict[str, Any]:
    return {"seen": [*state.get("seen", []), f"{context.loop_index}:{item}"]}


def weigh_item(state: dict[str, Any], context: StepContext, item: Any) -> dict[str, Any]:
    return {"weight": int(state.get("weight", 0)) + len(str(item))}


def mark_done(state: dict[str, Any], context: StepContext) -> dict[str, Any]:
    return {"trail": _trail(state, context)}


# --------------------------------------------------------------------------- PARALLEL
def branch_one(state: dict[str, Any], context: StepContext) -> dict[str, Any]:
    return {"a": 1, "b1": True, "tags": ["t1"], "nested": {"x": 1, "y": 1}}


def branch_two(state: dict[str, Any], context: StepContext) -> dict[str, Any]:
    return {"a": 2, "b2": True, "tags": ["t2"], "nested": {"x": 2, "z": 2}}


def shared_one(state: dict[str, Any], context: StepContext) -> dict[str, Any]:
    return {"shared": 1}


def shared_two(state: dict[str, Any], context: StepContext) -> dict[str, Any]:
    return {"shared": 2}


def square(state: dict[str, Any], context: StepContext, item: int) -> dict[str, Any]:
    return {"square": item * item, "index": context.loop_index, "branch": context.branch_name}


def sum_squares(state: dict[str, Any], results: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "total": sum(r["square"] for r in results),
        "order": [r["index"] for r in results],
        "branches": [r["branch"] for r in results],
    }


def double_unless_three(state: dict[str, Any], context: StepContext, item: int) -> dict[str, Any]:
    if item == 3:
        raise RuntimeError(f"item {item} is cursed")
    return {"results": [item * 2]}


# --------------------------------------------------------------------------- children
def prepare(state: dict[str, Any], context: StepContext) -> dict[str, Any]:
    return {"prepared": True}


async def double_value(state: dict[str, Any], context: StepContext) -> dict[str, Any]:
    return {"doubled": int(state["value"]) * 2, "parent": context.parent_execution_id}


def use_child_state(state: dict[str, Any], context: StepContext) -> dict[str, Any]:
    return {"after": state["child_state"]["doubled"] + 1}


def child_fails(state: dict[str, Any], context: StepContext) -> dict[str, Any]:
    raise ValueError("the child failed on purpose")


# --------------------------------------------------------------------------- saga
def reserve(state: dict[str, Any], context: StepContext) -> dict[str, Any]:
    return {"reserved": True}


def release(state: dict[str, Any], context: StepContext) -> dict[str, Any]:
    return {"reserved": False, "undone": [*state.get("undone", []), "release"]}


def charge(state: dict[str, Any], context: StepContext) -> dict[str, Any]:
    return {"charged": True}


def refund(state: dict[str, Any], context: StepContext) -> dict[str, Any]:
    return {"charged": False, "undone": [*state.get("undone", []), "refund"]}


def ship_fails(state: dict[str, Any], context: StepContext) -> dict[str, Any]:
    raise RuntimeError("shipping unavailable")


# --------------------------------------------------------------------------- retries, timeouts
def fail_twice(state: dict[str, Any], context: StepContext) -> dict[str, Any]:
    if context.attempt < 3:
        raise ConnectionError(f"transient failure on attempt {context.attempt}")
    return {"attempts": context.attempt, "key": context.idempotency_key}


def permanent_failure(state: dict[str, Any], context: StepContext) -> dict[str, Any]:
    raise PermanentError(f"card declined on attempt {context.attempt}")


def spin_on_first_attempt(state: dict[str, Any], context: StepContext) -> dict[str, Any]:
    """Attempt 1 loops 2 s in Python; each attempt appends its start and end to the file that
    ``state["log"]`` names (shared by the test and the workers: one machine)."""

    def note(event: str) -> None:
        with open(state["log"], "a", encoding="utf-8") as log:
            log.write(f"{event}:{context.attempt}\n")

    note("start")
    try:
        end = time.monotonic() + (2.0 if context.attempt == 1 else 0.0)
        while time.monotonic() < end:
            sum(range(100))
        return {"attempts": context.attempt}
    finally:
        note("end")


def too_slow(state: dict[str, Any], context: StepContext) -> dict[str, Any]:
    time.sleep(1.0)
    return {"never": True}
