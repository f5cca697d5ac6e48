"""Admission: a gated step or workflow runs only with a free concurrency slot and its
rate-limit turn (``concurrency`` / ``rate_limit`` in YAML, kept by the store, see
:mod:`ruvon.providers.flow_control`).

Embedded, the process waits: for its rate-limit turn it sleeps the reserved delay, for a slot it
asks again with a growing pause (the store keeps its place in line, so slots still go in
order). On a worker nothing waits in the process: the run is given back without spending an
attempt (:class:`~ruvon.providers.runs.Deferred`), due at its rate-limit turn or parked until
the holder that frees a slot wakes it; the beat wakes those a dead holder's lapsed lease let
through. The same YAML therefore means the same limits in both shapes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from ruvon.definitions.schema import ConcurrencySpec, RateLimitSpec
from ruvon.engine.deadline import seconds_left, timeout_error
from ruvon.engine.outbox import announce_stored
from ruvon.errors import ConfigurationError, RuvonError, StepFunctionError
from ruvon.providers.conformance import dispatches_runs, has_flow_control
from ruvon.providers.flow_control import FlowControl, SlotRecord, SlotRequest, owner_here
from ruvon.providers.runs import Deferred, RunKind

if TYPE_CHECKING:
    from ruvon.definitions.schema import StepDefinition
    from ruvon.engine.runtime import StepRuntime

__all__ = [
    "EMBEDDED_SLOT_LEASE",
    "admit_workflow",
    "gated_call",
    "is_gated",
    "rate_turn",
    "release_workflow",
    "render_key",
]

logger = logging.getLogger("ruvon.admission")

#: How long an embedded holder on another host keeps its slot without renewing (a holder on
#: this host keeps it while its process exists).
EMBEDDED_SLOT_LEASE = 300.0
#: On a worker, a rate-limit wait up to this long is slept in place (a redelivery costs more).
SLEEP_IN_PLACE = 0.02
_FIRST_PAUSE, _LONGEST_PAUSE = 0.005, 0.25


def is_gated(rt: StepRuntime, step: StepDefinition) -> bool:
    """Whether a call of ``step`` passes admission at all (a limit of its own or its queue's)."""
    return (
        step.rate_limit is not None
        or step.concurrency is not None
        or bool(step.queue and step.queue in rt.queue_limits)
    )


def render_key(rt: StepRuntime, template: str, *, step: str | None, field: str) -> str:
    """The key a ``concurrency`` / ``rate_limit`` block's template renders to, or a clear
    error naming the step and field (the workflow fails: its state lacks what the key needs)."""
    where = f"step '{step}'" if step else f"workflow '{rt.workflow_type}'"
    try:
        key = str(rt.render(template)).strip()
    except RuvonError as exc:
        raise StepFunctionError(
            f"{where}: {field} '{template}' cannot be rendered against the workflow: {exc}",
            step=step,
            non_retryable=True,
        ) from exc
    if not key:
        raise StepFunctionError(
            f"{where}: {field} '{template}' rendered to an empty key",
            step=step,
            non_retryable=True,
        )
    return key


def _flow_control(rt: StepRuntime) -> FlowControl:
    store = rt.persistence
    if not has_flow_control(store):
        raise ConfigurationError(
            f"{type(store).__name__} keeps no concurrency slots or rate limits, which "
            f"workflow '{rt.workflow_type}' declares (use a Ruvon persistence provider)"
        )
    return store


def _on_worker(rt: StepRuntime) -> bool:
    """Whether this object runs on a worker, under a claim (a deferral gives the run back)."""
    remote = rt.remote
    return remote is not None and remote.claim is not None


def _already_reserved(rt: StepRuntime, step: StepDefinition) -> bool:
    remote = rt.remote
    claim = remote.claim if remote is not None else None
    if claim is None or claim.reserved_step != step.name:
        return False
    # Only the claimed run's own step (or the advance deferred at it) made that reservation.
    return claim.step_name == step.name and claim.kind in (
        RunKind.STEP,
        RunKind.BRANCH,
        RunKind.ADVANCE,
    )


def _rate_limits(rt: StepRuntime, step: StepDefinition) -> list[tuple[str, float, int]]:
    """The (key, per_second, burst) cells a call of ``step`` reserves a turn in: its queue's
    (``queues:`` in the registry), then its own."""
    cells: list[tuple[str, float, int]] = []
    queue = rt.queue_limits.get(step.queue) if step.queue else None
    if queue is not None and queue.rate_limit is not None:
        cells.append((f"queue:{step.queue}", queue.rate_limit.per_second, queue.rate_limit.burst))
    spec: RateLimitSpec | None = step.rate_limit
    if spec is not None:
        key = render_key(rt, spec.key, step=step.name, field="rate_limit.key")
        cells.append((key, spec.per_second, spec.burst))
    return cells


async def rate_turn(rt: StepRuntime, step: StepDefinition, *, first: bool) -> None:
    """Wait for (embedded) or defer to (worker) the step's rate-limit turn, once per attempt.

    Arriving, the call reserves its instant (skipped on the ``first`` attempt of a worker's
    claim that reserved before it was deferred) and waits for it; then, at the call, it takes
    its turn among the calls as they start, waiting the little it may still have to if an
    earlier call started late. With two limits (its queue's and its own) it waits for both.
    """
    if step.rate_limit is None and not (step.queue and step.queue in rt.queue_limits):
        return
    cells = _rate_limits(rt, step)
    if not cells:
        return
    store = _flow_control(rt)
    if not (first and _already_reserved(rt, step)):
        wait = max([await store.reserve_rate(key, rate, burst) for key, rate, burst in cells])
        await _wait_for_turn(rt, step, wait)
    for key, rate, burst in cells:
        while (wait := await store.take_rate(key, rate, burst)) > 0:
            await _wait_for_turn(rt, step, wait)


async def _wait_for_turn(rt: StepRuntime, step: StepDefinition, wait: float) -> None:
    """Sleep a short wait (or any, embedded); on a worker, give a longer one back as a
    deferral (its reservation is made: the next claim does not reserve again)."""
    if wait <= 0:
        return
    if _on_worker(rt) and wait > SLEEP_IN_PLACE:
        raise Deferred(step.name, delay=wait, reserved_step=step.name)
    await _pause(rt, wait, step.name)


async def _pause(rt: StepRuntime, seconds: float, step_name: str | None) -> None:
    """Wait in this process, but never past the workflow's deadline: there it fails (as at
    any step boundary), rather than waiting on for a turn it can no longer use."""
    left = seconds_left(rt.record)
    if left is not None and left < seconds:
        await asyncio.sleep(max(left, 0.0))
        raise timeout_error(rt.record, step_name)
    await asyncio.sleep(seconds)


def _step_holder(rt: StepRuntime, step: StepDefinition, branch: str | None) -> str:
    return f"{rt.id}/{step.name}/{branch}" if branch else f"{rt.id}/{step.name}"


def _slot_keys(rt: StepRuntime, step: StepDefinition) -> list[tuple[str, int]]:
    """The (key, limit) slots a call of ``step`` holds: its queue's ``max_concurrency``
    first, then its own ``concurrency`` (always in this order, so two calls never wait on
    each other's slot in a cycle)."""
    slots: list[tuple[str, int]] = []
    queue = rt.queue_limits.get(step.queue) if step.queue else None
    if queue is not None and queue.max_concurrency is not None:
        slots.append((f"queue:{step.queue}", queue.max_concurrency))
    spec: ConcurrencySpec | None = step.concurrency
    if spec is not None:
        key = render_key(rt, spec.key, step=step.name, field="concurrency.key")
        slots.append((key, spec.limit))
    return slots


@asynccontextmanager
async def gated_call(
    rt: StepRuntime, step: StepDefinition, branch: str | None
) -> AsyncIterator[None]:
    """Hold a slot of each of the step's keys (its queue's, its own) around its call."""
    if step.concurrency is None and not (step.queue and step.queue in rt.queue_limits):
        yield
        return
    holder = _step_holder(rt, step, branch)
    held: list[str] = []
    try:
        for key, limit in _slot_keys(rt, step):
            await _take_slot(rt, key, limit, holder, step.name, step.timeout)
            held.append(key)
        yield
    finally:
        for key in reversed(held):
            await _give_back(rt, key, holder)


async def admit_workflow(rt: StepRuntime) -> None:
    """Take the workflow's own slot (``concurrency`` at its top level) before its first step;
    held until it ends. Recorded in ``runtime`` so later transitions skip the store."""
    spec = rt.definition.spec.concurrency
    runtime = rt.record.runtime
    if spec is None or "admitted" in runtime:
        return
    key = render_key(rt, spec.key, step=None, field="concurrency.key")
    await _take_slot(rt, key, spec.limit, rt.id, None, None)
    runtime["admitted"] = key
    rt.audit("WORKFLOW_ADMITTED", None, {"key": key, "limit": spec.limit})


async def release_workflow(rt: StepRuntime) -> None:
    """The workflow ended: give its slot back and wake who is next."""
    key = rt.record.runtime.get("admitted")
    if isinstance(key, str):
        await _give_back(rt, key, rt.id)


async def _take_slot(
    rt: StepRuntime,
    key: str,
    limit: int,
    holder: str,
    step_name: str | None,
    step_timeout: float | None,
) -> None:
    store = _flow_control(rt)
    remote = rt.remote
    claim = remote.claim if remote is not None else None
    # Bound to the claim's lease on a worker, else to this process. (A workflow's own slot,
    # once held, is bound to the workflow alone: it lives until the workflow ends.)
    request = SlotRequest(
        key=key,
        limit=limit,
        holder=holder,
        workflow_id=rt.id,
        step_name=step_name,
        priority=rt.record.priority,
        run_id=claim.run_id if claim is not None else None,
        owner=None if claim is not None else owner_here(),
        lease_seconds=None if claim is not None else EMBEDDED_SLOT_LEASE + (step_timeout or 0),
    )
    pause = _FIRST_PAUSE
    waited = False
    while True:
        grant = await store.acquire_slot(request)
        if grant.granted:
            if waited:
                logger.info("workflow %s: took a slot of '%s' after waiting", rt.id, key)
            return
        if claim is not None:
            raise Deferred(step_name or "(start)", slot_key=key, holder=holder)
        if not waited:
            logger.info(
                "workflow %s: waiting for a slot of '%s' (%d held, %d ahead)",
                rt.id,
                key,
                grant.held,
                grant.ahead,
            )
            waited = True
        await _pause(rt, pause, step_name)
        pause = min(pause * 2, _LONGEST_PAUSE)


async def _give_back(rt: StepRuntime, key: str, holder: str) -> None:
    """Release a slot; on a cluster, wake the parked runs of the waiters now first in line.

    A failure is logged, not raised: the slot is bound to its holder's lease and workflow, so
    it frees itself, and the beat wakes the waiters then.
    """
    try:
        first = await _flow_control(rt).release_slot(key, holder)
        if first:
            await wake(rt, first)
    except Exception:
        logger.exception("releasing the slot of '%s' held by %s failed", key, holder)


async def wake(rt: Any, waiters: list[SlotRecord]) -> None:
    """Make the parked runs of ``waiters`` due now and announce them (cluster only)."""
    remote = rt.remote
    ledger = remote.ledger if remote is not None else None
    if ledger is None or not dispatches_runs(rt.execution):
        return
    announce_stored(rt.execution, await ledger.wake_parked(waiters))
