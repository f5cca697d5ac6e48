"""Smoke test of the Locust load test (``loadtests/locustfile.py``): a few seconds of ShortAsync.

One real prefork worker on a private database and Redis prefix; Locust runs headless in a
subprocess with the cluster's environment, and its CSV statistics must show workflows that all
completed.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ruvon.testing.cluster import REPO_ROOT, LocalCluster

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

LOCUSTFILE = REPO_ROOT / "loadtests" / "locustfile.py"
REGISTRY = REPO_ROOT / "loadtests" / "workflows" / "workflow_registry.yaml"


def command(csv_prefix: Path) -> list[str]:
    """Locust, headless for 5 s, 2 ShortAsync users; statistics to ``<csv_prefix>_stats.csv``."""
    locust = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless"]
    load = ["-u", "2", "-r", "2", "-t", "5s", "--stop-timeout", "20", "--only-summary"]
    return [*locust, *load, "--csv", str(csv_prefix), "ShortAsync"]


def test_short_async_scenario_completes_every_workflow(tmp_path: Path) -> None:
    settings = {"RUVON_REGISTRY_FILE": str(REGISTRY), "RUVON_DEFAULT_QUEUE": "default"}
    with LocalCluster(env=settings, queues=["default"], log_dir=tmp_path) as cluster:
        run = subprocess.run(
            command(tmp_path / "smoke"),
            env={**os.environ, **cluster.env, "PYTHONPATH": str(REPO_ROOT)},
            capture_output=True,
            text=True,
            timeout=90,
            check=False,
        )
        logs = "\n".join(worker.log() for worker in cluster.workers)
    output = f"{run.stdout}\n{run.stderr}\n--- worker logs ---\n{logs}"
    assert run.returncode == 0, output
    with (tmp_path / "smoke_stats.csv").open() as stats:
        rows = {row["Name"]: row for row in csv.DictReader(stats)}
    assert int(rows["short_async_3"]["Request Count"]) > 0, output
    assert int(rows["Aggregated"]["Failure Count"]) == 0, output
