"""Step functions of the distributed tests; the workers import them from the checkout.

Every function that runs on a worker counts its executions in Redis under the run's broker key
prefix (``effects:<idempotency key>``, one counter per step run and attempt kind), so a test
can tell "committed once" from "executed once" without a table of its own.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from typing import Any

import redis

from ruvon.models import StepContext
from ruvon.testing.redis import redis_url_for_tests

# Step functions log, so tests of the worker's logs see records emitted inside steps.
logger = logging.getLogger("tests.cluster_steps")


def _redis() -> redis.Redis:
    # The workers get the URL from their environment; an embedded run in the test process does
    # not have it.
    return redis.Redis.from_url(os.environ.get("RUVON_BROKER_URL") or redis_url_for_tests())


def count_effect(context: StepContext, suffix: str = "") -> int:
    """Count one execution of this step run in Redis; returns how many there were."""
    prefix = os.environ.get("RUVON_BROKER_KEY_PREFIX", "")
    if not prefix:
        return 0  # an embedded twin run in the test process: nothing to count, nothing to leak
    key = f"{prefix}effects:{context.idempotency_key}{suffix}"
    return int(_redis().incr(key))


def add_one(state: dict[str, Any], context: StepContext) -> dict[str, Any]:
    count_effect(context)
    logger.info("add_one: counter was %s", state.get("counter", 0))
    return {
        "counter": int(state.get("counter", 0)) + 1,
        "pids": [*state.get("pids", []), os.getpid()],
    }


async def add_ten_async(state: dict[str, Any], context: StepContext) -> dict[str, Any]:
    count_effect(context)
    logger.info("add_ten_async: counter was %s", state.get("counter", 0))
    await asyncio.sleep(0)
    return {"counter": int(state.get("counter", 0)) + 10}


def finish(state: dict[str, Any], context: StepContext) -> dict[str, Any]:
    return {"finished": True, "final_counter": state.get("counter")}


def nap(state: dict[str, Any], context: StepContext) -> dict[str, Any]:
    """A step that takes 20 ms: one worker process drains at most ~50 of them a second."""
    time.sleep(0.02)
    return {"napped": True}


def make_items(state: dict[str, Any], context: StepContext) -> dict[str, Any]:
    return {"items": list(range(int(state.get("size", 10))))}


def square(state: dict[str, Any], context: StepContext, item: int) -> dict[str, Any]:
    count_effect(context)
    return {"square": item * item, "index": context.loop_index}


def sum_squares(state: dict[str, Any], results: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "total": sum(r["square"] for r in results),
        "order": [r["index"] for r in results],
        "branches": len(results),
    }


def record_gpu(state: dict[str, Any], context: StepContext) -> dict[str, Any]:
    count_effect(context)
    return {"gpu_pid": os.getpid()}


def flaky(state: dict[str, Any], context: StepContext) -> dict[str, Any]:
    """Fails on its first two attempts, with the time of each attempt recorded in Redis."""
    count_effect(context)
    prefix = os.environ.get("RUVON_BROKER_KEY_PREFIX", "")
    _redis().rpush(f"{prefix}attempts:{context.workflow_id}", f"{context.attempt}:{time.time()}")
    if context.attempt < 3:
        raise ConnectionError(f"transient failure on attempt {context.attempt}")
    return {"flaky_attempts": context.attempt}


def too_slow(state: dict[str, Any], context: StepContext) -> dict[str, Any]:
    time.sleep(5)
    return {"never": True}


def fail_async(state: dict[str, Any], context: StepContext) -> dict[str, Any]:
    raise ValueError("the async step failed on purpose")


def reserve(state: dict[str, Any], context: StepContext) -> dict[str, Any]:
    return {"reserved": True, "log": [*state.get("log", []), "reserve"]}


def release(state: dict[str, Any], context: StepContext) -> dict[str, Any]:
    prefix = os.environ.get("RUVON_BROKER_KEY_PREFIX", "")
    _redis().rpush(f"{prefix}compensations:{context.workflow_id}", "release")
    return {"reserved": False}


def charge(state: dict[str, Any], context: StepContext) -> dict[str, Any]:
    return {"charged": True}


def refund(state: dict[str, Any], context: StepContext) -> dict[str, Any]:
    prefix = os.environ.get("RUVON_BROKER_KEY_PREFIX", "")
    _redis().rpush(f"{prefix}compensations:{context.workflow_id}", "refund")
    return {"charged": False}


def slow_first_attempt(state: dict[str, Any], context: StepContext) -> dict[str, Any]:
    """Marks that it started (with its pid), and on attempt 1 sleeps long enough to be killed."""
    count_effect(context, f":attempt{context.attempt}")
    prefix = os.environ.get("RUVON_BROKER_KEY_PREFIX", "")
    _redis().set(f"{prefix}started:{context.workflow_id}:{context.attempt}", os.getpid())
    if context.attempt == 1:
        time.sleep(60)
    return {"survived_attempt": context.attempt}


def level_marker(state: dict[str, Any], context: StepContext) -> dict[str, Any]:
    return {"visited": [*state.get("visited", []), context.workflow_type]}


def apply_review(
    state: dict[str, Any], context: StepContext, verdict: str, counter: str
) -> dict[str, Any]:
    """A reviewer's verdict; counts its calls under the key the input names (any process)."""
    calls = int(_redis().incr(counter))
    return {"verdict": verdict, "reviewed_by_pid": os.getpid(), "review_calls": calls}


def slow_in_small_sleeps(state: dict[str, Any], context: StepContext) -> dict[str, Any]:
    """Runs 3 s in small sleeps, marking in Redis when each attempt starts and if it finishes."""
    store = _redis()
    mark = f"{os.environ.get('RUVON_BROKER_KEY_PREFIX', '')}slow:{context.workflow_id}"
    store.rpush(f"{mark}:events", f"start {context.attempt} {time.time()}")
    for _ in range(30):
        time.sleep(0.1)
    store.rpush(f"{mark}:events", f"finish {context.attempt} {time.time()}")
    return {"never": True}


def five_seconds(state: dict[str, Any], context: StepContext) -> dict[str, Any]:
    count_effect(context)
    time.sleep(5)
    return {"slept": 5}


def three_seconds(state: dict[str, Any], context: StepContext) -> dict[str, Any]:
    time.sleep(3)
    return {"slept": 3}


def warm_up(state: dict[str, Any], context: StepContext) -> dict[str, Any]:
    """A second on a worker: time for a signal to arrive before the workflow waits for it."""
    time.sleep(1.0)
    return {"warm": True}


def record_call(state: dict[str, Any], context: StepContext) -> dict[str, Any]:
    """A call held open ``state['hold']`` seconds: its [start, end] (UNIX seconds) is pushed to
    ``calls:<customer>`` in Redis, so a test can count how many overlapped (any process); the
    first attempt of a ``hang_first`` workflow hangs until its worker is killed."""
    prefix = os.environ.get("RUVON_BROKER_KEY_PREFIX", "")
    started = time.time()
    _redis().set(f"{prefix}started:{context.workflow_id}:{context.attempt}", os.getpid())
    if state.get("hang_first") and context.attempt == 1:
        time.sleep(60)
    time.sleep(float(state.get("hold", 0.2)))
    ended = time.time()
    _redis().rpush(f"{prefix}calls:{state.get('customer', 'all')}", f"{started}:{ended}")
    return {"called": [started, ended]}
