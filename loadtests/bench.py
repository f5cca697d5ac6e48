"""Benchmark harness: ``python -m loadtests.bench embedded [--workflows N] [--runs R] [--json]``.

Prints steps/s of a 5-step STANDARD workflow on in-memory and on SQLite persistence (sync
executor, everything in-process), each the median of ``--runs`` runs with its min-max spread,
and the engine overhead per step on the in-memory provider. Targets (2-core machine): in-memory
overhead <= 50 microseconds per step; SQLite >= 2,000 durable steps/s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from loadtests.workloads import add_one, register_linear
from ruvon.builder import WorkflowBuilder
from ruvon.implementations.execution.sync import SyncExecutionProvider
from ruvon.implementations.persistence.memory import MemoryPersistenceProvider
from ruvon.implementations.persistence.sqlite import SQLitePersistenceProvider
from ruvon.models import WorkflowStatus
from ruvon.providers.persistence import PersistenceProvider

STEPS = 5


@dataclass
class Figure:
    """One measured quantity: median and spread over runs."""

    name: str
    unit: str
    median: float
    low: float
    high: float
    runs: int
    target: str = ""

    def row(self) -> str:
        spread = f"[{self.low:,.1f} - {self.high:,.1f}]"
        return f"{self.name:<44} {self.median:>12,.1f} {self.unit:<10} {spread:<26} {self.target}"


async def _steps_per_second(persistence: PersistenceProvider, workflows: int) -> float:
    builder = WorkflowBuilder(
        persistence_provider=persistence, execution_provider=SyncExecutionProvider()
    )
    workflow_type = register_linear(builder, steps=STEPS)
    await persistence.initialize()
    # Warm caches (imports, definition snapshot) outside the timed region.
    warm = await builder.create_workflow(workflow_type, {"counter": 0})
    await warm.next_step()
    started = time.perf_counter()
    for _ in range(workflows):
        workflow = await builder.create_workflow(workflow_type, {"counter": 0})
        await workflow.next_step()
        if workflow.status is not WorkflowStatus.COMPLETED:
            raise RuntimeError(f"benchmark workflow ended {workflow.status}")
    elapsed = time.perf_counter() - started
    return workflows * STEPS / elapsed


def _bare_function_seconds(calls: int) -> float:
    state = {"counter": 0}
    started = time.perf_counter()
    for _ in range(calls):
        state = {**state, **add_one(state, None)}
    return (time.perf_counter() - started) / calls


def _measure(
    name: str, unit: str, target: str, runs: int, sample: Callable[[], Awaitable[float]]
) -> Figure:
    values = [asyncio.run(sample()) for _ in range(runs)]
    return Figure(name, unit, statistics.median(values), min(values), max(values), runs, target)


def bench_embedded(workflows: int, runs: int) -> list[Figure]:
    """Memory and SQLite steps/s, and the engine's per-step overhead on memory."""

    async def memory() -> float:
        provider = MemoryPersistenceProvider()
        try:
            return await _steps_per_second(provider, workflows)
        finally:
            await provider.close()

    async def sqlite() -> float:
        with tempfile.TemporaryDirectory(prefix="ruvon-bench-") as tmp:
            provider = SQLitePersistenceProvider(str(Path(tmp) / "bench.sqlite3"))
            try:
                return await _steps_per_second(provider, max(workflows // 4, 50))
            finally:
                await provider.close()

    mem = _measure("memory: 5-step STANDARD workflow", "steps/s", "", runs, memory)
    bare = _bare_function_seconds(100_000)
    overhead = [1e6 / v - bare * 1e6 for v in (mem.median, mem.high, mem.low)]
    return [
        mem,
        Figure(
            "memory: engine overhead per step",
            "us/step",
            overhead[0],
            overhead[1],
            overhead[2],
            runs,
            "target <= 50 us",
        ),
        _measure(
            "sqlite (WAL, file): 5-step STANDARD workflow",
            "steps/s",
            "target >= 2,000 steps/s",
            runs,
            sqlite,
        ),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtests.bench", description=__doc__)
    parser.add_argument("suite", choices=["embedded"], help="which benchmark to run")
    parser.add_argument("--workflows", type=int, default=2000, help="workflows per run")
    parser.add_argument("--runs", type=int, default=3, help="runs per figure (median reported)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args(argv)
    figures = bench_embedded(args.workflows, max(args.runs, 1))
    if args.json:
        print(json.dumps([asdict(f) for f in figures], indent=2))
    else:
        print(f"{'benchmark':<44} {'median':>12} {'unit':<10} {'[min - max]':<26} target")
        for figure in figures:
            print(figure.row())
    return 0


if __name__ == "__main__":
    sys.exit(main())
