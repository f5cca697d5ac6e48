"""``scripts/cluster``: a Ruvon cluster on this machine's PostgreSQL and Redis, no containers.

::

    scripts/cluster up [--workers N] [--concurrency C]   start it, print its URLs and env
    scripts/cluster status                                what runs (exit 1 unless all of it)
    scripts/cluster env                                   the `export` lines: eval "$(...)"
    scripts/cluster down [--purge] [--timeout S]          stop it; --purge: drop its database
                                                          and delete its Redis keys too

``up`` creates the database if it is missing and runs ``ruvon db upgrade`` on it, writes a
registry of every example workflow, then starts N ``ruvon worker`` (each consuming the default
queue), one ``ruvon beat`` (it runs the sweeps), ``ruvon flower`` and ``ruvon server`` (the REST
API and web UI, with an admin token of its own in ``<state dir>/server-token``), each in its own
session, and waits until the workers answer a ping, Flower its health check and the server its
readiness check. The state directory holds what ``down`` needs: the PID and start time of
every process (so a recycled PID is never signalled), the logs, the registry and the env.
``down`` sends SIGTERM (Celery's warm shutdown), then SIGKILLs the process group of whatever is
still running after the timeout, then any process left in those sessions, and removes the state
directory.

Settings (environment), so a second cluster (a test's) never meets a developer's::

    RUVON_CLUSTER_DIR            state directory, default <repo>/.cluster
    RUVON_CLUSTER_POSTGRES_URL   server (maintenance database),
                                 default postgresql://postgres@127.0.0.1:5432/postgres
    RUVON_CLUSTER_DATABASE       database, default ruvon_local
    RUVON_CLUSTER_BROKER_URL     broker, default redis://127.0.0.1:6379/0
    RUVON_CLUSTER_KEY_PREFIX     Redis key prefix, default ruvon-local:
    RUVON_CLUSTER_FLOWER_PORT    default 5555
    RUVON_CLUSTER_SERVER_PORT    Ruvon Server (API and web UI), default 8800
    RUVON_CLUSTER_METRICS_PORT   the beat's metrics port (queue depth and lag); worker i serves
                                 its metrics on this + i; default 9808
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import importlib.util
import json
import os
import re
import secrets
import shlex
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import yaml
from owned_processes import Started, SurvivorsError, is_running, spawn, stop

from ruvon.config import Settings
from ruvon.implementations.persistence.queries import load_queries
from ruvon.testing.postgres import database_url

REPO = Path(__file__).resolve().parents[1]

READY_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0
STATE_FILE = "cluster.json"
_ADMIN_SQL = load_queries(REPO / "ruvon" / "testing" / "sql" / "postgres_admin.sql")
_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
# A developer's shell may point Ruvon elsewhere; the cluster's processes get only its settings.
_DROPPED = ("DATABASE_URL", "CELERY_BROKER_URL", "CELERY_RESULT_BACKEND", "RUVON_CONFIG_DIR")


class ClusterError(Exception):
    """What went wrong, said in one line for the terminal."""


@dataclass(frozen=True)
class ClusterConfig:
    """Where the cluster lives; read from ``RUVON_CLUSTER_*`` (see the module docstring)."""

    state_dir: Path
    server_url: str
    database: str
    broker_url: str
    key_prefix: str
    flower_port: int
    metrics_port: int
    # A default, so that `down` still reads the state of a cluster started before the server.
    server_port: int = 8800

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> ClusterConfig:
        database = env.get("RUVON_CLUSTER_DATABASE") or "ruvon_local"
        if not _IDENTIFIER.match(database):
            raise ClusterError(
                f"RUVON_CLUSTER_DATABASE={database!r}: use lower-case letters, digits and _"
            )
        return cls(
            state_dir=Path(env.get("RUVON_CLUSTER_DIR") or REPO / ".cluster").resolve(),
            server_url=env.get("RUVON_CLUSTER_POSTGRES_URL")
            or "postgresql://postgres@127.0.0.1:5432/postgres",
            database=database,
            broker_url=env.get("RUVON_CLUSTER_BROKER_URL") or "redis://127.0.0.1:6379/0",
            key_prefix=env.get("RUVON_CLUSTER_KEY_PREFIX") or "ruvon-local:",
            flower_port=int(env.get("RUVON_CLUSTER_FLOWER_PORT") or 5555),
            metrics_port=int(env.get("RUVON_CLUSTER_METRICS_PORT") or 9808),
            server_port=int(env.get("RUVON_CLUSTER_SERVER_PORT") or 8800),
        )

    @property
    def database_url(self) -> str:
        return database_url(self.server_url, self.database)

    @property
    def registry_file(self) -> Path:
        return self.state_dir / "workflow_registry.yaml"

    @property
    def token_file(self) -> Path:
        """The server's admin token alone (what a user pastes into the UI's login)."""
        return self.state_dir / "server-token"

    @property
    def server_ui(self) -> str:
        return f"http://127.0.0.1:{self.server_port}/ui"

    def exports(self) -> dict[str, str]:
        """What a shell needs to talk to the cluster (``ruvon start ... --wait``)."""
        return {
            "RUVON_DATABASE_URL": self.database_url,
            "RUVON_BROKER_URL": self.broker_url,
            "RUVON_RESULT_BACKEND": self.broker_url,
            "RUVON_BROKER_KEY_PREFIX": self.key_prefix,
            "RUVON_REGISTRY_FILE": str(self.registry_file),
            "PYTHONPATH": str(REPO),
        }


# -- state -----------------------------------------------------------------------------------


def load_state(config: ClusterConfig) -> tuple[ClusterConfig, list[Started]]:
    """The settings ``up`` used and the processes it started (none: no cluster there).

    ``down`` and ``status`` act on what ``up`` recorded, whatever the environment says now.
    """
    path = config.state_dir / STATE_FILE
    if not path.is_file():
        return config, []
    data = json.loads(path.read_text())
    recorded = {**data["config"], "state_dir": Path(data["config"]["state_dir"])}
    return ClusterConfig(**recorded), [Started(**item) for item in data["processes"]]


def save_state(config: ClusterConfig, processes: list[Started]) -> None:
    data = {
        "config": {**asdict(config), "state_dir": str(config.state_dir)},
        "processes": [asdict(process) for process in processes],
    }
    path = config.state_dir / STATE_FILE
    path.write_text(json.dumps(data, indent=2))


# -- preparation -----------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def _server(config: ClusterConfig) -> AsyncIterator[asyncpg.Connection]:
    """A connection to the server's maintenance database."""
    try:
        conn = await asyncpg.connect(config.server_url, timeout=10)
    except (OSError, asyncpg.PostgresError) as exc:
        raise ClusterError(
            f"cannot reach PostgreSQL at {config.server_url} ({exc}): start it with "
            "scripts/services, or set RUVON_CLUSTER_POSTGRES_URL"
        ) from exc
    try:
        yield conn
    finally:
        await conn.close()


async def ensure_database(config: ClusterConfig) -> bool:
    """Create the cluster's database if missing; True when it was created."""
    async with _server(config) as conn:
        if await conn.fetchrow(_ADMIN_SQL["database_state"], config.database) is not None:
            return False
        await conn.execute(_ADMIN_SQL["create_database"].format(name=f'"{config.database}"'))
        return True


async def drop_database(config: ClusterConfig) -> None:
    async with _server(config) as conn:
        await conn.execute(_ADMIN_SQL["drop_database"].format(name=f'"{config.database}"'))


def write_registry(path: Path) -> list[str]:
    """One registry of every example workflow (absolute paths); the types it lists."""
    workflows: list[dict[str, Any]] = []
    for registry in sorted((REPO / "examples").glob("*/workflow_registry.yaml")):
        for entry in yaml.safe_load(registry.read_text()).get("workflows", []):
            config_file = (registry.parent / entry["config_file"]).resolve()
            workflows.append({**entry, "config_file": str(config_file)})
    header = "# Written by scripts/cluster up: every workflow of examples/.\n"
    path.write_text(header + yaml.safe_dump({"workflows": workflows}, sort_keys=False))
    return [entry["type"] for entry in workflows]


def _check_port_free(port: int, variable: str) -> None:
    with socket.socket() as probe:
        # SO_REUSEADDR, like the servers that will bind it: connections a previous cluster
        # left in TIME_WAIT do not make the port taken.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            raise ClusterError(f"port {port} is taken: set {variable} to a free one") from None


def _metrics_env(variable: str, port: int, directory: Path | None = None) -> dict[str, str]:
    """A process's metrics settings: its port, on loopback only, and its own directory."""
    env = {variable: str(port), "RUVON_METRICS_ADDR": "127.0.0.1"}
    return env | ({"RUVON_METRICS_DIR": str(directory)} if directory else {})


def _serving_metrics(processes: list[Started], within: float = 3.0) -> dict[str, str]:
    """The metrics URLs (by process name) that answer: workers of this version may not."""
    deadline = time.monotonic() + within
    answering: dict[str, str] = {}
    pending = {p.name: p.metrics_url for p in processes if p.metrics_url}
    while pending and time.monotonic() < deadline:
        for name, url in list(pending.items()):
            if _answers(url):
                answering[name] = pending.pop(name)
        time.sleep(0.2)
    return answering


def _ping_workers(env: Mapping[str, str], hostnames: set[str]) -> set[str]:
    """The hostnames among ``hostnames`` that answer a Celery ping."""
    from celery import Celery

    from ruvon.implementations.execution.celery_config import celery_config

    client = Celery("ruvon-cluster-script")
    client.conf.update(celery_config(Settings.from_env(env)))
    try:
        replies = client.control.ping(destination=sorted(hostnames), timeout=1.0) or []
    finally:
        client.close()
    return {name for reply in replies for name in reply} & hostnames


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1.0).status_code == 200
    except httpx.HTTPError:
        return False


def _wait_ready(
    env: Mapping[str, str], processes: list[Started], hostnames: set[str], config: ClusterConfig
) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    pending = set(hostnames)
    # Each HTTP service by the URL that answers 200 once it is ready.
    services = {
        "flower": f"http://127.0.0.1:{config.flower_port}/healthcheck",
        "server": f"http://127.0.0.1:{config.server_port}/readyz",
    }
    while time.monotonic() < deadline:
        for process in processes:
            if not is_running(process):
                tail = "\n".join(Path(process.log).read_text(errors="replace").splitlines()[-20:])
                raise ClusterError(f"{process.name} exited; {process.log}:\n{tail}")
        pending -= _ping_workers(env, pending) if pending else set()
        services = {name: url for name, url in services.items() if not _answers(url)}
        if not pending and not services:
            return
        time.sleep(0.3)
    raise ClusterError(
        f"not ready within {READY_TIMEOUT} s: {' '.join(sorted(pending | set(services)))}"
        f" (logs in {processes[0].log.rpartition('/')[0]})"
    )


def write_server_tokens(config: ClusterConfig) -> Path:
    """A fresh admin token for this cluster's server: the tokens file it reads, and the token.

    Both files are the user's only (0600). The tokens file holds the token's hash, so the
    server process never holds the secret in a file it reads.
    """
    token = secrets.token_urlsafe(24)
    digest = hashlib.sha256(token.encode()).hexdigest()
    tokens = config.state_dir / "server-tokens"
    for path, text in ((config.token_file, token), (tokens, f"admin sha256:{digest} local-admin")):
        path.touch(mode=0o600)
        path.write_text(text + "\n")
    return tokens


# -- commands --------------------------------------------------------------------------------


def up(config: ClusterConfig, workers: int, concurrency: int) -> int:
    if any(map(is_running, load_state(config)[1])):
        raise ClusterError(
            f"a cluster is already up from {config.state_dir}: scripts/cluster status, "
            "or scripts/cluster down first"
        )
    shutil.rmtree(config.state_dir, ignore_errors=True)
    config.state_dir.mkdir(parents=True)
    metrics = importlib.util.find_spec("prometheus_client") is not None
    ports = [config.flower_port, config.server_port]
    ports += range(config.metrics_port, config.metrics_port + workers + 1) if metrics else []
    for port in ports:
        _check_port_free(
            port, "RUVON_CLUSTER_FLOWER_PORT, _SERVER_PORT or _METRICS_PORT (see scripts/cluster)"
        )
    created = asyncio.run(ensure_database(config))
    env = {k: v for k, v in os.environ.items() if k not in _DROPPED} | config.exports()
    upgrade = subprocess.run(
        [sys.executable, "-m", "ruvon.cli.main", "db", "upgrade"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if upgrade.returncode != 0:
        raise ClusterError(f"ruvon db upgrade failed:\n{upgrade.stdout}{upgrade.stderr}")
    types = write_registry(config.registry_file)
    processes: list[Started] = []
    try:
        hostnames = _start_processes(config, env, processes, workers, concurrency, metrics)
        _wait_ready(env, processes, hostnames, config)
    except BaseException:
        stop(processes, STOP_TIMEOUT)
        raise
    _write_env_file(config)
    _print_summary(config, processes, _serving_metrics(processes), created, types)
    return 0


def _start_processes(
    config: ClusterConfig,
    env: dict[str, str],
    processes: list[Started],
    workers: int,
    concurrency: int,
    metrics: bool,
) -> set[str]:
    """Spawn the workers, the beat and Flower into ``processes``; the workers' node names."""
    ruvon = [sys.executable, "-m", "ruvon.cli.main"]
    host = socket.gethostname()
    hostnames: set[str] = set()

    def start(name: str, argv: list[str], extra: dict[str, str], metrics_port: int = 0) -> None:
        url = f"http://127.0.0.1:{metrics_port}/metrics" if metrics and metrics_port else ""
        log = config.state_dir / "logs" / f"{name}.log"
        processes.append(spawn(name, argv, cwd=REPO, env=env | extra, log=log, metrics_url=url))
        save_state(config, processes)  # at once: `down` must find it even if `up` fails

    for i in range(1, workers + 1):
        hostname = f"{config.database}-w{i}@{host}"
        hostnames.add(hostname)
        port = config.metrics_port + i
        directory = config.state_dir / "metrics" / f"worker-{i}"
        argv = [*ruvon, "worker", "--concurrency", str(concurrency), "--", "--hostname", hostname]
        extra = _metrics_env("RUVON_METRICS_PORT", port, directory) if metrics else {}
        start(f"worker-{i}", argv, extra, port)
    extra = _metrics_env("RUVON_BEAT_METRICS_PORT", config.metrics_port) if metrics else {}
    start("beat", [*ruvon, "beat"], extra, config.metrics_port)
    # Loopback only, so its HTTP API may go without authentication (scripts, tests).
    argv = [*ruvon, "flower", "--port", str(config.flower_port), "--address", "127.0.0.1"]
    start("flower", argv, {"FLOWER_UNAUTHENTICATED_API": "true"})
    argv = [*ruvon, "server", "--host", "127.0.0.1", "--port", str(config.server_port)]
    start("server", argv, {"RUVON_SERVER_TOKENS": str(write_server_tokens(config))})
    return hostnames


def _write_env_file(config: ClusterConfig) -> None:
    lines = [f"export {name}={shlex.quote(value)}" for name, value in config.exports().items()]
    (config.state_dir / "env").write_text("\n".join(lines) + "\n")


def _print_summary(
    config: ClusterConfig,
    processes: list[Started],
    metrics: dict[str, str],
    created: bool,
    types: list[str],
) -> None:
    database = "created and migrated" if created else "migrated"
    print(f"Ruvon cluster up ({config.state_dir})")
    print(f"  database  {config.database_url} ({database})")
    print(f"  broker    {config.broker_url} (key prefix {config.key_prefix!r})")
    for process in processes:
        served = f", metrics {metrics[process.name]}" if process.name in metrics else ""
        print(f"  {process.name:<9} pid {process.pid}, log {process.log}{served}")
    print(f"  web UI    {config.server_ui} (Ruvon Server; log in with the token in")
    print(f"            {config.token_file}; its API /api/v1, /openapi.json)")
    print(f"  Flower    http://127.0.0.1:{config.flower_port} (its API /api/, /metrics)")
    print(f"  workflows {', '.join(types)}")
    print('\nTalk to it from a shell (or: eval "$(scripts/cluster env)"):\n')
    print((config.state_dir / "env").read_text())
    print("  ruvon start OrderFulfillment --wait")
    print("\nStop it with scripts/cluster down (--purge also drops the database and Redis keys).")


def down(config: ClusterConfig, purge: bool, timeout: float) -> int:
    config, processes = load_state(config)
    stop(processes, timeout)
    if purge:
        from ruvon.testing.cluster import delete_broker_keys

        asyncio.run(drop_database(config))
        deleted = delete_broker_keys(config.key_prefix, config.broker_url)
        print(f"dropped database {config.database}, deleted {deleted} Redis key(s)")
    shutil.rmtree(config.state_dir, ignore_errors=True)
    print(f"Ruvon cluster down ({len(processes)} process(es) stopped)")
    return 0


def status(config: ClusterConfig) -> int:
    config, processes = load_state(config)
    if not processes:
        print(f"no cluster in {config.state_dir}")
        return 1
    running = 0
    for process in processes:
        alive = is_running(process)
        running += alive
        state = "running" if alive else "STOPPED"
        print(f"{process.name:<9} pid {process.pid:<8} {state:<8} {process.log}")
    print(f"web UI    {config.server_ui} (token in {config.token_file})")
    print(f"Flower    http://127.0.0.1:{config.flower_port}")
    return 0 if running == len(processes) else 1


def print_env(config: ClusterConfig) -> int:
    path = config.state_dir / "env"
    if not path.is_file():
        raise ClusterError(f"no cluster in {config.state_dir}: scripts/cluster up first")
    print(path.read_text(), end="")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="scripts/cluster",
        description="A Ruvon cluster on this machine's PostgreSQL and Redis, no containers.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    start = commands.add_parser("up", help="start the cluster")
    start.add_argument("--workers", type=int, default=2, help="ruvon worker processes (2)")
    start.add_argument("--concurrency", type=int, default=2, help="pool size of each (2)")
    finish = commands.add_parser("down", help="stop exactly what up started")
    finish.add_argument("--purge", action="store_true", help="drop its database and Redis keys")
    finish.add_argument("--timeout", type=float, default=STOP_TIMEOUT, help="before SIGKILL")
    commands.add_parser("status", help="which of its processes run")
    commands.add_parser("env", help="the export lines of the cluster's settings")
    args = parser.parse_args(argv)
    try:
        config = ClusterConfig.from_env(os.environ)
        if args.command == "up":
            if args.workers < 1 or args.concurrency < 1:
                raise ClusterError("--workers and --concurrency must be at least 1")
            return up(config, args.workers, args.concurrency)
        if args.command == "down":
            return down(config, args.purge, args.timeout)
        if args.command == "status":
            return status(config)
        return print_env(config)
    except (ClusterError, SurvivorsError) as exc:
        print(f"cluster: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
