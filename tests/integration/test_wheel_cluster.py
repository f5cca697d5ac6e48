"""The built wheel runs a cluster: a fresh venv, outside the checkout, with only the user's files.

The module builds the wheel (``pip wheel --no-deps``), creates a venv in a temporary directory
without pip or site packages, and installs the wheel into it as deploy/Dockerfile does (its
server extras, dependencies included, ``-c deploy/constraints.txt``) from the machine's package
index (``pip --python VENV install``; ``--no-compile`` keeps it to ~15 s). Nothing of the
checkout is visible to that venv: no ``PYTHONPATH``, the working directory is the user's
project, and the checkout's editable install is in another venv. So a file the wheel lacks (the
Celery app, the beat, the migrations), a dependency it does not declare or one the constraints
do not pin fails here, as it would for a user or an image build.

The project holds what a user writes: ``config/workflow_registry.yaml`` (the default
registry path), one workflow YAML and a step package named ``worker`` — the generic name the
checkout's own top-level ``worker/`` used to take, so a collision would show. Against a fresh
PostgreSQL database (empty, migrated by the wheel's ``ruvon db upgrade``) and a run-unique
Redis key prefix, the wheel's ``ruvon worker``, ``ruvon beat``, ``celery -A ruvon.cluster.app
worker`` / ``inspect``, ``ruvon flower`` and ``ruvon server`` run as subprocesses; workflows
started with the wheel's ``ruvon start --wait`` complete (their WAIT step needs the beat's timer
sweep).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import re
import socket
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

import asyncpg
import httpx
import pytest
from packaging.utils import canonicalize_name

from ruvon.testing.cluster import BeatProcess, WorkerProcess, client_app, delete_broker_keys
from ruvon.testing.postgres import create_database, drop_database
from ruvon.testing.processes import free_port, stop_process_group
from ruvon.testing.processes import spawn as spawn_process
from ruvon.testing.redis import redis_url_for_tests

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

REPO = Path(__file__).resolve().parents[2]
#: What deploy/Dockerfile installs, and with which pins.
CONSTRAINTS = REPO / "deploy" / "constraints.txt"
IMAGE_EXTRAS = "postgres,celery,redis,prometheus,server"
INSTALL_TIMEOUT = 240.0
COMMAND_TIMEOUT = 120.0
READY_TIMEOUT = 60.0
QUEUE = "default"
#: The documented Celery app path: ``celery -A ruvon.cluster.app worker``.
CELERY_APP = "ruvon.cluster.app"
#: Variables of a developer's shell or of this test run that would leak the checkout (or
#: another cluster) into the wheel's processes.
_LEAKY = ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "CELERY_BROKER_URL", "CELERY_RESULT_BACKEND")

REGISTRY = """\
workflows:
  - {type: "Greeting", config_file: "greeting.yaml"}
"""
GREETING = """\
workflow_type: "Greeting"
description: "An ASYNC step on a worker, a WAIT the beat fires, then another ASYNC step"
steps:
  - name: "Count"
    type: "ASYNC"
    function: "worker.steps.count"
  - name: "Pause"
    type: "WAIT"
    wait_seconds: 1
  - name: "Greet"
    type: "ASYNC"
    function: "worker.steps.greet"
"""
STEPS = '''\
"""The user's step functions (a package named like the checkout's old worker/)."""

import os
from pathlib import Path

import ruvon


def count(state, context):
    return {"counter": int(state.get("counter", 0)) + 1}


def greet(state, context):
    return {
        "greeting": f"hello {state['name']}",
        "ruvon_from": str(Path(ruvon.__file__).parent),
        "pid": os.getpid(),
    }
'''


@dataclass(frozen=True)
class Installed:
    """The venv the wheel went into and the user's project directory."""

    venv: Path
    project: Path

    def bin(self, name: str) -> str:
        return str(self.venv / "bin" / name)


def run(
    command: Sequence[str],
    *,
    cwd: Path,
    env: Mapping[str, str] | None = None,
    timeout: float = COMMAND_TIMEOUT,
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        list(command),
        cwd=cwd,
        env=None if env is None else dict(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert result.returncode == 0, (
        f"{command} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
    )
    return result


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    root = tmp_path_factory.mktemp("wheel")
    assert not root.is_relative_to(REPO)
    dist = root / "dist"
    run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--wheel-dir", str(dist), str(REPO)],
        cwd=root,
        timeout=INSTALL_TIMEOUT,
    )
    (wheel,) = dist.glob("ruvon-*.whl")
    venv = root / "venv"
    # The base interpreter, not this venv's: the new one must see none of its packages.
    run([sys.executable, "-m", "venv", "--without-pip", str(venv)], cwd=root)
    run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(venv / "bin" / "python"),
            "install",
            "--no-compile",
            "--quiet",
            *("-c", str(CONSTRAINTS)),
            f"{wheel}[{IMAGE_EXTRAS}]",
        ],
        cwd=root,
        timeout=INSTALL_TIMEOUT,
    )
    project = root / "project"
    (project / "config").mkdir(parents=True)
    (project / "config" / "workflow_registry.yaml").write_text(REGISTRY)
    (project / "config" / "greeting.yaml").write_text(GREETING)
    (project / "worker").mkdir()
    (project / "worker" / "__init__.py").write_text("")
    (project / "worker" / "steps.py").write_text(STEPS)
    return Installed(venv=venv, project=project)


@pytest.fixture(scope="module")
def env(installed: Installed) -> Iterator[dict[str, str]]:
    """The cluster's environment: a fresh, empty database migrated by the wheel's ``ruvon db
    upgrade``, a run-unique Redis prefix, the venv first on PATH, nothing of the checkout."""
    database = asyncio.run(create_database(from_template=False))
    run_id = uuid.uuid4().hex[:12]
    prefix = f"ruvon-test-wheel-{run_id}:"
    base = {k: v for k, v in os.environ.items() if k not in _LEAKY and not k.startswith("RUVON_")}
    cluster = {
        **base,
        "PATH": f"{installed.venv / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
        "RUVON_DATABASE_URL": database,
        "RUVON_BROKER_URL": redis_url_for_tests(),
        "RUVON_RESULT_BACKEND": redis_url_for_tests(),
        "RUVON_BROKER_KEY_PREFIX": prefix,
        "RUVON_APPLICATION_NAME": f"ruvon-test-wheel-{run_id}",
        "RUVON_DEFAULT_QUEUE": QUEUE,
        "RUVON_POOL_MIN_SIZE": "1",
        "RUVON_POOL_MAX_SIZE": "2",
        "RUVON_SWEEP_SECONDS": "0.5",
    }
    try:
        upgraded = run(
            [installed.bin("ruvon"), "db", "upgrade"], cwd=installed.project, env=cluster
        )
        print(upgraded.stdout, upgraded.stderr)
        yield cluster
    finally:
        delete_broker_keys(prefix)
        asyncio.run(drop_database(database))


def spawn(
    command: Sequence[str], installed: Installed, env: Mapping[str, str], log_path: Path
) -> subprocess.Popen[bytes]:
    """``command`` in the user's project, in its own session, its output in ``log_path``."""
    return spawn_process(command, env, log_path, cwd=installed.project)


@pytest.fixture(scope="module")
def beat(
    installed: Installed, env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[BeatProcess]:
    log_path = tmp_path_factory.mktemp("beat") / "beat.log"
    process = BeatProcess(
        spawn([installed.bin("ruvon"), "beat"], installed, env, log_path), log_path=log_path
    )
    try:
        process.wait_sweeping(READY_TIMEOUT)
        yield process
    finally:
        process.stop()
        print(f"--- beat log ---\n{process.log()}")


@contextlib.contextmanager
def worker(
    command: Sequence[str], name: str, installed: Installed, env: dict[str, str], log_dir: Path
) -> Iterator[WorkerProcess]:
    """A worker started by ``command`` (plus a known node name), ready, stopped afterwards."""
    hostname = f"{name}-{uuid.uuid4().hex[:8]}@{socket.gethostname()}"
    options = ["--hostname", hostname, "--without-mingle", "--without-gossip"]
    log_path = log_dir / f"{name}.log"
    process = spawn([*command, *options], installed, env, log_path)
    running = WorkerProcess(
        process, hostname=hostname, queues=[QUEUE], log_path=log_path, client=client_app(env)
    )
    try:
        running.wait_ready(READY_TIMEOUT)
        yield running
    finally:
        running.stop()
        print(f"--- {name} log ---\n{running.log()}")


def start_and_wait(installed: Installed, env: dict[str, str], name: str) -> dict[str, object]:
    """The wheel's ``ruvon start Greeting --wait``; the stored workflow (status and state)."""
    started = run(
        [
            installed.bin("ruvon"),
            "start",
            "Greeting",
            "--data",
            json.dumps({"name": name}),
            "--wait",
            "--timeout",
            "60",
        ],
        cwd=installed.project,
        env=env,
    )
    match = re.search(r"Started (\S+) \(Greeting\)", started.stdout)
    assert match, started.stdout
    return asyncio.run(stored_workflow(env["RUVON_DATABASE_URL"], match.group(1)))


async def stored_workflow(database: str, workflow_id: str) -> dict[str, object]:
    connection = await asyncpg.connect(database)
    try:
        row = await connection.fetchrow(
            "SELECT status, state::text AS state FROM workflow_executions WHERE id = $1",
            workflow_id,
        )
    finally:
        await connection.close()
    assert row is not None, workflow_id
    return {"status": row["status"], "state": json.loads(row["state"])}


def assert_ran_from_the_wheel(workflow: dict[str, object], installed: Installed, name: str) -> None:
    assert workflow["status"] == "COMPLETED", workflow
    state = workflow["state"]
    assert isinstance(state, dict)
    assert state["counter"] == 1 and state["greeting"] == f"hello {name}", state
    assert Path(str(state["ruvon_from"])).is_relative_to(installed.venv), state


def test_the_venv_imports_ruvon_from_the_wheel_and_nothing_from_the_checkout(
    installed: Installed, env: dict[str, str]
) -> None:
    probe = textwrap.dedent(
        """
        import importlib.util, json, ruvon, ruvon.cluster.app, ruvon.cluster.beat
        from ruvon.db_schema import migrations
        print(json.dumps({
            "ruvon": ruvon.__file__,
            "migrations": str(migrations.MIGRATIONS_DIR),
            "beat_package": importlib.util.find_spec("beat") is not None,
            "worker": importlib.util.find_spec("worker").origin,
        }))
        """
    )
    found = json.loads(
        run([installed.bin("python"), "-c", probe], cwd=installed.project, env=env).stdout
    )
    assert Path(found["ruvon"]).is_relative_to(installed.venv)
    assert Path(found["migrations"]).is_relative_to(installed.venv)
    assert found["beat_package"] is False  # the checkout's beat/ is no part of the wheel
    assert found["worker"] == str(installed.project / "worker" / "__init__.py")  # the user's


def test_the_install_is_exactly_what_the_constraints_pin(installed: Installed) -> None:
    """The image's install line gives the wheel and the pinned packages, no more, no fewer."""
    listing = [sys.executable, "-m", "pip", "--python", installed.bin("python"), "list"]
    listed = run([*listing, "--format", "json"], cwd=installed.venv).stdout
    got = {canonicalize_name(d["name"]): d["version"] for d in json.loads(listed)}
    lines = [line for line in CONSTRAINTS.read_text().splitlines() if not line.startswith("#")]
    pinned = dict(line.split("==") for line in lines if line)
    assert got.pop("ruvon") == version("ruvon")
    assert got == pinned


def test_ruvon_worker_and_ruvon_beat_from_the_wheel_complete_a_workflow(
    installed: Installed, env: dict[str, str], beat: BeatProcess, tmp_path: Path
) -> None:
    command = [installed.bin("ruvon"), "worker", "--concurrency", "1", "--"]
    with worker(command, "ruvon-worker", installed, env, tmp_path) as running:
        workflow = start_and_wait(installed, env, "ruvon worker")
        assert_ran_from_the_wheel(workflow, installed, "ruvon worker")
        assert workflow["state"]["pid"] in running.child_pids()  # type: ignore[index]
    assert beat.process.poll() is None, beat.log()


def test_the_documented_celery_app_path_runs_workflows_and_answers_inspect(
    installed: Installed, env: dict[str, str], beat: BeatProcess, tmp_path: Path
) -> None:
    command = [
        installed.bin("celery"),
        "-A",
        CELERY_APP,
        "worker",
        "--queues",
        QUEUE,
        "--concurrency",
        "1",
    ]
    with worker(command, "celery-worker", installed, env, tmp_path) as running:
        workflow = start_and_wait(installed, env, "celery")
        assert_ran_from_the_wheel(workflow, installed, "celery")
        inspect = [
            installed.bin("celery"),
            "-A",
            CELERY_APP,
            "inspect",
            "ping",
            "--destination",
            running.hostname,
            "--json",
        ]
        pong = json.loads(run(inspect, cwd=installed.project, env=env).stdout)
        assert pong == {running.hostname: {"ok": "pong"}}, pong


def test_ruvon_flower_from_the_wheel_answers_on_a_loopback_port(
    installed: Installed, env: dict[str, str], tmp_path: Path
) -> None:
    port = free_port()
    log_path = tmp_path / "flower.log"
    process = spawn(
        [installed.bin("ruvon"), "flower", "--port", str(port)], installed, env, log_path
    )
    try:
        deadline = time.monotonic() + READY_TIMEOUT
        answered = None
        while answered is None and time.monotonic() < deadline:
            assert process.poll() is None, (
                f"flower exited {process.returncode}:\n{log_path.read_text()}"
            )
            with contextlib.suppress(httpx.TransportError):
                answered = httpx.get(f"http://127.0.0.1:{port}/healthcheck", timeout=1.0)
            time.sleep(0.2)
        assert answered is not None, log_path.read_text()
        assert answered.status_code == 200 and answered.text == "OK", answered.text
    finally:
        stop_process_group(process, 15)
        print(f"--- flower log ---\n{log_path.read_text(errors='replace')}")


def test_ruvon_server_from_the_wheel_serves_the_api_and_the_ui(
    installed: Installed, env: dict[str, str], tmp_path: Path
) -> None:
    """The image's `server` extra is complete: the wheel's `ruvon server` (its templates and
    static files included) answers its probes against the cluster's database, lets a token of
    its tokens file in (one given as a hash, as the Helm chart writes them) and serves the UI."""
    token = f"wheel-{uuid.uuid4().hex}"
    digest = hashlib.sha256(token.encode()).hexdigest()
    tokens = tmp_path / "tokens"
    tokens.write_text(f"viewer sha256:{digest} wheel-test\n")
    port = free_port()
    log_path = tmp_path / "server.log"
    server_env = {**env, "RUVON_SERVER_TOKENS": str(tokens)}
    process = spawn(
        [installed.bin("ruvon"), "server", "--host", "127.0.0.1", "--port", str(port)],
        installed,
        server_env,
        log_path,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + READY_TIMEOUT
        answered = None
        while answered is None and time.monotonic() < deadline:
            assert process.poll() is None, (
                f"ruvon server exited {process.returncode}:\n{log_path.read_text()}"
            )
            with contextlib.suppress(httpx.TransportError):
                answered = httpx.get(f"{url}/healthz", timeout=1.0)
            time.sleep(0.2)
        assert answered is not None and answered.status_code == 200, log_path.read_text()
        ready = httpx.get(f"{url}/readyz", timeout=10)
        assert ready.status_code == 200 and ready.json()["ready"] is True, ready.text
        headers = {"Authorization": f"Bearer {token}"}
        listed = httpx.get(f"{url}/api/v1/workflows", headers=headers, timeout=10)
        assert listed.status_code == 200, listed.text
        assert httpx.get(f"{url}/api/v1/workflows", timeout=10).status_code == 401
        login = httpx.get(f"{url}/ui/login", timeout=10)
        assert login.status_code == 200 and 'name="token"' in login.text, login.text
        stylesheet = re.search(r'href="(/ui/static/[^"]+\.css)"', login.text)
        assert stylesheet, login.text
        assert httpx.get(url + stylesheet.group(1), timeout=10).status_code == 200
    finally:
        stop_process_group(process, 15)
        print(f"--- server log ---\n{log_path.read_text(errors='replace')}")
