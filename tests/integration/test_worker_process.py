"""Real ``celery worker`` subprocesses (prefork, 2 children) on the real Redis and PostgreSQL.

Each worker is started by the ``running_worker`` fixture through ``ruvon worker`` (which execs
Celery, so the PID we signal is Celery's) with a run-unique queue, Redis key prefix (broker and
results), hostname and PostgreSQL ``application_name``, on a private database cloned from the
migrated template. Parallel runs therefore never see each other's messages, control replies or
sessions. The fixture always stops the worker (SIGTERM, then SIGKILL of its process group after a
timeout) and prints its log, which pytest shows when a test fails.

Needs ``RUVON_TEST_POSTGRES_URL`` and ``RUVON_TEST_REDIS_URL`` (defaults: the local services
``scripts/services`` starts).
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import pytest
import redis
from celery import Celery

from ruvon.config import Settings
from ruvon.testing.postgres import create_database, drop_database, server_url
from ruvon.testing.redis import redis_url_for_tests

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

REPO = Path(__file__).resolve().parents[2]
HEALTH_TASK = "ruvon.health.check_database"
SESSIONS = "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1"
READY_TIMEOUT = 60.0  # a cold start on a loaded CI machine; usually ~2 s
RESULT_TIMEOUT = 30.0
STOP_TIMEOUT = 30.0


@dataclass
class RunningWorker:
    """A ``ruvon worker`` subprocess and a client app that reaches only it."""

    process: subprocess.Popen[bytes]
    log_path: Path
    queue: str
    application_name: str
    client: Celery
    exit_code: int | None = None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_ready(self) -> None:
        """Poll the worker with a control ping until it answers (it is consuming by then)."""
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"the worker exited with {self.process.returncode} before it was ready")
            # The key prefix isolates this run's broadcast channel: any reply is our worker.
            if self.client.control.ping(timeout=1.0):
                return
        pytest.fail(f"the worker did not answer a ping within {READY_TIMEOUT} s")

    def stop(self) -> int:
        """Warm shutdown (SIGTERM); SIGKILL the whole process group if it takes too long."""
        if self.exit_code is not None:
            return self.exit_code
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            self.exit_code = self.process.wait(STOP_TIMEOUT)
        except BaseException:
            self.kill()
            raise
        return self.exit_code

    def kill(self) -> None:
        """SIGKILL the worker and its pool children, then reap the worker."""
        # The worker leads its own session (start_new_session), so the group is ours alone,
        # and its id cannot be reused before the leader is reaped by the wait() below.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.exit_code = self.process.wait(10)


@pytest.fixture
def worker_database() -> Iterator[str]:
    """A private PostgreSQL database cloned from the migrated template, dropped afterwards."""
    url = asyncio.run(create_database())
    try:
        yield url
    finally:
        asyncio.run(drop_database(url))


@pytest.fixture
def running_worker(tmp_path: Path, worker_database: str) -> Iterator[RunningWorker]:
    run_id = uuid.uuid4().hex[:12]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
        "RUVON_DATABASE_URL": worker_database,
        "RUVON_BROKER_URL": redis_url_for_tests(),
        "RUVON_RESULT_BACKEND": redis_url_for_tests(),
        "RUVON_BROKER_KEY_PREFIX": f"ruvon-test-{run_id}:",
        "RUVON_APPLICATION_NAME": f"ruvon-test-worker-{run_id}",
        "RUVON_POOL_MIN_SIZE": "1",
        "RUVON_POOL_MAX_SIZE": "2",
    }
    for inherited in ("CELERY_BROKER_URL", "CELERY_RESULT_BACKEND", "RUVON_DB_URL"):
        env.pop(inherited, None)
    queue = f"ruvon-test-{run_id}"
    command = [
        *(sys.executable, "-m", "ruvon.cli.main", "worker"),
        *("--queues", queue, "--concurrency", "2", "--loglevel", "INFO"),
        *("--", "--hostname", f"ruvon-test-{run_id}@%h", "--pool", "prefork"),
        # Alone under its key prefix: syncing with neighbours would only wait a second.
        *("--without-mingle", "--without-gossip"),
    ]
    from worker.app import create_app

    client = create_app(Settings.from_env(env))
    log_path = tmp_path / "worker.log"
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            command,
            cwd=REPO,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    worker = RunningWorker(process, log_path, queue, env["RUVON_APPLICATION_NAME"], client)
    try:
        worker.wait_ready()
        yield worker
    finally:
        try:
            worker.stop()
        finally:
            client.close()
            delete_keys(env["RUVON_BROKER_KEY_PREFIX"])
            # Shown by pytest only when the test failed.
            print(f"--- worker log ({log_path}) ---\n{worker.log()}")


def delete_keys(prefix: str) -> None:
    """Remove this run's broker and result keys (events, pidbox replies, task results)."""
    with redis.Redis.from_url(redis_url_for_tests()) as client:
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        if keys:
            client.unlink(*keys)


def ask_health(worker: RunningWorker, count: int) -> list[dict[str, object]]:
    results = [worker.client.send_task(HEALTH_TASK, queue=worker.queue) for _ in range(count)]
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
    running_worker: RunningWorker,
) -> None:
    pids: set[int] = set()
    deadline = time.monotonic() + RESULT_TIMEOUT
    # With prefetch 1, a batch lands on whichever child is idle: a few batches reach both.
    while len(pids) < 2 and time.monotonic() < deadline:
        replies = ask_health(running_worker, 8)
        assert all(reply["ok"] is True for reply in replies)
        pids.update(int(str(reply["pid"])) for reply in replies)
    assert len(pids) == 2, f"only pool process(es) {pids} answered"
    assert running_worker.process.pid not in pids  # the children answer, not the main process


def test_warm_shutdown_closes_every_process_pool(running_worker: RunningWorker) -> None:
    ask_health(running_worker, 4)
    name = running_worker.application_name
    # Each child opened its pool (min 1, max 2 connections) in worker_process_init.
    opened = asyncio.run(count_sessions(name, at_least=2, at_most=4, within=RESULT_TIMEOUT))
    assert 2 <= opened <= 4, f"{opened} sessions named {name}"

    assert running_worker.stop() == 0
    left = asyncio.run(count_sessions(name, at_least=0, at_most=0, within=5.0))
    assert left == 0, f"{left} sessions named {name} survived the warm shutdown"
    log = running_worker.log()
    assert "Warm shutdown" in log
    assert log.count("closed its database pool") == 2, "a child skipped worker_process_shutdown"


def test_app_settings_encode_the_correctness_model() -> None:
    from worker.app import BROKER_VISIBILITY_TIMEOUT, app, celery_config

    conf = app.conf
    assert conf.task_acks_late is True
    assert conf.task_reject_on_worker_lost is True
    assert conf.worker_prefetch_multiplier == 1
    assert conf.task_send_sent_event is True
    assert conf.worker_send_task_events is True
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
