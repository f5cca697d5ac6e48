"""Metrics, health files and JSON logs of real workers and a real beat.

Two prefork workers, each with its own ``/metrics`` port and multiprocess directory; the first
recycles its children every two tasks (``--max-tasks-per-child 2``), so the counts it serves
must survive children that come and go, in a bounded number of files. A beat serves the queue
metrics read from PostgreSQL and what its sweeps did (they run in the beat: no worker consumes
a maintenance queue). The workflows that run are known, so every counter and histogram count is
asserted exactly (summed over the workers: whichever ran a step counted it).
"""

from __future__ import annotations

import asyncio
import json
import re
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
from click.testing import CliRunner
from prometheus_client import CollectorRegistry
from prometheus_client.mmap_dict import MmapedDict, mmap_key
from prometheus_client.parser import text_string_to_metric_families

from ruvon.cli.main import cli
from ruvon.client import Client
from ruvon.implementations.execution.broker_lanes import lane_key
from ruvon.implementations.observability.prometheus import PrometheusObserver, RuvonMetrics
from ruvon.models import WorkflowStatus
from ruvon.testing.cluster import LocalCluster, WorkerProcess
from ruvon.testing.processes import free_port
from tests.integration.distributed_support import (
    QUEUE,
    WAIT,
    builder_of,
    settings_of,
    started_cluster,
)

pytestmark = [pytest.mark.slow, pytest.mark.serial, pytest.mark.timeout(180)]

UNSERVED = "nobody-listens"


@dataclass
class Ops:
    cluster: LocalCluster
    recycling: WorkerProcess
    steady: WorkerProcess
    ports: dict[str, int]
    metrics_dirs: dict[str, Path]
    health_dir: Path
    beat_port: int


def _stale_counter(directory: Path) -> None:
    """A value file left by a previous run: the worker must wipe it, not add it to its counts."""
    directory.mkdir(parents=True)
    stale = MmapedDict(str(directory / "counter_p0.db"))
    key = mmap_key(
        "ruvon_workflows_finished",
        "ruvon_workflows_finished_total",
        ("workflow_type", "status"),
        ("Stale", "COMPLETED"),
        "left over",
    )
    stale.write_value(key, 41.0, 0.0)
    stale.close()


@pytest.fixture(scope="module")
def ops(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ops]:
    root = tmp_path_factory.mktemp("ops")
    health_dir = root / "health"
    beat_port = free_port()
    shared = {
        "RUVON_METRICS_ADDR": "127.0.0.1",
        "RUVON_HEALTH_DIR": str(health_dir),
        "RUVON_HEALTH_INTERVAL": "0.3",
        "RUVON_LOG_FORMAT": "json",
        "RUVON_BEAT_METRICS_PORT": str(beat_port),
        "RUVON_SWEEP_SECONDS": "0.5",
        "RUVON_DISPATCH_TIMEOUT_SECONDS": "1",
    }
    ports = {"recycling": free_port(), "steady": free_port()}
    dirs = {name: root / f"metrics-{name}" for name in ports}
    _stale_counter(dirs["recycling"])
    with started_cluster(shared, workers=0) as cluster:
        workers = {
            name: cluster.start_worker(
                queues=[QUEUE] if name == "recycling" else [QUEUE, "ops-extra"],
                name=name,
                wait=False,
                extra_args=["--max-tasks-per-child", "2"] if name == "recycling" else [],
                env={"RUVON_METRICS_PORT": str(ports[name]), "RUVON_METRICS_DIR": str(dirs[name])},
            )
            for name in ports
        }
        for worker in workers.values():
            worker.wait_ready(cluster.ready_timeout)
        cluster.start_beat()
        _wait_serving(beat_port)
        yield Ops(
            cluster, workers["recycling"], workers["steady"], ports, dirs, health_dir, beat_port
        )


def _wait_serving(port: int, timeout: float = 30.0) -> None:
    """Until ``/metrics`` on ``port`` answers (a process serves it once it has started)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            _scrape(port)
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def _scrape(port: int) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def _total(scrapes: list[dict], name: str, **labels: str) -> float:
    wanted = set(labels.items())
    return sum(
        value
        for scrape in scrapes
        for (sample, sample_labels), value in scrape.items()
        if sample == name and wanted <= sample_labels
    )


async def _run_all(ops: Ops, registry: CollectorRegistry) -> None:
    settings = settings_of(ops.cluster)
    builder = builder_of(settings)
    builder.observer = PrometheusObserver(RuvonMetrics(registry))
    async with Client(builder, settings=settings) as client:
        runs = [
            ("AsyncChain", {"counter": 0}, WorkflowStatus.COMPLETED),
            ("AsyncChain", {"counter": 0}, WorkflowStatus.COMPLETED),
            ("AsyncChain", {"counter": 0}, WorkflowStatus.COMPLETED),
            ("Retries", {}, WorkflowStatus.COMPLETED),
            ("DistributedSaga", {}, WorkflowStatus.FAILED_ROLLED_BACK),
            ("FanOut", {"size": 3}, WorkflowStatus.COMPLETED),
        ]
        records = [await client.start(kind, data) for kind, data, _ in runs]
        for record, (kind, _, status) in zip(records, runs, strict=True):
            done = await client.wait(record.id, timeout=WAIT)
            assert done.status is status, (kind, done.status, done.error)


def test_worker_metrics_count_what_ran_across_recycled_children(ops: Ops) -> None:
    before = set(ops.recycling.child_pids())
    client_registry = CollectorRegistry()
    asyncio.run(_run_all(ops, client_registry))
    scrapes = [_scrape(port) for port in ops.ports.values()]

    # The beat counted the starts, read from PostgreSQL; the client, which started them, did
    # not (on a cluster no process counts its own starts: the beat's count is the cluster's).
    beat = _scrape(ops.beat_port)
    for kind, started in {"AsyncChain": 3, "Retries": 1, "DistributedSaga": 1, "FanOut": 1}.items():
        assert _total([beat, *scrapes], "ruvon_workflows_started_total", workflow_type=kind) == (
            started
        )
        value = client_registry.get_sample_value(
            "ruvon_workflows_started_total", {"workflow_type": kind}
        )
        assert value is None
    finished = "ruvon_workflows_finished_total"
    assert _total(scrapes, finished, workflow_type="AsyncChain", status="COMPLETED") == 3
    assert _total(scrapes, finished, workflow_type="Retries", status="COMPLETED") == 1
    assert _total(scrapes, finished, workflow_type="FanOut", status="COMPLETED") == 1
    saga = {"workflow_type": "DistributedSaga"}
    assert _total(scrapes, finished, status="FAILED_ROLLED_BACK", **saga) == 1
    assert _total(scrapes, finished) == 6
    assert _total(scrapes, finished, workflow_type="Stale") == 0  # the old file was wiped

    count = "ruvon_step_duration_seconds_count"
    expected_steps = {
        ("AsyncChain", "First", "ASYNC"): 3,
        ("AsyncChain", "Second", "ASYNC"): 3,
        ("AsyncChain", "Third", "ASYNC"): 3,
        ("AsyncChain", "Finish", "STANDARD"): 3,
        ("Retries", "Flaky", "ASYNC"): 1,
        ("DistributedSaga", "Reserve", "COMPENSATABLE"): 1,
        ("DistributedSaga", "Charge", "COMPENSATABLE"): 1,
        ("FanOut", "Make_Items", "STANDARD"): 1,
        ("FanOut", "Square_All", "PARALLEL"): 1,
        ("FanOut", "Finish", "STANDARD"): 1,
    }
    for (kind, step, step_type), n in expected_steps.items():
        labels = {"workflow_type": kind, "step": step, "kind": step_type}
        assert _total(scrapes, count, **labels) == n, labels
        assert _total(scrapes, "ruvon_step_duration_seconds_bucket", le="+Inf", **labels) == n
        assert _total(scrapes, "ruvon_step_duration_seconds_sum", **labels) > 0
    assert _total(scrapes, count) == sum(expected_steps.values())
    flaky = {"workflow_type": "Retries", "step": "Flaky", "kind": "ASYNC"}
    assert _total(scrapes, "ruvon_step_retries_total", **flaky) == 2
    assert _total(scrapes, "ruvon_step_retries_total") == 2
    ship = {"workflow_type": "DistributedSaga", "step": "Ship", "kind": "ASYNC"}
    assert _total(scrapes, "ruvon_step_failures_total", **ship) == 1
    compensations = "ruvon_compensations_total"
    for step in ("Reserve", "Charge"):
        assert _total(scrapes, compensations, step=step, outcome="ok", **saga) == 1
    assert _total(scrapes, compensations) == 2

    # Children were recycled (the pool's PIDs changed), yet the value files stay one per slot.
    assert set(ops.recycling.child_pids()) != before
    for directory in ops.metrics_dirs.values():
        names = sorted(path.name for path in directory.glob("*.db"))
        assert names, directory
        assert all(re.fullmatch(r"(counter|histogram)_(p0|p1|main)\.db", n) for n in names), names

    _assert_json_logs_name_the_steps(ops)


def test_every_start_is_counted_once_cluster_wide(ops: Ops) -> None:
    """Workflows started by a client, and the children the workers start for them, are counted
    exactly once over every target Prometheus scrapes (both workers and the beat); a beat
    started afterwards serves the same totals (the count lives in PostgreSQL, so it survives a
    beat restart without a counter reset)."""
    starts = 4

    async def start_nested() -> None:
        settings = settings_of(ops.cluster)
        async with Client(builder_of(settings), settings=settings) as client:
            records = [await client.start("NestLevel1", {}) for _ in range(starts)]
            for record in records:
                done = await client.wait(record.id, timeout=WAIT)
                assert done.status is WorkflowStatus.COMPLETED, done.error

    asyncio.run(start_nested())
    workers = [_scrape(port) for port in ops.ports.values()]
    targets = [*workers, _scrape(ops.beat_port)]
    started = "ruvon_workflows_started_total"
    # The client's 4, and the 4 + 4 children the workers started.
    for level in ("NestLevel1", "NestLevel2", "NestLevel3"):
        assert _total(targets, started, workflow_type=level) == starts, level
    assert _total(workers, started) == 0  # the workers leave the cluster's count to the beat

    later_port = free_port()
    later = ops.cluster.start_beat("beat-later", env={"RUVON_BEAT_METRICS_PORT": str(later_port)})
    try:
        _wait_serving(later_port)
        later_scrape = _scrape(later_port)
        for level in ("NestLevel1", "NestLevel2", "NestLevel3"):
            assert _total([later_scrape], started, workflow_type=level) == starts, level
    finally:
        later.stop()


def test_sweeps_and_queue_lag_are_served(ops: Ops) -> None:
    async def unserved() -> str:
        settings = settings_of(ops.cluster)
        async with Client(builder_of(settings), settings=settings) as client:
            record = await client.start("Unserved", {})
            await client.wait(record.id, timeout=WAIT, until={WorkflowStatus.PENDING_ASYNC})
            return record.id

    asyncio.run(unserved())
    # Its message waits in Redis for a worker on its queue: lose it, as a Redis restart would.
    with redis.Redis.from_url(ops.cluster.env["RUVON_BROKER_URL"]) as broker:
        assert broker.delete(lane_key(ops.cluster.key_prefix, UNSERVED, 0)) == 1
    deadline = time.monotonic() + 30
    while True:
        beat = _scrape(ops.beat_port)
        resent = _total([beat], "ruvon_lost_messages_resent_total")
        lag = beat.get(("ruvon_queue_lag_seconds", frozenset({("queue", UNSERVED)})), 0.0)
        if (resent >= 1 and lag >= 1) or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    assert resent >= 1  # the beat's redispatch sweep re-sent the run whose message was lost
    assert beat[("ruvon_steps_queued", frozenset({("queue", UNSERVED)}))] == 1
    assert lag >= 1
    assert beat[("ruvon_queue_stats_up", frozenset())] == 1
    assert _total([beat], "ruvon_zombies_recovered_total", action="requeued") == 0
    assert _total([beat], "ruvon_sweep_failures_total", sweep="redispatch_lost") == 0
    assert _total([beat], "ruvon_sweep_last_success_timestamp_seconds", sweep="poll_schedules") > 0
    workers = [_scrape(port) for port in ops.ports.values()]
    assert _total(workers, "ruvon_lost_messages_resent_total") == 0  # the sweeps are the beat's
    beat_log = [
        json.loads(line) for line in ops.cluster.beats[0].log().splitlines() if line[:1] == "{"
    ]
    assert any(record["logger"] == "ruvon.beat" for record in beat_log)  # JSON logs too


def _health(ops: Ops, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["health", *args], env=ops.cluster.env, catch_exceptions=False)
    return result.exit_code, result.output


def test_health_files_probe_and_report(ops: Ops) -> None:
    alive = {w.hostname: ops.health_dir / f"{w.hostname}.alive" for w in ops.cluster.workers}
    for path in alive.values():
        assert path.exists() and path.with_suffix(".ready").exists()
        assert _health(ops, "--worker-file", str(path), "--max-age", "5")[0] == 0
        assert (
            _health(ops, "--worker-file", str(path.with_suffix(".ready")), "--max-age", "5")[0] == 0
        )

    code, output = _health(
        ops,
        "--json",
        "--ping",
        "--max-age",
        "5",
        "--health-dir",
        str(ops.health_dir),
    )
    report = json.loads(output)
    assert code == 0, report
    assert report["ok"] is True
    assert report["database"]["ok"] is True
    assert report["migrations"]["ok"] is True
    assert report["migrations"]["current"] == report["migrations"]["head"]
    assert report["broker"]["ok"] is True
    workers = report["workers"]
    assert workers["ok"] is True
    assert {w["node"] for w in workers["workers"] if w["alive"] and w["ready"]} == set(alive)
    assert set(workers["ping"]) == set(alive)
    queues = {w["node"]: w["queues"] for w in workers["workers"]}
    assert queues[ops.steady.hostname] == sorted([QUEUE, "ops-extra"])

    # A worker that stops removes its files: its probe fails.
    probe = ops.cluster.start_worker(queues=["ops-probe"], concurrency=1, name="probe")
    path = ops.health_dir / f"{probe.hostname}.alive"
    assert _health(ops, "--worker-file", str(path), "--max-age", "5")[0] == 0
    probe.stop()
    assert not path.exists() and not path.with_suffix(".ready").exists()
    assert _health(ops, "--worker-file", str(path), "--max-age", "5")[0] == 1


def _wait_for(path: Path, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} was not written"
        time.sleep(0.1)


def test_the_beat_keeps_health_files_for_its_probes(ops: Ops, tmp_path: Path) -> None:
    """beat.alive and beat.ready in RUVON_HEALTH_DIR (not listed as a worker's, above); alive
    but not ready while the database cannot be reached; both gone once it stops."""
    shared = ops.health_dir / "beat.alive"
    for path in (shared, shared.with_suffix(".ready")):
        assert _health(ops, "--worker-file", str(path), "--max-age", "5")[0] == 0

    unreachable = tmp_path / "unreachable"
    beat = ops.cluster.start_beat(
        "beat-unreachable",
        env={
            "RUVON_HEALTH_DIR": str(unreachable),
            "RUVON_BEAT_METRICS_PORT": "0",
            "RUVON_DATABASE_URL": f"postgresql://postgres@127.0.0.1:{free_port()}/nothing",
        },
    )
    try:
        _wait_for(unreachable / "beat.alive")
        time.sleep(1.0)  # a few heartbeats and connection attempts
        alive = _health(ops, "--worker-file", str(unreachable / "beat.alive"), "--max-age", "5")
        assert alive[0] == 0
        assert not (unreachable / "beat.ready").exists()
    finally:
        beat.stop()
    assert not (unreachable / "beat.alive").exists()

    own = tmp_path / "own"
    beat = ops.cluster.start_beat(
        "beat-health", env={"RUVON_HEALTH_DIR": str(own), "RUVON_BEAT_METRICS_PORT": "0"}
    )
    _wait_for(own / "beat.ready")
    assert _health(ops, "--worker-file", str(own / "beat.ready"), "--max-age", "5")[0] == 0
    assert beat.stop() == 0
    assert not (own / "beat.alive").exists() and not (own / "beat.ready").exists()
    assert _health(ops, "--worker-file", str(own / "beat.alive"), "--max-age", "5")[0] == 1


def _assert_json_logs_name_the_steps(ops: Ops) -> None:
    """Records the step functions logged on the workers carry their workflow, step, attempt."""
    records = [
        json.loads(line)
        for worker in ops.cluster.workers
        for line in worker.log().splitlines()
        if line.startswith("{")
    ]
    inside = [r for r in records if r["logger"] == "tests.cluster_steps"]
    assert inside, "the test steps log"
    for record in inside:
        assert record["workflow_type"] == "AsyncChain" and record["workflow_id"]
        assert record["attempt"] == 1 and record["task_name"].startswith("ruvon.run.")
        function = record["message"].split(":")[0]
        assert (
            record["step"]
            in {"add_one": ("First", "Third"), "add_ten_async": ("Second",)}[function]
        )
    assert Counter(r["step"] for r in inside) == {"First": 3, "Second": 3, "Third": 3}
