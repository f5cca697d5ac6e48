"""The ``ruvon`` command against a real cluster: PostgreSQL, Redis and a Celery worker process.

``start --wait`` streams each step while the workflow runs; ``steps`` lists its step runs;
``list`` filters and pages on PostgreSQL.
"""

from __future__ import annotations

import json
import queue
import subprocess
import sys
import threading
from collections.abc import Iterator

import pytest

from ruvon.testing.cluster import LocalCluster
from tests.integration.distributed_support import QUEUE, REGISTRY, fetch, started_cluster

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalCluster]:
    with started_cluster() as running:
        yield running


def _argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "ruvon.cli.main", *args]


def _env(cluster: LocalCluster) -> dict[str, str]:
    return {**cluster.env, "NO_COLOR": "1", "COLUMNS": "250", "PYTHONUNBUFFERED": "1"}


def _ruvon(cluster: LocalCluster, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        _argv(*args), env=_env(cluster), capture_output=True, text=True, timeout=120, check=False
    )


async def _status(cluster: LocalCluster, workflow_id: str) -> str:
    rows = await fetch(cluster, "SELECT status FROM workflow_executions WHERE id = $1", workflow_id)
    return str(rows[0][0])


def _started_id(line: str) -> str:
    return line.split("Started ", 1)[1].split()[0]


async def test_start_wait_prints_each_step_as_it_commits(cluster: LocalCluster) -> None:
    argv = _argv("start", "SlowSteps", "--registry", str(REGISTRY), "--wait", "--timeout", "60")
    lines: queue.Queue[str] = queue.Queue()
    seen: list[str] = []
    workflow_id = None
    with subprocess.Popen(
        argv, env=_env(cluster), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as process:
        assert process.stdout is not None and process.stderr is not None
        stdout = process.stdout

        def read() -> None:
            for line in stdout:
                lines.put(line)
            lines.put("")  # end of output

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        try:
            while True:
                line = lines.get(timeout=60)
                assert line, "the command ended before printing the first step:\n" + "".join(seen)
                seen.append(line)
                if line.startswith("Started "):
                    workflow_id = _started_id(line)
                if "Quick completed" in line:
                    break
            # The first step's line is out while the workflow still runs its 3 s step.
            assert workflow_id is not None
            assert process.poll() is None
            assert await _status(cluster, workflow_id) not in ("COMPLETED", "FAILED")
            while line := lines.get(timeout=60):
                seen.append(line)
            reader.join(timeout=10)
            process.wait(timeout=30)
            stderr = process.stderr.read()
        finally:
            if process.poll() is None:
                process.kill()
    output = "".join(seen)
    assert process.returncode == 0, output + stderr
    step_lines = [line for line in seen if " completed" in line]
    assert [line.split()[1] for line in step_lines] == ["Quick", "Slow", "Finish"], output
    # Where each ran and how long it took: the worker and queue of the claimed run.
    workers = await fetch(
        cluster, "SELECT DISTINCT lease_owner FROM step_runs WHERE workflow_id = $1", workflow_id
    )
    where = f" on {workers[0][0]} (queue {QUEUE})"
    assert len(workers) == 1 and all(line.rstrip().endswith(where) for line in step_lines), output
    slow = float(step_lines[1].split(" in ", 1)[1].split(" s", 1)[0])
    assert 2.9 <= slow < 10, step_lines[1]
    assert "status ACTIVE → PENDING_ASYNC at Quick" in output
    assert output.count("Quick completed") == 1  # each committed step once
    assert "COMPLETED" in output.split("Finish completed", 1)[1]


def test_steps_lists_the_runs_with_worker_queue_and_times(cluster: LocalCluster) -> None:
    started = _ruvon(cluster, "start", "AsyncChain", "--registry", str(REGISTRY), "--wait")
    assert started.returncode == 0, started.stdout + started.stderr
    workflow_id = _started_id(started.stdout)

    listed = _ruvon(cluster, "steps", workflow_id, "--output", "json")
    assert listed.returncode == 0, listed.stderr
    runs = json.loads(listed.stdout)
    assert runs and runs[0]["worker"], runs
    assert [(r["kind"], r["step_name"]) for r in runs] == [
        ("step", "First"),
        ("step", "Second"),
        ("step", "Third"),
    ]
    for run in runs:
        assert run["status"] == "DONE" and run["attempt"] == 1 and run["queue"] == QUEUE
        assert run["worker"] == runs[0]["worker"] and run["error"] is None
        assert run["claimed_at"] <= run["finished_at"] and run["duration_seconds"] >= 0

    jsonl = _ruvon(cluster, "steps", workflow_id, "-o", "jsonl")
    assert [json.loads(line) for line in jsonl.stdout.splitlines()] == runs

    table = _ruvon(cluster, "steps", workflow_id)
    assert table.returncode == 0, table.stderr
    header, *rows = table.stdout.splitlines()
    assert header.split() == [
        "RUN", "STEP", "KIND", "ATTEMPT", "STATUS", "WORKER", "QUEUE", "CLAIMED", "FINISHED",
        "DURATION", "ERROR",
    ]  # fmt: skip
    assert len(rows) == 3 and all(runs[0]["worker"] in row and "DONE" in row for row in rows)

    missing = _ruvon(cluster, "steps", "no-such-workflow")
    assert missing.returncode == 4 and "not found" in missing.stderr
    assert "Traceback" not in missing.stderr


def test_list_pages_and_filters_on_postgres(cluster: LocalCluster) -> None:
    registry = str(REGISTRY)
    ids = []
    for _ in range(3):
        started = _ruvon(cluster, "start", "AsyncChain", "--registry", registry, "--cluster")
        assert started.returncode == 0, started.stderr
        ids.append(_started_id(started.stdout))
    newest_first = ids[::-1]

    first = _ruvon(
        cluster, "list", "--type", "AsyncChain", "--since", "10m", "-n", "2", "-o", "jsonl"
    )
    assert first.returncode == 0, first.stderr
    page = [json.loads(line) for line in first.stdout.splitlines()]
    assert [row["id"] for row in page] == newest_first[:2]
    # A workflow started meanwhile is newer: it does not push anything onto the next page.
    _ruvon(cluster, "start", "AsyncChain", "--registry", registry, "--cluster")
    rest = _ruvon(cluster, "list", "--type", "AsyncChain", "--since", "10m", "-o", "jsonl",
                  "--cursor", page[-1]["cursor"])  # fmt: skip
    assert [json.loads(line)["id"] for line in rest.stdout.splitlines()][:1] == newest_first[2:]

    table = _ruvon(cluster, "list", "--type", "AsyncChain", "-n", "1")
    assert "Next page: ruvon list --type AsyncChain --limit 1 --cursor " in table.stdout
    assert _ruvon(cluster, "list", "--until", "1h").stdout.strip() == "No workflows found."
