"""Real ``celery worker`` subprocesses (prefork, 2 children) on the real Redis and PostgreSQL.

Each test gets a :class:`~ruvon.testing.cluster.LocalCluster` with one ``ruvon worker`` (which
execs Celery, so the PID we signal is Celery's) on a run-unique queue, Redis key prefix (broker
and results), hostname and PostgreSQL ``application_name``, on a private database cloned from the
migrated template. Parallel runs therefore never see each other's messages, control replies or
sessions. The cluster always stops the worker (SIGTERM, then SIGKILL of its process group after
a timeout); the fixture then prints its log, which pytest shows when a test fails.

Needs ``RUVON_TEST_POSTGRES_URL`` and ``RUVON_TEST_REDIS_URL`` (defaults: the local services
``scripts/services`` starts).
"""

from __future__ import annotations

import ast
import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from ruvon.config import Settings
from ruvon.implementations.execution.celery_config import BROKER_VISIBILITY_TIMEOUT, celery_config
from ruvon.testing.cluster import LocalCluster, WorkerProcess
from ruvon.testing.postgres import create_database, drop_database, server_url

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

REPO = Path(__file__).resolve().parents[2]
HEALTH_TASK = "ruvon.health.check_database"
SESSIONS = "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1"
RESULT_TIMEOUT = 30.0


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[LocalCluster]:
    """A private database and Redis prefix with one prefork worker (concurrency 2) on them."""
    cluster = LocalCluster(log_dir=tmp_path)
    try:
        with cluster:
            yield cluster
    finally:
        for worker in cluster.workers:  # shown by pytest only when the test failed
            print(f"--- worker log ({worker.log_path}) ---\n{worker.log()}")


@pytest.fixture
def running_worker(cluster: LocalCluster) -> WorkerProcess:
    return cluster.workers[0]


def ask_health(cluster: LocalCluster, count: int) -> list[dict[str, object]]:
    results = [cluster.client.send_task(HEALTH_TASK, queue=cluster.queue) for _ in range(count)]
    return [result.get(timeout=RESULT_TIMEOUT) for result in results]


async def count_sessions(application_name: str, at_least: int, at_most: int, within: float) -> int:
    """Count the sessions named ``application_name`` until the count is in range or time is up."""
    connection = await asyncpg.connect(server_url(), timeout=10)
    try:
        deadline = time.monotonic() + within
        while True:
            count: int = await connection.fetchval(SESSIONS, application_name)
            if at_least <= count <= at_most or time.monotonic() >= deadline:
                return count
            await asyncio.sleep(0.1)
    finally:
        await connection.close()


def test_both_pool_processes_answer_the_database_health_task(
    cluster: LocalCluster, running_worker: WorkerProcess
) -> None:
    pids: set[int] = set()
    deadline = time.monotonic() + RESULT_TIMEOUT
    # With prefetch 1, a batch lands on whichever child is idle: a few batches reach both.
    while len(pids) < 2 and time.monotonic() < deadline:
        replies = ask_health(cluster, 8)
        assert all(reply["ok"] is True for reply in replies)
        pids.update(int(str(reply["pid"])) for reply in replies)
    assert len(pids) == 2, f"only pool process(es) {pids} answered"
    assert running_worker.process.pid not in pids  # the children answer, not the main process
    assert pids == set(running_worker.child_pids())


def test_warm_shutdown_closes_every_process_pool(
    cluster: LocalCluster, running_worker: WorkerProcess
) -> None:
    ask_health(cluster, 4)
    name = cluster.application_name
    # Each child opened its pool (min 1, max 2 connections) in worker_process_init.
    opened = asyncio.run(count_sessions(name, at_least=2, at_most=4, within=RESULT_TIMEOUT))
    assert 2 <= opened <= 4, f"{opened} sessions named {name}"

    assert running_worker.stop() == 0
    left = asyncio.run(count_sessions(name, at_least=0, at_most=0, within=5.0))
    assert left == 0, f"{left} sessions named {name} survived the warm shutdown"
    log = running_worker.log()
    assert "Warm shutdown" in log
    assert log.count("closed its database pool") == 2, "a child skipped worker_process_shutdown"


@pytest.mark.parametrize("kind", ["unmigrated", "sqlite"])
def test_a_worker_refuses_to_start_on_a_database_it_cannot_use(
    cluster: LocalCluster, tmp_path: Path, kind: str
) -> None:
    if kind == "sqlite":
        url, expected = f"sqlite:///{tmp_path / 'x.sqlite3'}", "ConfigurationError"
    else:
        url, expected = asyncio.run(create_database(from_template=False)), "SchemaOutOfDate"
    try:
        worker = cluster.start_worker(env={"RUVON_DATABASE_URL": url}, name=kind, wait=False)
        code = worker.process.wait(timeout=60)
    finally:
        if kind != "sqlite":
            asyncio.run(drop_database(url))
    log = worker.log()
    assert code == 78, log  # EX_CONFIG: it never took a message
    assert f"ruvon worker cannot start: {expected}" in log
    assert ("ruvon db upgrade" if kind != "sqlite" else "needs PostgreSQL") in log
    assert " ready." not in log


def test_app_settings_encode_the_correctness_model() -> None:
    from worker.app import app

    conf = app.conf
    # Chosen by measurement (docs/performance.md): PostgreSQL is the truth, so a message a dead
    # worker had taken or reserved is re-sent by the beat; Celery's defaults are the fast ones.
    assert conf.task_acks_late is False
    assert conf.task_reject_on_worker_lost is False
    assert conf.worker_prefetch_multiplier == 4
    assert conf.worker_cancel_long_running_tasks_on_connection_loss is False  # Celery 6: True
    assert conf.task_send_sent_event is False  # a 2nd round trip per message; Flower needs none
    assert conf.worker_send_task_events is False  # Flower asks the workers for them
    late = celery_config(Settings.from_env({"RUVON_ACKS_LATE": "1", "RUVON_TASK_EVENTS": "1"}))
    assert late["task_acks_late"] is late["task_reject_on_worker_lost"] is True
    assert late["worker_send_task_events"] is True
    assert conf.broker_connection_retry_on_startup is True
    assert conf.task_serializer == conf.result_serializer == "json"
    assert list(conf.accept_content) == ["json"]
    assert conf.broker_transport_options["visibility_timeout"] == BROKER_VISIBILITY_TIMEOUT
    app.loader.import_default_modules()  # what the worker does at startup (include=...)
    assert HEALTH_TASK in app.tasks  # registered by name; senders never import worker/

    fallback = celery_config(Settings.from_env({"CELERY_BROKER_URL": "redis://broker:6379/3"}))
    assert fallback["broker_url"] == fallback["result_backend"] == "redis://broker:6379/3"
    prefixed = celery_config(Settings.from_env({"RUVON_BROKER_KEY_PREFIX": "staging:"}))
    assert prefixed["broker_transport_options"]["global_keyprefix"] == "staging:"
    assert prefixed["result_backend_transport_options"]["global_keyprefix"] == "staging:"


def test_the_sdk_never_imports_the_worker_package() -> None:
    offenders = []
    for path in sorted((REPO / "ruvon").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            if any(name == "worker" or name.startswith("worker.") for name in names):
                offenders.append(f"{path.relative_to(REPO)}:{node.lineno}")
    assert not offenders, f"ruvon/ imports worker/ at {offenders}"
