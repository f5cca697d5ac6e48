"""One chaos scenario end to end: a cluster on the private servers, a load of kitchen-sink
workflows, faults injected meanwhile, the drain, then the invariant report.

::

    with chaos_cluster(servers, tmp_path, workers=3) as cluster:
        cluster.start_beat()
        run = ChaosRun(cluster, "S1", workflows=30, spread=8.0)
        report = asyncio.run(run.run(inject))

An injector is a coroutine ``inject(run)`` that runs while the workflows are being started; it
records each fault with :meth:`ChaosRun.fault` (when, and which processes) right before it
strikes, so that recovery latencies can be measured against it.
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import os
import random
import re
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import redis

from ruvon.builder import WorkflowBuilder
from ruvon.client import Client
from ruvon.config import Settings
from ruvon.errors import RuvonError
from ruvon.implementations.execution.broker_lanes import lane_key
from ruvon.testing.cluster import LocalCluster, WorkerProcess
from tests.chaos.invariants import (
    ROOT_TYPE,
    ChaosReport,
    Fault,
    Q,
    check_invariants,
    create_chaos_tables,
)
from tests.chaos.servers import PrivatePostgres, PrivateRedis

__all__ = [
    "FAST",
    "LEASE",
    "LONG",
    "SWEEP",
    "ChaosRun",
    "Servers",
    "chaos_cluster",
    "freeze_busy_worker",
    "kill_busy_child",
    "kill_busy_worker",
    "probe_workers",
    "queued_messages",
    "start_probed_worker",
    "workers_frozen",
]

REGISTRY = Path(__file__).with_name("workflows") / "workflow_registry.yaml"
QUEUE = "default"
LONG = os.environ.get("RUVON_CHAOS_LONG", "").lower() in ("1", "true", "yes")
LEASE = 2.0
SWEEP = 1.0
FAST = {
    "RUVON_STEP_LEASE_SECONDS": str(LEASE),
    "RUVON_HEARTBEAT_SECONDS": "0.5",
    "RUVON_SWEEP_SECONDS": str(SWEEP),
    "RUVON_DISPATCH_TIMEOUT_SECONDS": "2",
    # Repeated kills may hit one run several times: that must not exhaust its crash budget.
    "RUVON_CRASH_ATTEMPTS": "20",
    "RUVON_STATEMENT_TIMEOUT": "10",
}
_START_PATIENCE = 60.0  # a start retried through an outage gives up after this
# Longer than a lease, the dispatch timeout and a few sweeps: what recovery could take.
_STRANDED_GRACE = LEASE + 2.0 + 5 * SWEEP
_PROBE_TASK = "ruvon.health.check_database"
_PROBE_PATIENCE = 30.0  # a worker must consume again this soon after the broker is back
_RESULT = re.compile(r"\] succeeded in [0-9.]+s: '([a-z-]+)'")
_SWEEP = re.compile(r"beat sweep (\w+): (\{[^}]*\})")
_SWEEP_FAILED = re.compile(r"beat sweep \w+ failed")


@dataclass
class Servers:
    """The private PostgreSQL and Redis of a chaos session."""

    postgres: PrivatePostgres
    redis: PrivateRedis


@contextlib.contextmanager
def chaos_cluster(
    servers: Servers,
    log_dir: Path,
    *,
    workers: int = 3,
    env: Mapping[str, str] | None = None,
) -> Iterator[LocalCluster]:
    """A cluster of prefork workers (the default queue; the beats sweep by themselves) on the
    private servers.

    Its logs go to ``log_dir`` (pytest's ``tmp_path``: kept for the last runs).
    """
    settings = {
        **FAST,
        "RUVON_REGISTRY_FILE": str(REGISTRY),
        "RUVON_DEFAULT_QUEUE": QUEUE,
        "RUVON_BROKER_URL": servers.redis.url,
        "RUVON_RESULT_BACKEND": servers.redis.url,
        # The run's report reads what each task returned from Celery's per-task lines.
        "RUVON_TASK_LOGS": "1",
        **(env or {}),
    }
    with LocalCluster(
        env=settings,
        queues=[QUEUE],
        workers=workers,
        server_url=servers.postgres.url,
        log_dir=log_dir,
    ) as cluster:
        asyncio.run(create_chaos_tables(cluster.database_url))
        yield cluster


class ChaosRun:
    """Start ``workflows`` kitchen sinks over ``spread`` seconds while an injector strikes."""

    def __init__(
        self,
        cluster: LocalCluster,
        scenario: str,
        *,
        workflows: int,
        spread: float,
        fail_every: int = 5,
        drain_timeout: float = 180.0 if LONG else 60.0,
    ) -> None:
        self.cluster = cluster
        self.scenario = scenario
        self.workflows = workflows
        self.spread = spread
        self.fail_every = fail_every
        self.drain_timeout = drain_timeout
        self.faults: list[Fault] = []
        self.extra_workers: list[WorkerProcess] = []
        self.start_errors = 0
        self.started = 0
        self.background: list[asyncio.Task[object]] = []
        self.notes: dict[str, object] = {}

    # -- what injectors use ------------------------------------------------------------------
    def fault(self, kind: str, pids: set[int] | frozenset[int] = frozenset()) -> None:
        """Record a fault striking now (call it right before striking)."""
        self.faults.append(Fault(datetime.now(UTC), kind, frozenset(pids)))

    def all_workers(self) -> list[WorkerProcess]:
        return [*self.cluster.workers, *self.extra_workers]

    def worker_of(self, pid: int) -> WorkerProcess | None:
        """The live worker whose main process or pool child ``pid`` is."""
        for worker in self.all_workers():
            if worker.process.poll() is None and (pid == worker.pid or pid in worker.child_pids()):
                return worker
        return None

    async def busy_pids(self, patience: float = 2.0, *, continued: bool = False) -> list[int]:
        """Pool processes of live workers holding a step run (mid-step), polled for a while;
        with ``continued``, only those inside a continued chain (a run their commit took)."""
        deadline = time.monotonic() + patience
        query = Q["continued_owners" if continued else "busy_owners"]
        while True:
            with contextlib.suppress(OSError, asyncpg.PostgresError, TimeoutError):
                conn = await asyncpg.connect(self.cluster.database_url, timeout=5)
                try:
                    owners = await conn.fetch(query)
                finally:
                    await conn.close()
                pids = [int(o[0].rpartition(":")[2]) for o in owners if o[0]]
                busy = [pid for pid in pids if self.worker_of(pid) is not None]
                if busy:
                    return busy
            if time.monotonic() > deadline:
                return []
            await asyncio.sleep(0.02)

    async def last_audit_id(self) -> int:
        """The newest audit row's id (0 when there is none)."""
        conn = await asyncpg.connect(self.cluster.database_url, timeout=5)
        try:
            return int(await conn.fetchval(Q["last_audit_id"]))
        finally:
            await conn.close()

    async def detected_pids(self, *, after: int) -> set[int]:
        """Pool processes whose runs the beat took for zombies after audit row ``after``."""
        with contextlib.suppress(OSError, asyncpg.PostgresError, TimeoutError):
            conn = await asyncpg.connect(self.cluster.database_url, timeout=5)
            try:
                owners = await conn.fetch(Q["detected_owners"], after)
            finally:
                await conn.close()
            return {int(o[0].rpartition(":")[2]) for o in owners if o[0]}
        return set()

    async def runs_done_by(self, pids: set[int]) -> int:
        """How many step runs the processes ``pids`` committed."""
        conn = await asyncpg.connect(self.cluster.database_url, timeout=5)
        try:
            owners = await conn.fetch(Q["done_owners"])
        finally:
            await conn.close()
        return sum(1 for (owner,) in owners if owner and int(owner.rpartition(":")[2]) in pids)

    @property
    def loading(self) -> bool:
        """Whether workflows are still being started (injectors strike meanwhile)."""
        return self.started < self.workflows

    async def until_progress(self, fraction: float) -> None:
        """Wait until ``fraction`` of the workflows have been started."""
        while self.started < self.workflows * fraction:
            await asyncio.sleep(0.05)

    # -- the run --------------------------------------------------------------------------------
    async def run(self, inject: Callable[[ChaosRun], Awaitable[None]]) -> ChaosReport:
        """Load + faults, drain, wait out expired leases, then read the invariants."""
        settings = Settings.from_env(self.cluster.env)
        builder = WorkflowBuilder(REGISTRY, settings=settings)
        async with Client(builder, settings=settings) as client:
            load = asyncio.create_task(self._start_all(client))
            try:
                await inject(self)
            finally:
                await load
                await asyncio.gather(*self.background)
        drained = await self._drain()
        await self._settle_leases()
        report = await check_invariants(
            self.cluster.database_url,
            self.scenario,
            expected_workflows=self.workflows,
            faults=self.faults,
            drain_seconds=drained,
        )
        report.notes.update(self._log_figures())
        report.notes.update(self.notes)
        report.notes["client start attempts that hit an outage"] = self.start_errors
        return report

    async def _start_all(self, client: Client) -> None:
        pause = self.spread / max(self.workflows, 1)
        for index in range(self.workflows):
            fail_at_end = index % self.fail_every == self.fail_every - 1
            data: dict[str, object] = {"order": index, "fail_at_end": fail_at_end}
            await self._start_one(client, index, data)
            self.started += 1
            await asyncio.sleep(pause)

    async def _start_one(self, client: Client, index: int, data: dict[str, object]) -> None:
        # The idempotency key makes a start retried through an outage create one workflow.
        deadline = time.monotonic() + _START_PATIENCE
        while True:
            try:
                await client.start(ROOT_TYPE, data, idempotency_key=f"chaos-{index}")
                return
            except (RuvonError, OSError):
                self.start_errors += 1
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.2)

    async def _drain(self) -> float:
        """Seconds from the end of the load until every workflow is terminal (or the timeout).

        Workflows left stranded (see :data:`~tests.chaos.invariants.STRANDED`) never move
        again: once only they remain, for longer than the sweeps need to act, stop waiting.
        """
        began = time.monotonic()
        deadline = began + self.drain_timeout
        only_stranded_since: float | None = None
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError, asyncpg.PostgresError, TimeoutError):
                conn = await asyncpg.connect(self.cluster.database_url, timeout=5)
                try:
                    unsettled, stranded = await conn.fetchrow(Q["unsettled_count"])
                finally:
                    await conn.close()
                now = time.monotonic()
                if unsettled == 0:
                    return now - began
                if unsettled != stranded:
                    only_stranded_since = None
                elif only_stranded_since is None:
                    only_stranded_since = now
                elif now - only_stranded_since > _STRANDED_GRACE:
                    return only_stranded_since - began
            await asyncio.sleep(0.2)
        return time.monotonic() - began

    async def _settle_leases(self) -> None:
        """Give the sweeps a lease and two sweeps to recover runs whose worker died."""
        deadline = time.monotonic() + LEASE + 3 * SWEEP
        while time.monotonic() < deadline:
            conn = await asyncpg.connect(self.cluster.database_url, timeout=5)
            try:
                if not await conn.fetch(Q["expired_running"]):
                    return
            finally:
                await conn.close()
            await asyncio.sleep(0.25)

    def _log_figures(self) -> dict[str, object]:
        """What the logs say: task outcomes and errors (workers), sweep work (beats)."""
        results: dict[str, int] = {}
        sweeps: dict[str, int] = {}
        errors = 0
        for worker in self.all_workers():
            text = worker.log()
            for outcome in _RESULT.findall(text):
                results[outcome] = results.get(outcome, 0) + 1
            errors += text.count(" raised unexpected: ")
        failed_sweeps = 0
        for beat in self.cluster.beats:
            text = beat.log()
            for sweep, fields in _SWEEP.findall(text):
                work = ast.literal_eval(fields)
                sweeps[sweep] = sweeps.get(sweep, 0) + work["requeued"] + work["sent"]
            failed_sweeps += len(_SWEEP_FAILED.findall(text))
        alive = [w for w in self.all_workers() if w.process.poll() is None]
        return {
            "task outcomes": dict(sorted(results.items())),
            "sweep work (runs)": dict(sorted(sweeps.items())),
            "tasks that raised": errors,
            "sweeps that failed (the next ran on time)": failed_sweeps,
            "workers alive": f"{len(alive)}/{len(self.all_workers())}",
            "beats alive": f"{sum(b.process.poll() is None for b in self.cluster.beats)}"
            f"/{len(self.cluster.beats)}",
        }


# -- injectors' building blocks -----------------------------------------------------------------


async def kill_busy_child(run: ChaosRun, *, continued: bool = False) -> bool:
    """SIGKILL one pool process that holds a step run (with ``continued``: one inside a
    continued chain); False if none was busy."""
    pids = await run.busy_pids(continued=continued)
    if not pids:
        return False
    pid = random.choice(pids)
    run.fault("kill pool child in a continued chain" if continued else "kill pool child", {pid})
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    return True


async def kill_busy_worker(run: ChaosRun) -> bool:
    """SIGKILL a whole worker (main process and pool) that holds a step run; start another."""
    pids = await run.busy_pids()
    worker = run.worker_of(random.choice(pids)) if pids else None
    if worker is None:
        return False
    run.fault("kill worker", {worker.pid, *worker.child_pids()})
    await asyncio.to_thread(worker.kill)
    # Not waiting for its ping: it may be killed in turn before it ever answers one.
    await asyncio.to_thread(run.cluster.start_worker, wait=False)
    return True


def queued_messages(run: ChaosRun) -> int:
    """Messages waiting in the broker's step queue (what a restart without persistence loses)."""
    with (
        contextlib.suppress(redis.RedisError),
        redis.Redis.from_url(run.cluster.env["RUVON_BROKER_URL"]) as client,
    ):
        return int(client.llen(lane_key(run.cluster.key_prefix, QUEUE, 0)))
    return 0


@contextlib.asynccontextmanager
async def workers_frozen(run: ChaosRun) -> AsyncIterator[None]:
    """SIGSTOP every live worker (process group) meanwhile: messages pile up in the broker."""
    frozen = [w for w in run.all_workers() if w.process.poll() is None]
    for worker in frozen:
        os.killpg(worker.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        for worker in frozen:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(worker.pid, signal.SIGCONT)


def start_probed_worker(cluster: LocalCluster, name: str) -> tuple[WorkerProcess, str]:
    """A worker on the chaos queues plus one of its own (``probe.NAME``), for
    :func:`probe_workers`; not waited for."""
    queue = f"probe.{name}"
    worker = cluster.start_worker([QUEUE, queue], name=name, wait=False)
    return worker, queue


async def probe_workers(
    run: ChaosRun,
    probes: Mapping[WorkerProcess, str],
    since: float,
    patience: float = _PROBE_PATIENCE,
) -> dict[str, float | None]:
    """Send each worker of ``probes`` a task on its own queue and wait until its log says it
    ran it: proof that it consumes again. A probe is sent again while sending fails or every
    5 s (one sent into an outage is lost with the broker's data). Returns each worker's
    seconds from ``since`` (``time.monotonic()``) until it answered; ``None`` for one that
    died or did not answer by ``since + patience``."""
    answered: dict[str, float | None] = {}
    sent: dict[str, list[str]] = {w.hostname: [] for w in probes}
    last_sent: dict[str, float] = {}
    while len(answered) < len(probes) and time.monotonic() < since + patience:
        for worker, queue in probes.items():
            if worker.hostname in answered:
                continue
            if worker.process.poll() is not None:
                answered[worker.hostname] = None
                continue
            log = worker.log()
            if any(f"[{task_id}] succeeded" in log for task_id in sent[worker.hostname]):
                answered[worker.hostname] = time.monotonic() - since
                continue
            if time.monotonic() - last_sent.get(worker.hostname, -1e9) > 5.0:
                with contextlib.suppress(Exception):  # the broker may still be down
                    result = await asyncio.to_thread(
                        run.cluster.client.send_task, _PROBE_TASK, queue=queue
                    )
                    sent[worker.hostname].append(result.id)
                    last_sent[worker.hostname] = time.monotonic()
        await asyncio.sleep(0.1)
    return {w.hostname: answered.get(w.hostname) for w in probes}


async def freeze_busy_worker(
    run: ChaosRun, seconds: float, *, continued: bool = False, takeover_patience: float = 4 * LEASE
) -> bool:
    """SIGSTOP a worker's process group holding a step run (with ``continued``: inside a
    continued chain) for ``seconds``, then SIGCONT.

    A freeze is meant to outlast the lease so that the beat takes the run over. On a loaded
    machine the sweep that does so can come late: the worker then stays frozen until one of its
    runs is taken over, for up to ``takeover_patience`` seconds more, so the scenario tests the
    take-over rather than the machine's speed.
    """
    pids = await run.busy_pids(continued=continued)
    worker = run.worker_of(random.choice(pids)) if pids else None
    if worker is None:
        return False
    frozen = {worker.pid, *worker.child_pids()}
    before = await run.last_audit_id()
    os.killpg(worker.pid, signal.SIGSTOP)
    try:
        # Steps take milliseconds: the run seen a moment ago may have committed before the
        # signal landed. Only a worker frozen while it holds a run is a fault worth counting.
        if not frozen & set(await run.busy_pids(patience=0.0, continued=continued)):
            return False
        run.fault("freeze worker in a continued chain" if continued else "freeze worker", frozen)
        await asyncio.sleep(seconds)
        deadline = time.monotonic() + takeover_patience
        while not frozen & await run.detected_pids(after=before) and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
    finally:
        os.killpg(worker.pid, signal.SIGCONT)
    return True
