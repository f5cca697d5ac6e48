"""Real ``ruvon worker`` subprocesses on the real Redis and PostgreSQL, for tests and benchmarks.

::

    with LocalCluster(queues=["default"]) as cluster:        # one prefork worker, 2 children
        result = cluster.client.send_task("ruvon.health.check_database", queue="default")
        gpu = cluster.start_worker(queues=["gpu"], concurrency=1, name="gpu")  # mid-test
        gpu.kill()                                             # SIGKILL it and its children

A :class:`LocalCluster` owns a private database cloned from the migrated template
(:func:`ruvon.testing.postgres.create_database`) and a run-unique Redis key prefix
(``RUVON_BROKER_KEY_PREFIX``, applied to the broker's queues, control replies and the results),
so parallel runs on one server never see each other's messages, and any queue name may be used.
Each :class:`WorkerProcess` is ``ruvon worker`` (which execs Celery, so the PID we signal is
Celery's) in its own session with a run-unique Celery node name; its PostgreSQL connections
carry the run's ``application_name``. Closing the cluster stops every worker it started (SIGTERM,
then SIGKILL of the process group), deletes the run's Redis keys and drops the database, even
when a step of that fails.

The workers run the package's Celery app (:mod:`ruvon.cluster.app`) from the checkout this
module lives in (:data:`REPO_ROOT`, first on ``PYTHONPATH``), so they import the test
workflows' step modules from it. Linux only (``/proc``, process groups). Needs
``RUVON_TEST_POSTGRES_URL`` and ``RUVON_TEST_REDIS_URL`` (defaults: the local services
``scripts/services`` starts).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import TypeVar

import redis
from celery import Celery

from ruvon.config import Settings
from ruvon.implementations.execution.celery_config import celery_config
from ruvon.implementations.persistence.redis.keys import RedisKeys
from ruvon.testing.beat_process import BeatProcess
from ruvon.testing.postgres import create_database, drop_database
from ruvon.testing.processes import KILL_REAP_TIMEOUT, REPO_ROOT, STOP_TIMEOUT, spawn
from ruvon.testing.redis import redis_url_for_tests

__all__ = [
    "REPO_ROOT",
    "BeatProcess",
    "LocalCluster",
    "WorkerProcess",
    "client_app",
    "cluster_env",
    "delete_broker_keys",
    "spawn",
]

logger = logging.getLogger(__name__)
_T = TypeVar("_T")


READY_TIMEOUT = 60.0  # a cold start on a loaded CI machine; usually ~2 s
_LOG_TAIL_LINES = 40
# Variables a developer's shell may set that would point the workers elsewhere.
_INHERITED = ("CELERY_BROKER_URL", "CELERY_RESULT_BACKEND", "RUVON_DB_URL")


def cluster_env(
    database_url: str,
    run_id: str,
    *,
    extra_paths: Sequence[str | Path] = (),
    base: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The environment of a run's workers and client: its database, Redis prefix and names.

    ``base`` (default ``os.environ``) is copied without the variables that would override
    these; ``extra_paths`` go on ``PYTHONPATH`` after :data:`REPO_ROOT`.
    """
    source = os.environ if base is None else base
    env = {key: value for key, value in source.items() if key not in _INHERITED}
    paths = [str(REPO_ROOT), *map(str, extra_paths), source.get("PYTHONPATH", "")]
    redis_url = redis_url_for_tests()
    env.update(
        {
            "PYTHONPATH": os.pathsep.join(path for path in paths if path),
            "RUVON_DATABASE_URL": database_url,
            "RUVON_BROKER_URL": redis_url,
            "RUVON_RESULT_BACKEND": redis_url,
            "RUVON_BROKER_KEY_PREFIX": f"ruvon-test-{run_id}:",
            "RUVON_APPLICATION_NAME": f"ruvon-test-worker-{run_id}",
            "RUVON_POOL_MIN_SIZE": "1",
            "RUVON_POOL_MAX_SIZE": "2",
        }
    )
    return env


def client_app(env: Mapping[str, str]) -> Celery:
    """A Celery client configured like the workers of ``env`` (same broker, prefix, backend)."""
    # A client sends tasks by name: it needs none of the worker's task modules.
    client = Celery("ruvon")
    client.conf.update(celery_config(Settings.from_env(env)))
    return client


def delete_broker_keys(prefix: str, redis_url: str | None = None) -> int:
    """Delete every Redis key under ``prefix`` (queues, control replies, results); how many."""
    deleted = 0
    with redis.Redis.from_url(redis_url or redis_url_for_tests()) as client:
        batch: list[bytes] = []
        for key in client.scan_iter(match=RedisKeys(prefix).scan_pattern(), count=1000):
            batch.append(key)
            if len(batch) >= 1000:
                deleted += client.unlink(*batch)
                batch.clear()
        if batch:
            deleted += client.unlink(*batch)
    return deleted


class WorkerProcess:
    """One ``ruvon worker`` subprocess, in its own session so its process group is its own."""

    def __init__(
        self,
        process: subprocess.Popen[bytes],
        *,
        hostname: str,
        queues: Sequence[str],
        log_path: Path,
        client: Celery,
    ) -> None:
        self.process = process
        self.hostname = hostname
        """The Celery node name (``name@host``), the destination of :meth:`wait_ready`'s ping."""
        self.queues = tuple(queues)
        self.log_path = log_path
        self.client = client
        self.exit_code: int | None = None
        self._terminated = False

    @classmethod
    def start(
        cls,
        env: Mapping[str, str],
        queues: Sequence[str],
        *,
        log_path: Path,
        name: str,
        client: Celery,
        concurrency: int = 2,
        pool: str = "prefork",
        extra_args: Sequence[str] = (),
        loglevel: str = "INFO",
    ) -> WorkerProcess:
        """Spawn ``ruvon worker --queues Q1,Q2 -- --hostname NAME@HOST ...`` (not yet ready).

        ``extra_args`` go to ``celery worker`` unchanged (e.g. ``["--include", "mod"]``);
        ``client`` is the app :meth:`wait_ready` pings with (see :func:`client_app`).
        """
        if not queues:
            raise ValueError("a worker needs at least one queue")
        # An explicit host rather than Celery's %h, so the ping destination is known exactly.
        hostname = f"{name}@{socket.gethostname()}"
        command = [
            *(sys.executable, "-m", "ruvon.cli.main", "worker", "--queues", ",".join(queues)),
            *("--concurrency", str(concurrency), "--loglevel", loglevel),
            *("--", "--hostname", hostname, "--pool", pool),
            # Alone under its key prefix: syncing with neighbours would only wait a second.
            *("--without-mingle", "--without-gossip"),
            *extra_args,
        ]
        process = spawn(command, env, log_path)
        return cls(process, hostname=hostname, queues=queues, log_path=log_path, client=client)

    @property
    def pid(self) -> int:
        """The PID of Celery's main process (``ruvon worker`` exec'd into it)."""
        return self.process.pid

    def log(self) -> str:
        """Everything the worker wrote so far (stdout and stderr)."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_tail(self, lines: int = _LOG_TAIL_LINES) -> str:
        """The last ``lines`` lines of :meth:`log`."""
        return "\n".join(self.log().splitlines()[-lines:])

    def wait_ready(self, timeout: float = READY_TIMEOUT) -> None:
        """Ping this worker's node until it answers (it is consuming by then).

        Raises ``RuntimeError`` with the log's tail if the process exits first or the time is
        up; the process is left as it is (:meth:`stop` or :meth:`kill` it).
        """
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"worker {self.hostname} exited with {self.process.returncode} before it "
                    f"was ready; log {self.log_path}:\n{self.log_tail()}"
                )
            replies = self.client.control.ping(destination=[self.hostname], timeout=1.0)
            if any(self.hostname in reply for reply in replies or ()):
                return
        raise RuntimeError(
            f"worker {self.hostname} did not answer a ping within {timeout} s; "
            f"log {self.log_path}:\n{self.log_tail()}"
        )

    def child_pids(self) -> list[int]:
        """The PIDs of the worker's direct children: its pool processes (prefork)."""
        children: list[int] = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
            except OSError:  # exited meanwhile
                continue
            # "pid (comm) state ppid ...": comm may hold spaces and parentheses.
            fields = stat.rpartition(")")[2].split()
            if len(fields) > 1 and int(fields[1]) == self.process.pid:
                children.append(int(entry.name))
        return sorted(children)

    def stop(self, timeout: float = STOP_TIMEOUT) -> int:
        """Warm shutdown (SIGTERM); SIGKILL the process group after ``timeout``; the exit code.

        The code is negative (``-9``) when the worker had to be killed. Idempotent.
        """
        if self.exit_code is not None:
            return self.exit_code
        self.terminate()
        try:
            self.exit_code = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            logger.warning("worker %s ignored SIGTERM for %s s: killing it", self.hostname, timeout)
            return self.kill()
        except BaseException:
            self.kill()
            raise
        return self.exit_code

    def terminate(self) -> None:
        """Send SIGTERM (begin a warm shutdown) without waiting; :meth:`stop` waits."""
        # Once only: Celery restores the default action after the first SIGTERM, so a second
        # one would kill the main process mid-shutdown (exit -15, children orphaned).
        if not self._terminated and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self._terminated = True

    def kill(self) -> int:
        """SIGKILL the worker and its pool children (its process group), then reap the worker."""
        # The worker leads its own session (start_new_session), so the group is ours alone, and
        # its id cannot be reused while the leader is unreaped or any member is alive.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.exit_code = self.process.wait(KILL_REAP_TIMEOUT)
        return self.exit_code


class LocalCluster:
    """A private database, Redis prefix and Celery client, and the workers started on them.

    Entering starts ``workers`` workers on ``queues`` (default: the run-unique :attr:`queue`)
    and waits until each answers a ping; :meth:`start_worker` adds more at any time. Logs go to
    ``log_dir`` (default: a temporary directory, removed on a clean exit, kept on failure).
    Single use, and synchronous: do not enter it inside a running event loop.
    """

    def __init__(
        self,
        *,
        workers: int = 1,
        queues: Sequence[str] | None = None,
        concurrency: int = 2,
        pool: str = "prefork",
        extra_args: Sequence[str] = (),
        extra_paths: Sequence[str | Path] = (),
        env: Mapping[str, str] | None = None,
        log_dir: Path | None = None,
        server_url: str | None = None,
        ready_timeout: float = READY_TIMEOUT,
    ) -> None:
        self.run_id = uuid.uuid4().hex[:12]
        self.queue = f"ruvon-test-{self.run_id}"
        """The default queue of :meth:`start_worker`."""
        self._initial_workers = workers
        self._queues = tuple(queues or (self.queue,))
        self._concurrency = concurrency
        self._pool = pool
        self._extra_args = tuple(extra_args)
        self._extra_paths = tuple(extra_paths)
        self._env_overrides = dict(env or {})
        self._log_dir = log_dir
        self._server_url = server_url
        self.ready_timeout = ready_timeout
        self.workers: list[WorkerProcess] = []
        self.beats: list[BeatProcess] = []
        self._stack: contextlib.ExitStack | None = None
        self._database_url: str | None = None
        self._env: dict[str, str] | None = None
        self._client: Celery | None = None
        self.log_dir: Path | None = None

    # ------------------------------------------------------------------ lifecycle
    def __enter__(self) -> LocalCluster:
        if self._database_url is not None:
            raise RuntimeError("a LocalCluster runs once: make a new one")
        with contextlib.ExitStack() as stack:
            self._stack = stack
            try:
                self._open(stack)
            except BaseException:
                self._stack = None
                raise
            self._stack = stack.pop_all()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Stop every worker, delete the run's Redis keys, drop the database (idempotent)."""
        stack, self._stack = self._stack, None
        if stack is not None:
            for worker in self.workers:  # shut down in parallel; the stack then waits for each
                worker.terminate()
            stack.close()

    def _open(self, stack: contextlib.ExitStack) -> None:
        if self._log_dir is None:
            self.log_dir = Path(tempfile.mkdtemp(prefix=f"ruvon-cluster-{self.run_id}-"))
            stack.push(self._remove_log_dir)
        else:
            self.log_dir = self._log_dir
            self.log_dir.mkdir(parents=True, exist_ok=True)
        self._database_url = asyncio.run(create_database(self._server_url))
        stack.callback(self._drop_database, self._database_url)
        env = cluster_env(self._database_url, self.run_id, extra_paths=self._extra_paths)
        env.update(self._env_overrides)
        self._env = env
        # On the broker the workers use: an ``env`` override may point at a private Redis.
        stack.callback(delete_broker_keys, env["RUVON_BROKER_KEY_PREFIX"], env["RUVON_BROKER_URL"])
        self._client = client_app(env)
        stack.callback(self._client.close)
        for _ in range(self._initial_workers):
            self.start_worker(wait=False)
        for worker in self.workers:
            worker.wait_ready(self.ready_timeout)

    def _drop_database(self, url: str) -> None:
        asyncio.run(drop_database(url, self._server_url))

    def _remove_log_dir(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self.log_dir is None:
            return
        if exc_type is None:
            shutil.rmtree(self.log_dir, ignore_errors=True)
        else:
            logger.warning(
                "LocalCluster %s failed: worker logs kept in %s", self.run_id, self.log_dir
            )

    # ------------------------------------------------------------------ workers
    def start_worker(
        self,
        queues: Sequence[str] | None = None,
        *,
        concurrency: int | None = None,
        pool: str | None = None,
        extra_args: Sequence[str] | None = None,
        name: str | None = None,
        wait: bool = True,
        env: Mapping[str, str] | None = None,
    ) -> WorkerProcess:
        """Start one more worker (defaults: the cluster's); with ``wait``, until it answers.

        ``name`` suffixes its node name (``ruvon-test-<run>-<name>@host``) and log file; it
        must be unique in the cluster (default ``w1``, ``w2``, ...). ``env`` adds variables
        for this worker only (e.g. its own ``RUVON_METRICS_PORT``). The worker is stopped when
        the cluster closes, even if it never became ready.
        """
        if self._stack is None or self._env is None or self.log_dir is None:
            raise RuntimeError("start_worker() needs a running LocalCluster (use it in a with)")
        suffix = name or f"w{len(self.workers) + 1}"
        worker = WorkerProcess.start(
            {**self._env, **(env or {})},
            queues or self._queues,
            log_path=self.log_dir / f"worker-{suffix}.log",
            name=f"ruvon-test-{self.run_id}-{suffix}",
            client=self.client,
            concurrency=self._concurrency if concurrency is None else concurrency,
            pool=pool or self._pool,
            extra_args=self._extra_args if extra_args is None else extra_args,
        )
        self.workers.append(worker)
        self._stack.callback(worker.stop)
        if wait:
            worker.wait_ready(self.ready_timeout)
        return worker

    def start_beat(
        self, name: str | None = None, *, env: Mapping[str, str] | None = None
    ) -> BeatProcess:
        """Start a ``ruvon beat`` on the run's database and broker (stopped when the cluster
        closes); ``env`` adds variables for this beat only.

        Two may run at once (that is a scenario worth testing: every sweep is safe twice).
        """
        if self._stack is None or self._env is None or self.log_dir is None:
            raise RuntimeError("start_beat() needs a running LocalCluster (use it in a with)")
        suffix = name or f"beat{len(self.beats) + 1}"
        log_path = self.log_dir / f"{suffix}.log"
        beat = BeatProcess.start({**self._env, **(env or {})}, log_path=log_path)
        self.beats.append(beat)
        self._stack.callback(beat.stop)
        return beat

    # ------------------------------------------------------------------ what the run uses
    @property
    def client(self) -> Celery:
        """A Celery client on the run's broker, key prefix and result backend."""
        return _require(self._client, "client")

    @property
    def env(self) -> dict[str, str]:
        """The workers' environment (see :func:`cluster_env`)."""
        return _require(self._env, "env")

    @property
    def database_url(self) -> str:
        """The run's private PostgreSQL database."""
        return _require(self._database_url, "database_url")

    @property
    def key_prefix(self) -> str:
        """The run's Redis key prefix (``RUVON_BROKER_KEY_PREFIX``)."""
        return self.env["RUVON_BROKER_KEY_PREFIX"]

    @property
    def application_name(self) -> str:
        """The PostgreSQL ``application_name`` of the workers' connections."""
        return self.env["RUVON_APPLICATION_NAME"]


def _require(value: _T | None, what: str) -> _T:
    if value is None:
        raise RuntimeError(f"LocalCluster.{what} is set when the cluster starts (enter it first)")
    return value
