"""``ruvon flower`` against a real cluster: Ruvon's tasks appear in Flower under their own names.

One cluster (a prefork worker and a beat on a private database and Redis prefix) and one
``ruvon flower`` subprocess on the same broker and prefix, on a free loopback port. Flower only
learns about tasks from the events it receives while it runs, so it starts before the workflows.
The beat's sweeps run in the beat's process: no ``ruvon.maintenance.*`` task reaches the task
stream any more (they were most of what Flower showed). Continuation is off
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from ruvon.client import Client
from ruvon.models import WorkflowStatus
from ruvon.testing.cluster import LocalCluster
from ruvon.testing.processes import free_port, spawn, stop_process_group
from tests.integration.distributed_support import QUEUE, WAIT, client_of, fetch, started_cluster

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

READY_TIMEOUT = 30.0
SEEN_TIMEOUT = 30.0
SWEEP = 0.5


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalCluster]:
    env = {"RUVON_SWEEP_SECONDS": str(SWEEP)}
    with started_cluster(env, queues=[QUEUE]) as running:
        running.start_beat().wait_sweeping()
        yield running


@pytest.fixture(scope="module")
def flower(cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The base URL of a ``ruvon flower`` on the cluster's broker (stopped afterwards)."""
    port = free_port()
    log_path = tmp_path_factory.mktemp("flower") / "flower.log"
    env = {**cluster.env, "FLOWER_UNAUTHENTICATED_API": "true"}
    command = [sys.executable, "-m", "ruvon.cli.main", "flower", "--port", str(port)]
    process = spawn(command, env, log_path)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(process, url, log_path)
        yield url
    finally:
        stop_process_group(process, 15)
        print(f"--- flower log ({log_path}) ---\n{log_path.read_text(errors='replace')}")


def _wait_healthy(process: subprocess.Popen[bytes], url: str, log_path: Path) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"flower exited with {process.returncode}:\n{log_path.read_text()}")
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(f"{url}/healthcheck", timeout=1.0).status_code == 200:
                return
        time.sleep(0.2)
    raise RuntimeError(f"flower did not answer within {READY_TIMEOUT} s:\n{log_path.read_text()}")


def tasks_seen(
    url: str, names: set[str], runs: set[tuple[str, int]] = frozenset()
) -> dict[str, dict[str, Any]]:
    """Flower's tasks (``/api/tasks``) once every name in ``names``, and every run in ``runs``
    (``(workflow id, run id)``) in the SUCCESS state with its name (it comes with the task's
    "received" event), is among them."""
    deadline = time.monotonic() + SEEN_TIMEOUT
    tasks: dict[str, dict[str, Any]] = {}
    while time.monotonic() < deadline:
        response = httpx.get(f"{url}/api/tasks", timeout=5.0)
        response.raise_for_status()
        tasks = response.json()
        named = [task.get("name") for task in tasks.values()]
        done = {
            (args[1], args[0])
            for task in tasks.values()
            if str(task.get("name")).startswith("ruvon.run.") and task.get("state") == "SUCCESS"
            for args in [ast.literal_eval(task["args"])]
        }
        if names <= set(named) and runs <= done:
            return tasks
        time.sleep(0.3)
    seen = sorted({str(task.get("name")) for task in tasks.values()})
    raise AssertionError(f"Flower saw {seen}, not all of {sorted(names)} and runs {runs}")


async def _completed(client: Client, workflow_type: str, data: dict[str, Any]) -> str:
    record = await client.start(workflow_type, data)
    done = await client.wait(record.id, timeout=WAIT)
    assert done.status is WorkflowStatus.COMPLETED, (done.status, done.error)
    return record.id


async def _flower_receives_events(client: Client, url: str) -> None:
    """Flower subscribes to the workers' events a moment after its HTTP server answers; a task
    that ran before then is listed without its "received" event (no name, no args). Run warm-up
    workflows until Flower shows one of their tasks whole."""
    for _ in range(5):
        warm = await _completed(client, "AsyncChain", {"counter": 0})
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline:
            tasks = httpx.get(f"{url}/api/tasks", timeout=5.0).json()
            if any(
                str(task.get("name")).startswith("ruvon.run.") and warm in str(task.get("args"))
                for task in tasks.values()
            ):
                return
            await asyncio.sleep(0.3)
    raise AssertionError("Flower never listed a whole task of five warm-up workflows")


async def test_flower_lists_ruvon_tasks_by_name_with_their_run_ids(
    cluster: LocalCluster, flower: str
) -> None:
    async with client_of(cluster) as client:
        await _flower_receives_events(client, flower)
        chain = await _completed(client, "AsyncChain", {"counter": 0})
        order = await _completed(client, "OrderFulfillment", {})
    time.sleep(4 * SWEEP)  # the beat sweeps (and, at 1 s, polls cron) meanwhile
    # A run claimed from a message is a Celery task of its own; a run the worker continued
    # with in the same task (its next ASYNC step, a branch), or a join the completing branch
    # claimed, is part of that task.
    stored = await fetch(
        cluster,
        "SELECT workflow_id, id, kind, step_name, started_at = created_at FROM step_runs "
        "WHERE workflow_id = ANY($1::text[]) ORDER BY id",
        [chain, order],
    )
    first_runs = {next((r[0], r[1]) for r in stored if r[0] == wid) for wid in (chain, order)}
    tasks = tasks_seen(flower, {"ruvon.run.step"}, first_runs)
    names = {str(task.get("name")) for task in tasks.values()}
    assert not {name for name in names if name.startswith("ruvon.maintenance.")}
    assert {name for name in names if name.startswith("ruvon.")} <= {
        "ruvon.run.step",
        "ruvon.run.branch",
        "ruvon.run.join",
        "ruvon.run.advance",
    }
    # (run_id, workflow_id, step, branch): a reader can tell which workflow and step ran.
    runs = {
        (args[1], args[0]): (task["name"], args[2], task["state"])
        for task in tasks.values()
        if str(task.get("name")).startswith("ruvon.run.")
        and (args := ast.literal_eval(task["args"]))[1] in (chain, order)
    }
    assert set(runs) <= {(r[0], r[1]) for r in stored}  # every task is a stored run
    assert {state for _, _, state in runs.values()} == {"SUCCESS"}
    chain_steps = [step for (wid, _), (_, step, _) in runs.items() if wid == chain]
    assert chain_steps == ["First"]  # Second and Third ran in First's task
    assert [r[3] for r in stored if r[0] == chain and r[4]] == ["Second", "Third"]
    workers = httpx.get(f"{flower}/api/workers", params={"refresh": "1"}, timeout=10.0).json()
    assert {worker.hostname for worker in cluster.workers} <= set(workers)


def test_flower_serves_its_prometheus_metrics(cluster: LocalCluster, flower: str) -> None:
    response = httpx.get(f"{flower}/metrics", timeout=5.0)
    assert response.status_code == 200
    assert "flower_events_total" in response.text
    assert "flower_worker_online" in response.text
