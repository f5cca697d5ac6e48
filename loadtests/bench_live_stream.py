"""How long a commit takes to reach a connected live stream (target: within 1 s).

``python -m loadtests.bench_live_stream [--workflows N] [--streams S] [--backend sqlite|postgres]``

The server app (``create_app``) is served by uvicorn in this process over a fresh SQLite file
or PostgreSQL database; ``S`` clients hold the list stream (``GET /api/v1/events``) open while
``N`` workflows (BenchHumanResume) are started and then resumed through the API, one every
20 ms. For each event the measured stream receives, the lag is its arrival time minus the
commit's ``updated_at`` (this machine's clock, written just before the commit). Prints the
number of events and the lag's p50 / p95 / max per backend, and the feed's polls.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx

from ruvon.config import Settings
from ruvon.implementations.execution.sync import SyncExecutionProvider
from ruvon.server.app import create_app
from ruvon.server.tokens import Role, TokenSet
from ruvon.testing.postgres import create_database, drop_database
from ruvon.testing.processes import free_port

REGISTRY = Path(__file__).with_name("workflows") / "workflow_registry.yaml"
TOKEN = "bench-token"
PACE = 0.02


@contextlib.asynccontextmanager
async def database(backend: str) -> AsyncIterator[str]:
    if backend == "sqlite":
        with tempfile.TemporaryDirectory() as directory:
            yield f"sqlite:///{Path(directory) / 'bench.sqlite3'}"
        return
    url = await create_database()
    try:
        yield url
    finally:
        await drop_database(url)


@dataclass(frozen=True)
class LiveLag:
    """One run: the events the measured stream received and their lag (seconds)."""

    backend: str
    streams: int
    expected: int
    lags: tuple[float, ...]
    polls: int

    @property
    def p50(self) -> float:
        return statistics.median(self.lags) if self.lags else float("nan")

    @property
    def p95(self) -> float:
        ordered = sorted(self.lags)
        return ordered[int(0.95 * (len(ordered) - 1))] if ordered else float("nan")

    @property
    def max(self) -> float:
        return max(self.lags) if self.lags else float("nan")

    def line(self) -> str:
        return (
            f"{self.backend}: {len(self.lags)} events (>= {self.expected} expected) on 1 of "
            f"{self.streams} streams; lag p50 {self.p50 * 1000:.0f} ms, p95 "
            f"{self.p95 * 1000:.0f} ms, max {self.max * 1000:.0f} ms; {self.polls} polls"
        )


async def measure(backend: str, workflows: int, streams: int) -> LiveLag:
    """One run on a fresh database of ``backend`` (the ``server`` suite's live-stream rows)."""
    from ruvon.server.serve import server_for

    async with database(backend) as url:
        settings = Settings.from_env(
            {"RUVON_DATABASE_URL": url, "RUVON_REGISTRY_FILE": str(REGISTRY)}
        )
        execution = SyncExecutionProvider()
        app = create_app(settings, TokenSet([(TOKEN, Role.ADMIN, "bench")]), execution=execution)
        port = free_port()
        server = server_for(app, "127.0.0.1", port, log_level="warning")
        serving = asyncio.create_task(server.serve())
        while not server.started:
            await asyncio.sleep(0.02)
        base = f"http://127.0.0.1:{port}"
        headers = {"Authorization": f"Bearer {TOKEN}"}
        lags: list[float] = []
        expected = 0
        try:
            async with (
                httpx.AsyncClient(base_url=base, headers=headers, timeout=30) as client,
                contextlib.AsyncExitStack() as stack,
            ):
                responses = [
                    await stack.enter_async_context(client.stream("GET", "/api/v1/events"))
                    for _ in range(streams)
                ]
                done = asyncio.Event()
                # Every stream is read (a stream nobody reads would only fill its buffers).
                readers = [
                    asyncio.create_task(_read(response, lags if n == 0 else [], done))
                    for n, response in enumerate(responses)
                ]
                ids = []
                for _ in range(workflows):
                    made = await client.post(
                        "/api/v1/workflows", json={"type": "BenchHumanResume", "data": {}}
                    )
                    ids.append(made.json()["id"])
                    await asyncio.sleep(PACE)
                for workflow_id in ids:
                    await client.post(
                        f"/api/v1/workflows/{workflow_id}/resume",
                        json={"input": {"approved": True}},
                    )
                    await asyncio.sleep(PACE)
                await asyncio.sleep(1.5)  # the last commits' events
                expected = workflows * 2
                done.set()
                for reader in readers:
                    reader.cancel()
                await asyncio.gather(*readers, return_exceptions=True)
            polls = app.state.live.feed.polls
        finally:
            server.should_exit = True
            await serving
            execution.close()
    return LiveLag(backend, streams, expected, tuple(lags), polls)


async def _read(response: httpx.Response, lags: list[float], done: asyncio.Event) -> None:
    async for line in response.aiter_lines():
        if line.startswith("data: "):
            committed = datetime.fromisoformat(json.loads(line[6:])["updated_at"])
            lags.append((datetime.now(UTC) - committed).total_seconds())
        if done.is_set():
            return


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workflows", type=int, default=200)
    parser.add_argument("--streams", type=int, default=20)
    parser.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="both")
    args = parser.parse_args()
    backends = ["sqlite", "postgres"] if args.backend == "both" else [args.backend]
    for backend in backends:
        print(asyncio.run(measure(backend, args.workflows, args.streams)).line())


if __name__ == "__main__":
    main()
