"""Step functions and state models for the contract suite.

Everything here lives at module level so it is importable by dotted path
(``tests.contract.steps_fixtures.<name>``), both from inline definitions and from YAML files.
Calls are recorded in module globals (thread-safe: the thread-pool executor runs branches
concurrently); the suite's autouse fixture calls :func:`reset` before every test.
"""

from __future__ import annotations

import asyncio
import copy
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel

from ruvon.models import (
    StartSubWorkflowDirective,
    StepContext,
    WorkflowJumpDirective,
    WorkflowPauseDirective,
)

MODULE = __name__

_lock = threading.Lock()
CALLS: Counter[str] = Counter()
EVENTS: list[Any] = []
FLAGS: dict[str, Any] = {}
# Slow steps wait on this instead of sleeping, so teardown can release their threads at once.
RELEASE = threading.Event()


def path(name: str) -> str:
    """Dotted path of a function in this module (for YAML and string definitions)."""
    return f"{MODULE}.{name}"


def reset() -> None:
    """Forget every recorded call, event and flag."""
    with _lock:
        CALLS.clear()
        EVENTS.clear()
        FLAGS.clear()
    RELEASE.clear()


def record(name: str, event: Any = None) -> int:
    """Count a call of ``name`` (and log ``event``); return how many calls ``name`` has had."""
    with _lock:
        CALLS[name] += 1
        if event is not None:
            EVENTS.append(event)
        return CALLS[name]


# --------------------------------------------------------------------------- state models
class CounterState(BaseModel):
    """A typed state with a counter and a free list."""

    count: int = 0
    name: str = ""
    log: list[str] = []


class TaggedState(BaseModel):
    """A typed state that declares a set: the model keeps it a set across saves."""

    tags: set[str] = set()


def return_set(state: Any, context: StepContext) -> dict[str, Any]:
    return {"order": {"tags": {"vip", "new"}}}


def return_frozenset(state: Any, context: StepContext) -> dict[str, Any]:
    return {"seen": frozenset({1, 2})}


def return_declared_set(state: Any, context: StepContext) -> dict[str, Any]:
    return {"tags": {"vip", "new"}}


def add_set_in_place(state: Any, context: StepContext) -> None:
    state["later"] = {1}


class ApprovalInput(BaseModel):
    """Input model of the HUMAN_IN_LOOP tests."""

    approved: bool
    approver: str


class PermanentError(Exception):
    """Listed in a retry policy's ``non_retryable``."""


# --------------------------------------------------------------------------- simple markers
def _marker(letter: str) -> Callable[[Any, StepContext], dict[str, Any]]:
    def step(state: Any, context: StepContext) -> dict[str, Any]:
        record(f"mark_{letter}", ("mark", letter, context.step_name))
        return {letter: True}

    step.__name__ = step.__qualname__ = f"mark_{letter}"
    return step


mark_a = _marker("a")
mark_b = _marker("b")
mark_c = _marker("c")
mark_d = _marker("d")


def increment(state: Any, context: StepContext) -> dict[str, Any]:
    record("increment")
    count = state.count if isinstance(state, BaseModel) else state.get("count", 0)
    return {"count": int(count) + 1}


def decide(state: dict[str, Any], context: StepContext) -> dict[str, Any]:
    record("decide")
    return {"decided": True}


async def async_double(state: dict[str, Any], context: StepContext) -> dict[str, Any]:
    await asyncio.sleep(0)
    record("async_double", context.step_name)
    return {"doubled": int(state["value"]) * 2}


def double_value(state: dict[str, Any], context: StepContext) -> dict[str, Any]:
    record("double_value", context.parent_execution_id)
    return {"doubled": int(state["value"]) * 2}


def always_fails(state: Any, context: StepContext) -> dict[str, Any]:
    record("always_fails", context.attempt)
    raise ValueError(f"always fails (attempt {context.attempt})")


# --------------------------------------------------------------------------- directives
def jump_to_c(state: Any, context: StepContext) -> dict[str, Any]:
    record("jump_to_c")
    raise WorkflowJumpDirective("C", result={"jumped": True})


def pause_for_manager(state: Any, context: StepContext) -> dict[str, Any]:
    record("pause_for_manager")
    raise WorkflowPauseDirective(result={"paused": True}, waiting_for="manager")


def use_note(state: Any, context: StepContext, note: str = "none") -> dict[str, Any]:
    record("use_note", note)
    return {"note_seen": note}


def start_child_directive(state: dict[str, Any], context: StepContext) -> dict[str, Any]:
    record("start_child_directive")
    raise StartSubWorkflowDirective(
        "Child", {"value": state["value"]}, result={"child_requested": True}
    )


# --------------------------------------------------------------------------- state model
def return_unknown_key(state: Any, context: StepContext) -> dict[str, Any]:
    return {"not_a_field": 1}


def return_wrong_type(state: Any, context: StepContext) -> dict[str, Any]:
    return {"count": "many"}


def mutate_in_place(state: CounterState, context: StepContext) -> None:
    state.count += 5
    state.log.append("mutated")


def mutate_dict_in_place(state: dict[str, Any], context: StepContext) -> None:
    state["touched"] = True


def return_list(state: Any, context: StepContext) -> list[int]:
    return [1, 2]


# --------------------------------------------------------------------------- cancel / retry
def flaky_until_fixed(state: Any, context: StepContext) -> dict[str, Any]:
    record("flaky_until_fixed")
    if not FLAGS.get("fixed"):
        raise RuntimeError("downstream is broken")
    return {"fixed": True}


def fail_twice(state: Any, context: StepContext) -> dict[str, Any]:
    calls = record("fail_twice", (context.attempt, context.idempotency_key))
    if calls <= 2:
        raise ConnectionError(f"transient failure #{calls}")
    return {"attempts": context.attempt}


def permanent_failure(state: Any, context: StepContext) -> dict[str, Any]:
    record("permanent_failure")
    raise PermanentError("card declined")


def slow_sync(state: Any, context: StepContext) -> dict[str, Any]:
    record("slow_sync")
    RELEASE.wait(1.0)
    return {"slow": True}


async def slow_async(state: Any, context: StepContext) -> dict[str, Any]:
    record("slow_async")
    await asyncio.sleep(1.0)
    return {"slow": True}


# --------------------------------------------------------------------------- timeouts
def _spin(seconds: float) -> None:
    """Busy in Python bytecode (an interrupt reaches it) until ``seconds`` pass or RELEASE."""
    end = time.monotonic() + seconds
    while time.monotonic() < end and not RELEASE.is_set():
        sum(range(100))


def attempt_spins_then_succeeds(state: Any, context: StepContext) -> dict[str, Any]:
    """Attempt 1 runs 2 s (in Python, or blocked in C by ``state['blocking']``); then quick."""
    record("attempt", f"start:{context.attempt}")
    try:
        if context.attempt == 1:
            if state.get("blocking"):
                time.sleep(0.6)  # inside C: an interrupt waits until it returns
            _spin(2.0)
        return {"attempts": context.attempt}
    finally:
        record("attempt_ended", f"end:{context.attempt}")


def spin_sync(state: Any, context: StepContext) -> dict[str, Any]:
    record("spin", "start")
    try:
        _spin(2.0)
        return {"spun": True}
    finally:
        record("spin_ended", "end")


async def spin_async(state: Any, context: StepContext) -> dict[str, Any]:
    record("spin", "start")
    try:
        await asyncio.sleep(2.0)
        return {"spun": True}
    finally:
        record("spin_ended", "end")


# --------------------------------------------------------------------------- saga
# A jumps to C, C jumps back to B, B jumps to Fail: completion order A, C, B differs from the
# definition order A, B, C, so "reverse order of completion" is observable.
def saga_a(state: Any, context: StepContext) -> dict[str, Any]:
    record("saga_a", "do:A")
    raise WorkflowJumpDirective("C", result={"a_done": True})


def saga_b(state: Any, context: StepContext) -> dict[str, Any]:
    record("saga_b", "do:B")
    raise WorkflowJumpDirective("Fail", result={"b_done": True})


def saga_c(state: Any, context: StepContext) -> dict[str, Any]:
    record("saga_c", "do:C")
    raise WorkflowJumpDirective("B", result={"c_done": True})


def saga_fail(state: Any, context: StepContext) -> dict[str, Any]:
    record("saga_fail", "do:Fail")
    raise RuntimeError("shipping unavailable")


def undo_a(state: Any, context: StepContext) -> dict[str, Any]:
    record("undo_a", "undo:A")
    return {"a_done": False}


def undo_b_fails(state: Any, context: StepContext) -> dict[str, Any]:
    record("undo_b_fails", "undo:B")
    raise RuntimeError("refund service down")


def undo_c(state: Any, context: StepContext) -> dict[str, Any]:
    record("undo_c", "undo:C")
    return {"c_done": False}


# A payment service that deduplicates on the idempotency key, as real ones do: a call with a key
# it has seen has no effect. Charges and refunds share it; EVENTS lists the effects that happened,
# FLAGS["keys"] every (do/undo, step, key) it was called with.
def _once(kind: str, name: str, key: str) -> None:
    with _lock:
        FLAGS.setdefault("keys", []).append((kind, name, key))
        seen = FLAGS.setdefault("ledger", set())
        if key not in seen:
            seen.add(key)
            EVENTS.append(f"{kind}:{name}")


def charge_card(state: Any, context: StepContext) -> dict[str, Any]:
    _once("charge", context.step_name, context.idempotency_key)
    return {}


def refund_card(state: Any, context: StepContext) -> dict[str, Any]:
    _once("refund", context.step_name, context.idempotency_key)
    return {}


def charge_item(state: Any, context: StepContext, item: Any) -> dict[str, Any]:
    _once("charge", f"{context.step_name}[{item}]", context.idempotency_key)
    return {}


def refund_item(state: Any, context: StepContext) -> dict[str, Any]:
    _once("refund", context.step_name, context.idempotency_key)
    return {}


# --------------------------------------------------------------------------- parallel
def task_x(state: Any, context: StepContext) -> dict[str, Any]:
    record("task_x", context.branch_name)
    return {"x": 1}


def task_y(state: Any, context: StepContext) -> dict[str, Any]:
    record("task_y", context.branch_name)
    return {"y": 2}


def task_z(state: Any, context: StepContext) -> dict[str, Any]:
    record("task_z", context.branch_name)
    return {"z": 3}


def task_boom(state: Any, context: StepContext) -> dict[str, Any]:
    record("task_boom", context.branch_name)
    raise RuntimeError("branch boom")


def conflict_one(state: Any, context: StepContext) -> dict[str, Any]:
    return {"shared": 1}


def conflict_two(state: Any, context: StepContext) -> dict[str, Any]:
    return {"shared": 2}


def value_one(state: Any, context: StepContext) -> dict[str, Any]:
    return {"value": 1}


def value_two(state: Any, context: StepContext) -> dict[str, Any]:
    return {"value": 2}


def value_four(state: Any, context: StepContext) -> dict[str, Any]:
    return {"value": 4}


def sum_values(state: Any, results: list[dict[str, Any]]) -> dict[str, Any]:
    return {"total": sum(r["value"] for r in results), "merged_branches": len(results)}


def double_item(state: Any, context: StepContext, item: int) -> dict[str, Any]:
    record("double_item", (context.loop_index, context.loop_item, context.branch_name))
    return {"results": [item * 2]}


def double_item_or_fail(state: Any, context: StepContext, item: int) -> dict[str, Any]:
    record("double_item_or_fail")
    if item % 10 == 3:
        raise RuntimeError(f"item {item} is cursed")
    return {"results": [item * 2]}


# --------------------------------------------------------------------------- human / loop
def apply_approval(
    state: Any, context: StepContext, approved: bool, approver: str
) -> dict[str, Any]:
    record("apply_approval")
    validated = context.validated_input
    return {
        "approved": approved,
        "approver": approver,
        "validated_model": type(validated).__name__,
    }


def record_loop_item(state: dict[str, Any], context: StepContext, item: Any) -> dict[str, Any]:
    record("record_loop_item", context.idempotency_key)
    return {"seen": [*state["seen"], f"{context.loop_index}:{context.loop_item}:{item}"]}


# --------------------------------------------------------------------------- merge / snapshot
MERGE_EXISTING: dict[str, Any] = {"a": 1, "keep": "k", "nested": {"x": 1, "y": 2}, "tags": ["t1"]}
MERGE_NEW: dict[str, Any] = {"a": 2, "added": True, "nested": {"x": 10, "z": 3}, "tags": ["t2"]}


def merge_probe(state: Any, context: StepContext) -> dict[str, Any]:
    return copy.deepcopy(MERGE_NEW)


def snap_old(state: Any, context: StepContext) -> dict[str, Any]:
    record("snap_old")
    return {"version_ran": "old"}


def snap_new(state: Any, context: StepContext) -> dict[str, Any]:
    record("snap_new")
    return {"version_ran": "new"}


def snap_extra(state: Any, context: StepContext) -> dict[str, Any]:
    record("snap_extra")
    return {"extra": True}


# --------------------------------------------------------------------------- crash recovery
class SimulatedCrash(BaseException):
    """Stands in for the process dying mid-step: not an Exception, so nothing handles it."""


async def async_crash_once(state: Any, context: StepContext) -> dict[str, Any]:
    record("async_crash_once", ("crash_once", context.idempotency_key))
    if not FLAGS.get("recovered"):
        raise SimulatedCrash("the worker process died")
    return {"charged": True}


async def crash_once_with_note(
    state: Any, context: StepContext, note: str = "none"
) -> dict[str, Any]:
    """An ASYNC step taking input: the process dies on the first call, not once recovered."""
    record("crash_once_with_note", ("crash_once_with_note", note))
    if not FLAGS.get("recovered"):
        raise SimulatedCrash("the worker process died")
    return {"note_seen": note}


def fail_until_fixed_with_note(
    state: Any, context: StepContext, note: str = "none"
) -> dict[str, Any]:
    """A step taking input that fails (for good) until FLAGS['fixed'] is set."""
    record("fail_until_fixed_with_note", note)
    if not FLAGS.get("fixed"):
        raise PermanentError("downstream is broken")
    return {"note_seen": note}
