"""``scripts/cluster``: up starts a working cluster, down leaves no process behind.

The cluster gets its own state directory, database, Redis key prefix and ports through the
``RUVON_CLUSTER_*`` variables, so it never meets a developer's ``scripts/cluster up``.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest

from ruvon.testing.cluster import REPO_ROOT
from ruvon.testing.postgres import server_url
from ruvon.testing.processes import free_port
from ruvon.testing.redis import redis_url_for_tests

pytestmark = [pytest.mark.slow, pytest.mark.timeout(150)]

SCRIPT = REPO_ROOT / "scripts" / "cluster"


def cluster(
    env: dict[str, str], *args: str, timeout: float = 90
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(SCRIPT), *args], env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def exports_of(output: str) -> dict[str, str]:
    """The ``export NAME=VALUE`` lines ``up`` prints, as a dict."""
    pairs = [shlex.split(line)[1] for line in output.splitlines() if line.startswith("export ")]
    return dict(pair.split("=", 1) for pair in pairs)


def is_alive(pid: int, start_time: int) -> bool:
    """The process we started (same start time) still runs (a zombie does not count)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return False
    return fields[0] != "Z" and int(fields[19]) == start_time


def in_sessions(session_ids: set[int]) -> list[int]:
    """Live processes in these sessions (each process ``up`` started leads its own)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            fields = (entry / "stat").read_text().rpartition(")")[2].split()
        except (OSError, NotADirectoryError):
            continue
        if entry.name.isdigit() and fields[0] != "Z" and int(fields[3]) in session_ids:
            found.append(int(entry.name))
    return found


async def database_exists(name: str) -> bool:
    conn = await asyncpg.connect(server_url())
    try:
        return await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name) == 1
    finally:
        await conn.close()


@pytest.fixture
def cluster_env(tmp_path: Path) -> Iterator[dict[str, str]]:
    """Settings of a private cluster; whatever happens, it is torn down (and purged) after."""
    run = uuid.uuid4().hex[:10]
    env = {
        **os.environ,
        "RUVON_CLUSTER_DIR": str(tmp_path / "cluster"),
        "RUVON_CLUSTER_POSTGRES_URL": server_url(),
        "RUVON_CLUSTER_DATABASE": f"ruvon_t_cluster_{run}",
        "RUVON_CLUSTER_BROKER_URL": redis_url_for_tests(),
        "RUVON_CLUSTER_KEY_PREFIX": f"ruvon-test-{run}:",
        "RUVON_CLUSTER_FLOWER_PORT": str(free_port()),
        "RUVON_CLUSTER_METRICS_PORT": str(free_port()),
        "RUVON_CLUSTER_SERVER_PORT": str(free_port()),
    }
    yield env
    cluster(env, "down", "--purge", "--timeout", "10")


async def test_up_runs_a_workflow_and_down_leaves_no_process(
    cluster_env: dict[str, str], tmp_path: Path
) -> None:
    up = cluster(cluster_env, "up", "--workers", "1")
    assert up.returncode == 0, up.stdout + up.stderr
    state_dir = Path(cluster_env["RUVON_CLUSTER_DIR"])
    started = json.loads((state_dir / "cluster.json").read_text())["processes"]
    names = sorted(process["name"] for process in started)
    assert names == ["beat", "flower", "server", "worker-1"]
    assert all(is_alive(process["pid"], process["start_time"]) for process in started)
    assert f"http://127.0.0.1:{cluster_env['RUVON_CLUSTER_FLOWER_PORT']}" in up.stdout
    server = f"http://127.0.0.1:{cluster_env['RUVON_CLUSTER_SERVER_PORT']}"
    assert f"{server}/ui" in up.stdout
    token_file = state_dir / "server-token"
    token = token_file.read_text().strip()
    assert token_file.stat().st_mode & 0o777 == 0o600
    assert token not in (state_dir / "server-tokens").read_text()  # only its hash
    assert token not in up.stdout

    exports = exports_of(up.stdout)
    assert exports["RUVON_BROKER_KEY_PREFIX"] == cluster_env["RUVON_CLUSTER_KEY_PREFIX"]
    assert exports["RUVON_DATABASE_URL"].endswith("/" + cluster_env["RUVON_CLUSTER_DATABASE"])
    assert cluster(cluster_env, "env").stdout == (state_dir / "env").read_text()
    assert cluster(cluster_env, "status").returncode == 0
    again = cluster(cluster_env, "up")
    assert again.returncode == 1 and "already up" in again.stderr

    # A client anywhere, with nothing but the printed env.
    start = subprocess.run(
        [
            *(sys.executable, "-m", "ruvon.cli.main", "start", "OrderFulfillment"),
            *("--registry", exports["RUVON_REGISTRY_FILE"], "--wait", "--timeout", "60"),
        ],
        env={**os.environ, **exports},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert start.returncode == 0, start.stdout + start.stderr
    assert "COMPLETED" in start.stdout

    # The cluster's server sees it, with the admin token and not without one.
    listed = httpx.get(
        f"{server}/api/v1/workflows?type=OrderFulfillment",
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    assert listed.status_code == 200, listed.text
    assert [item["status"] for item in listed.json()["items"]] == ["COMPLETED"]
    assert httpx.get(f"{server}/api/v1/workflows", timeout=10).status_code == 401

    down = cluster(cluster_env, "down", "--purge")
    assert down.returncode == 0, down.stdout + down.stderr
    assert not [p["pid"] for p in started if is_alive(p["pid"], p["start_time"])]
    assert not in_sessions({process["pid"] for process in started})  # pool children included
    assert not state_dir.exists()
    assert not await database_exists(cluster_env["RUVON_CLUSTER_DATABASE"])
    assert cluster(cluster_env, "status").returncode == 1
