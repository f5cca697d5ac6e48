"""A rolling upgrade: the newer release has migrated the database, this (older) code's workers
keep (re)starting on it. Real ``celery worker`` subprocesses on real PostgreSQL and Redis; the
newer release is Ruvon's migrations plus a test-only revision (tests/migrations/future_revisions),
applied by the real ``ruvon db upgrade`` from its own script location.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ruvon.db_schema import migrations
from ruvon.models import WorkflowStatus
from ruvon.testing.cluster import LocalCluster
from tests.integration.distributed_support import WAIT, client_of, started_cluster
from tests.migrations.future_revisions import NEXT, newer_migrations, upgrade_with

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

HEAD = migrations.SCHEMA_REVISION


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[LocalCluster]:
    """A private database and broker prefix, with no worker yet."""
    with started_cluster(workers=0, log_dir=tmp_path / "logs") as running:
        try:
            yield running
        finally:
            for worker in running.workers:  # shown by pytest only when the test failed
                print(f"--- worker log ({worker.log_path}) ---\n{worker.log()}")


async def test_a_worker_runs_workflows_on_a_newer_compatible_schema(
    cluster: LocalCluster, tmp_path: Path
) -> None:
    newer = newer_migrations(tmp_path / "newer", compatible_with=HEAD)
    upgrade_with(newer, cluster.database_url)
    assert migrations.current_revision(cluster.database_url) == NEXT

    worker = cluster.start_worker()  # this code: passes its startup check, then serves
    async with client_of(cluster) as client:  # this code's client opens the database too
        record = await client.start("AsyncChain", {"counter": 0})
        done = await client.wait(record.id, timeout=WAIT)
    assert done.status is WorkflowStatus.COMPLETED, (done.status, done.error)
    assert done.state["counter"] == 12
    assert set(done.state["pids"]) <= set(worker.child_pids())
    assert "cannot start" not in worker.log()


@pytest.mark.parametrize("declares", ["itself", "nothing"])
def test_a_worker_refuses_a_newer_schema_that_is_not_compatible(
    cluster: LocalCluster, tmp_path: Path, declares: str
) -> None:
    compatible_with = NEXT if declares == "itself" else None
    upgrade_with(
        newer_migrations(tmp_path / "newer", compatible_with=compatible_with), cluster.database_url
    )

    worker = cluster.start_worker(wait=False)
    code = worker.process.wait(timeout=60)
    log = worker.log()
    assert code == 78, log  # EX_CONFIG, before taking any message
    assert "ruvon worker cannot start: SchemaOutOfDate" in log
    assert f"schema is at revision {NEXT}" in log and f"revision {HEAD}" in log
    assert "upgrade Ruvon" in log
    assert " ready." not in log
