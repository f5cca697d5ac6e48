"""A worker whose broker goes away after a commit loses nothing and does not fail the task.

The runner announces some runs itself after committing them (a retry's next attempt, a
PARALLEL batch released, an early message sent again). Those runs are already QUEUED in
PostgreSQL, so a failed announcement is only a missing hint for the beat's lost-message sweep,
exactly as for the engine's own announcements: it is logged, and the task reports what it did.

Real PostgreSQL; the broker is a loopback port nothing listens on (a real refused connection).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Iterator

import asyncpg
import pytest
import redis

from ruvon.cluster.runner import StepRunner
from ruvon.config import Settings
from ruvon.implementations.execution.celery import CeleryExecutionProvider
from ruvon.implementations.persistence.postgres import PostgresPersistenceProvider
from ruvon.models import WorkflowStatus
from ruvon.testing.postgres import create_database, drop_database
from ruvon.testing.redis import redis_url_for_tests
from tests.integration.distributed_support import REGISTRY

pytestmark = pytest.mark.slow

REFUSING_BROKER = "redis://127.0.0.1:9/0"  # the discard port: nothing listens on loopback


@pytest.fixture
async def database() -> AsyncIterator[str]:
    url = await create_database()
    yield url
    await drop_database(url)


@pytest.fixture(autouse=True)
def step_keys(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The test steps record their attempts in the real Redis, under a prefix of this test's."""
    prefix = f"ruvon-test-{uuid.uuid4().hex[:12]}:"
    monkeypatch.setenv("RUVON_BROKER_KEY_PREFIX", prefix)
    yield
    with redis.Redis.from_url(redis_url_for_tests()) as client:
        for key in list(client.scan_iter(match=f"{prefix}*")):
            client.delete(key)


async def test_a_retry_whose_announcement_fails_stays_queued_and_the_task_succeeds(
    database: str, caplog: pytest.LogCaptureFixture
) -> None:
    settings = Settings.from_env(
        {
            "RUVON_DATABASE_URL": database,
            "RUVON_BROKER_URL": REFUSING_BROKER,
            "RUVON_REGISTRY_FILE": str(REGISTRY),
        }
    )
    persistence = PostgresPersistenceProvider(database, 1, 2)
    await persistence.initialize()
    execution = CeleryExecutionProvider(settings=settings)
    try:
        runner = StepRunner.for_settings(settings, persistence, execution, owner="test-worker")
        workflow = await runner.builder.create_workflow("Retries", {})  # its announcement fails
        conn = await asyncpg.connect(database)
        try:
            run_id = await conn.fetchval(
                "SELECT id FROM step_runs WHERE workflow_id = $1", workflow.id
            )
            with caplog.at_level(logging.ERROR):
                outcome = await runner.run(run_id)  # attempt 1 fails: a retry is committed
            assert outcome == "retry"
            row = await conn.fetchrow("SELECT status, attempt FROM step_runs WHERE id = $1", run_id)
            assert (row["status"], row["attempt"]) == ("QUEUED", 1)
            # What the beat's lost-message sweep does for the missing hint: send the run again.
            outcomes = [outcome]
            while outcomes[-1] in ("retry", "not-due") and len(outcomes) < 100:
                await asyncio.sleep(0.1)
                outcomes.append(await runner.run(run_id))
        finally:
            await conn.close()
        stored = await persistence.load_workflow(workflow.id)
    finally:
        await persistence.close()
    assert [o for o in outcomes if o != "not-due"] == ["retry", "retry", "done"], outcomes
    assert stored.status is WorkflowStatus.COMPLETED
    assert stored.state["flaky_attempts"] == 3
    assert any("lost-message sweep" in r.getMessage() for r in caplog.records)
