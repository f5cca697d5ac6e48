"""Step functions of the flow-control tests: each records when it ran and how many ran at once.

Module globals, reset by the tests; a lock, because the thread-pool executor runs sync
functions in threads (and a worker's functions run in its processes: those tests read the
workflows' state instead).
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

from ruvon.models import StepContext

_lock = threading.Lock()
RUNNING: dict[str, int] = {}
PEAK: dict[str, int] = {}
STARTED: list[tuple[str, float]] = []


def reset() -> None:
    with _lock:
        RUNNING.clear()
        PEAK.clear()
        STARTED.clear()


async def call_customer_api(state: dict[str, Any], context: StepContext) -> dict[str, Any]:
    """Hold 'a call' of the state's customer open for ``state['hold']`` seconds."""
    customer = str(state["customer"])
    with _lock:
        RUNNING[customer] = RUNNING.get(customer, 0) + 1
        PEAK[customer] = max(PEAK.get(customer, 0), RUNNING[customer])
        STARTED.append((context.workflow_id, time.monotonic()))
    try:
        await asyncio.sleep(float(state.get("hold", 0.05)))
    finally:
        with _lock:
            RUNNING[customer] -= 1
    return {"called_at": time.time()}


def stamp(state: dict[str, Any], context: StepContext) -> dict[str, Any]:
    """Record when it ran (rate-limit tests)."""
    with _lock:
        STARTED.append((context.workflow_id, time.monotonic()))
    return {"stamped_at": time.time()}


def noop(state: dict[str, Any], context: StepContext) -> dict[str, Any]:
    return {}
