"""Step functions of the chaos workflows; the workers import them from the checkout.

Each takes a little time (20-100 ms) so that kills, freezes and outages land mid-step. The
async ones write what they did to the run's own database (``RUVON_DATABASE_URL``, tables made by
the test fixture, see ``tests/chaos/invariants.sql``):

* ``chaos_calls`` — one row per execution (step, effect or compensation), with its attempt and
  process: raw re-executions, the order compensations ran in;
* ``chaos_effects`` — the side effect itself, keyed by ``context.idempotency_key`` and applied
  with ``INSERT ... ON CONFLICT DO NOTHING``: at most once per key, whatever the retries.

A database that is down makes an attempt fail (``ConnectionError``): the steps' retry policies,
and the beat for attempts whose worker lost its commit, take it from there.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from pathlib import Path
from typing import Any

import asyncpg

from ruvon.implementations.persistence.queries import load_queries
from ruvon.models import StepContext

_Q = load_queries(Path(__file__).parents[1] / "invariants.sql")
_CONNECT_TIMEOUT = 5.0
_COMPENSATION_PATIENCE = 30.0  # a compensation waits out a database restart rather than fail


class PlannedFailure(Exception):
    """The failure a ``fail_at_end`` workflow ends with (non-retryable in its policy)."""


async def _pause(low: float = 0.02, high: float = 0.1) -> None:
    await asyncio.sleep(random.uniform(low, high))


async def _connect() -> asyncpg.Connection:
    try:
        return await asyncpg.connect(os.environ["RUVON_DATABASE_URL"], timeout=_CONNECT_TIMEOUT)
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
        raise ConnectionError(f"the chaos database is unreachable: {exc!r}") from exc


async def _record(kind: str, context: StepContext, applied: bool | None = None) -> None:
    conn = await _connect()
    try:
        await conn.execute(
            _Q["record_call"],
            kind,
            context.workflow_id,
            context.step_name,
            context.idempotency_key,
            context.attempt,
            os.getpid(),
            applied,
        )
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        raise ConnectionError(f"recording a {kind} call failed: {exc!r}") from exc
    finally:
        await conn.close()


# -- the kitchen sink --------------------------------------------------------------------------


def reserve(state: dict[str, Any], context: StepContext) -> dict[str, Any]:
    time.sleep(random.uniform(0.02, 0.04))
    return {"reserved": True}


async def prepare(state: dict[str, Any], context: StepContext) -> dict[str, Any]:
    await _record("step", context)
    await _pause()
    return {"prepared": True}


async def check_stock(state: dict[str, Any], context: StepContext) -> dict[str, Any]:
    await _record("step", context)
    await _pause(0.02, 0.08)
    return {"stock_ok": True}


def check_fraud(state: dict[str, Any], context: StepContext) -> dict[str, Any]:
    time.sleep(random.uniform(0.02, 0.08))
    return {"fraud_ok": True}


async def check_address(state: dict[str, Any], context: StepContext) -> dict[str, Any]:
    await _record("step", context)
    await _pause(0.02, 0.08)
    return {"address_ok": True}


def charge(state: dict[str, Any], context: StepContext) -> dict[str, Any]:
    time.sleep(random.uniform(0.02, 0.04))
    return {"charged": True}


async def apply_effect(state: dict[str, Any], context: StepContext) -> dict[str, Any]:
    """The side effect: applied at most once per idempotency key, every execution counted."""
    await _pause(0.01, 0.04)
    conn = await _connect()
    try:
        applied = await conn.fetchval(
            _Q["apply_effect"],
            context.idempotency_key,
            context.workflow_id,
            context.step_name,
            context.attempt,
            os.getpid(),
        )
        await conn.execute(
            _Q["record_call"],
            "effect",
            context.workflow_id,
            context.step_name,
            context.idempotency_key,
            context.attempt,
            os.getpid(),
            applied is not None,
        )
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        raise ConnectionError(f"applying the effect failed: {exc!r}") from exc
    finally:
        await conn.close()
    await _pause(0.01, 0.04)
    return {"effect_key": context.idempotency_key}


async def finalize(state: dict[str, Any], context: StepContext) -> dict[str, Any]:
    await _record("step", context)
    await _pause(0.02, 0.06)
    if state.get("fail_at_end"):
        raise PlannedFailure(f"order {state.get('order')} fails at its last step, on purpose")
    return {"finalized": True}


async def _compensation(context: StepContext, undo: str) -> dict[str, Any]:
    """Record the compensation (waiting out an outage: a compensation must not be lost)."""
    deadline = time.monotonic() + _COMPENSATION_PATIENCE
    while True:
        try:
            await _record("compensation", context)
            break
        except ConnectionError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)
    await _pause(0.01, 0.03)
    return {undo: False}


async def release(state: dict[str, Any], context: StepContext) -> dict[str, Any]:
    return await _compensation(context, "reserved")


async def refund(state: dict[str, Any], context: StepContext) -> dict[str, Any]:
    return await _compensation(context, "charged")


# -- the child ---------------------------------------------------------------------------------


async def child_work(state: dict[str, Any], context: StepContext) -> dict[str, Any]:
    await _record("step", context)
    await _pause()
    return {"child_worked": True}


def child_done(state: dict[str, Any], context: StepContext) -> dict[str, Any]:
    return {"child_done": True}
