"""The stored workflows the ``server`` benchmark reads: real ones, then many copies of them.

On a running cluster (:func:`~loadtests.bench_distributed.distributed_cluster`), the client
first runs one workflow of each :data:`TYPES` and a ``BenchFanOutWide`` PARALLEL of
``width`` branches to the end: what the workers write for those (step runs, one per branch,
branch results, audit rows) is exactly what a cluster stores. Then one ``INSERT ... SELECT``
over ``generate_series`` (``server_dataset.sql``) adds ``rows`` workflows to the same table,
each copying the definition snapshot of its type's real workflow, with weighted types and
statuses, creation times spread over :data:`SPAN_DAYS` days, idempotency keys on 60 % of them;
then ``VACUUM (ANALYZE)``. ``setseed`` makes the draw the same on every run (the ids are random
UUIDs, as the engine's are).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg

from ruvon.client import Client
from ruvon.implementations.persistence.queries import load_queries
from ruvon.records import ListPosition

__all__ = ["SPAN_DAYS", "STATUSES", "TYPES", "Dataset", "run_fan_out", "seed_workflows"]

_Q = load_queries(Path(__file__).with_suffix(".sql"))

SPAN_DAYS = 30
SEED = 0.42
#: (type, input, weight): the seeded mix of workflow types, each copied from one real run.
TYPES: tuple[tuple[str, dict[str, Any], float], ...] = (
    ("BenchAsync3", {"counter": 0}, 0.40),
    ("BenchHumanResume", {}, 0.20),
    ("BenchSaga", {}, 0.15),
    ("BenchFanOut50", {}, 0.10),
    ("BenchAsync1", {"counter": 0}, 0.15),
)
#: (status, weight) of the seeded workflows: mostly done, a few failed, some still going.
STATUSES: tuple[tuple[str, float], ...] = (
    ("COMPLETED", 0.83),
    ("FAILED", 0.03),
    ("FAILED_ROLLED_BACK", 0.01),
    ("CANCELLED", 0.02),
    ("WAITING_HUMAN", 0.06),
    ("PENDING_ASYNC", 0.03),
    ("ACTIVE", 0.01),
    ("PENDING_PARALLEL", 0.01),
)
_SETTLED = frozenset({"COMPLETED", "WAITING_HUMAN", "FAILED_ROLLED_BACK"})
_FAILED = frozenset({"FAILED", "FAILED_WORKER_CRASH", "CANCELLED"})
_TIMEOUT = 300.0


@dataclass(frozen=True)
class Dataset:
    """What was stored, and the filter values the list queries use (with what they match)."""

    rows: int
    fan_out_id: str
    fan_out_width: int
    fan_out_rows: tuple[int, int, int]  # its step runs, branch results, audit rows
    seed_seconds: float
    id_prefix: str
    key_prefix: str
    since: datetime
    until: datetime
    deep_cursor: str
    deep_offset: int
    matches: dict[str, int]


def _lower_bounds(weights: Sequence[float]) -> list[float]:
    """width_bucket thresholds: 0, w1, w1+w2, ... (the last weight's bucket runs up to 1)."""
    bounds, total = [], 0.0
    for weight in weights:
        bounds.append(total)
        total += weight
    if abs(total - 1.0) > 1e-9:
        raise ValueError(f"weights add up to {total}, not 1")
    return bounds


async def wait_settled(db: asyncpg.Connection, workflow_id: str) -> str:
    """Poll a workflow until it completes, waits for a person, or rolls back."""
    deadline = time.monotonic() + _TIMEOUT
    while (status := await db.fetchval(_Q["workflow_status"], workflow_id)) not in _SETTLED:
        if status in _FAILED or time.monotonic() > deadline:
            raise RuntimeError(f"benchmark workflow {workflow_id} is {status}")
        await asyncio.sleep(0.005)
    return str(status)


async def run_fan_out(client: Client, db: asyncpg.Connection, width: int) -> str:
    """Run a ``width``-branch BenchFanOutWide on the cluster to COMPLETED; its id."""
    record = await client.start("BenchFanOutWide", {"items": list(range(width))})
    await wait_settled(db, record.id)
    return record.id


async def seed_workflows(
    client: Client, db: asyncpg.Connection, rows: int, fan_out_width: int
) -> Dataset:
    """Real workflows of every type and the fan-out, then ``rows`` seeded ones; the filters."""
    fan_out_id = await run_fan_out(client, db, fan_out_width)
    templates = []
    for workflow_type, data, _ in TYPES:
        record = await client.start(workflow_type, data)
        await wait_settled(db, record.id)
        templates.append(record.id)
    newest = datetime.now(UTC).replace(microsecond=0)
    started = time.perf_counter()
    await db.fetchval(_Q["set_seed"], SEED)
    await db.execute(
        _Q["seed_workflows"],
        rows,
        templates,
        _lower_bounds([weight for _, _, weight in TYPES]),
        [status for status, _ in STATUSES],
        _lower_bounds([weight for _, weight in STATUSES]),
        SPAN_DAYS * 86400.0,
        newest,
    )
    await db.execute(_Q["vacuum_analyze"])
    seeded = time.perf_counter() - started
    return await _filters(db, rows, fan_out_id, fan_out_width, newest, seeded)


async def _filters(
    db: asyncpg.Connection,
    rows: int,
    fan_out_id: str,
    width: int,
    newest: datetime,
    seeded: float,
) -> Dataset:
    total = int(await db.fetchval(_Q["count_rows"]))
    middle = await db.fetchrow(_Q["position_at"], total // 2)
    id_prefix = str(middle["id"])[:8]  # what a person pastes from a log line
    key_prefix = f"order-{rows // 2:07d}"[:-1]  # ten consecutive keys, 60 % of them taken
    since = newest - timedelta(days=SPAN_DAYS // 3)
    until = since + timedelta(days=1)
    deep_offset = int(total * 0.9)
    deep = await db.fetchrow(_Q["position_at"], deep_offset)
    matches = {
        "all": total,
        "status=FAILED": int(await db.fetchval(_Q["count_status"], "FAILED")),
        "type=BenchSaga": int(await db.fetchval(_Q["count_type"], "BenchSaga")),
        "id_prefix": int(await db.fetchval(_Q["count_id_prefix"], id_prefix)),
        "idempotency_key_prefix": int(await db.fetchval(_Q["count_key_prefix"], key_prefix)),
        "since/until (1 day)": int(await db.fetchval(_Q["count_window"], since, until)),
        "cursor deep": total - deep_offset - 1,
    }
    counts = await db.fetchrow(_Q["step_run_counts"], fan_out_id)
    return Dataset(
        rows=total,
        fan_out_id=fan_out_id,
        fan_out_width=width,
        fan_out_rows=(int(counts[0]), int(counts[1]), int(counts[2])),
        seed_seconds=seeded,
        id_prefix=id_prefix,
        key_prefix=key_prefix,
        since=since,
        until=until,
        deep_cursor=ListPosition(deep["created_at"], str(deep["id"])).to_cursor(),
        deep_offset=deep_offset,
        matches=matches,
    )
