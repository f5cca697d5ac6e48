"""deploy/: the image, the compose cluster, Prometheus' config and alerts, the Grafana dashboard.

There is no Docker daemon here, so the Dockerfile and docker-compose.yml are checked by their
structure (the compose server's tokens file and healthcheck command against a real ``ruvon
server``); Prometheus' files are checked by promtool itself (``scripts/promtool`` fetches it
when missing), alerts by promtool's rule unit tests, and the dashboard's queries by promtool's
PromQL parser (as recording rules).
"""

from __future__ import annotations

import fnmatch
import importlib.util
import json
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from packaging.utils import canonicalize_name

from ruvon.cli.main import cli
from ruvon.server.tokens import Role, TokenSet, parse_token_lines
from ruvon.testing.processes import free_port, spawn, stop_process_group
from tests.integration.test_cli_process import cli_argv, cli_env

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
PROMTOOL = REPO / "scripts" / "promtool"

#: The metric families Ruvon's workers and beat publish (ruvon/implementations/observability/).
PUBLISHED = {
    "ruvon_workflows_started_total",
    "ruvon_workflows_finished_total",
    "ruvon_step_duration_seconds",
    "ruvon_step_retries_total",
    "ruvon_zombies_recovered_total",
    "ruvon_lost_messages_resent_total",
    "ruvon_sweep_last_success_timestamp_seconds",
    "ruvon_queue_lag_seconds",
    "ruvon_steps_queued",
}
RUVON_SERVICES = {"migrate", "worker", "beat", "flower", "server"}
#: ``${NAME:-default}`` in a compose value: what it expands to with NAME unset.
COMPOSE_DEFAULT = re.compile(r"\$\{[A-Za-z_][A-Za-z0-9_]*:-([^}]*)\}")
# Grafana's variables, replaced by what they expand to so promtool can parse the queries.
GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$__range": "1h", "$workflow_type": ".*"}


def promtool(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(PROMTOOL), *map(str, args)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data: dict[str, Any] = load_yaml(DEPLOY / "docker-compose.yml")
    return data


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(
        (DEPLOY / "grafana" / "dashboards" / "ruvon.json").read_text()
    )
    return data


def dashboard_queries(dashboard: dict[str, Any]) -> list[str]:
    return [
        target["expr"]
        for panel in dashboard["panels"]
        for target in panel.get("targets", [])
        if "expr" in target
    ]


def metric_families(text: str) -> set[str]:
    """The ``ruvon_*`` metric families named in ``text`` (histogram series folded in)."""
    names = set(re.findall(r"\bruvon_[a-z_]+[a-z]", text))
    return {re.sub(r"_(bucket|count|sum)$", "", name) for name in names}


# -- Prometheus ------------------------------------------------------------------------------


def test_promtool_accepts_the_config_and_the_alert_rules() -> None:
    config = promtool("check", "config", DEPLOY / "prometheus" / "prometheus.yml")
    assert config.returncode == 0, config.stdout + config.stderr
    assert "1 rule files found" in config.stdout
    rules = promtool("check", "rules", DEPLOY / "prometheus" / "alerts.yml")
    assert rules.returncode == 0, rules.stdout + rules.stderr


def test_alerts_fire_as_their_unit_tests_expect() -> None:
    result = promtool("test", "rules", Path(__file__).with_name("alerts_test.yml"))
    assert result.returncode == 0, result.stdout + result.stderr


def test_alerts_cover_stuck_workflows_zombies_queue_lag_and_failures() -> None:
    rules = load_yaml(DEPLOY / "prometheus" / "alerts.yml")
    alerts = {rule["alert"]: rule for group in rules["groups"] for rule in group["rules"]}
    assert {
        "RuvonWorkflowsStuck",
        "RuvonZombieRateHigh",
        "RuvonQueueLagHigh",
        "RuvonWorkflowFailureRateHigh",
    } <= alerts.keys()
    for name, rule in alerts.items():
        assert rule["labels"]["severity"] in {"warning", "critical"}, name
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], name
    used = metric_families("\n".join(rule["expr"] for rule in alerts.values()))
    assert used <= PUBLISHED, used - PUBLISHED
    # "started" counts workflows stored (the beat, from PostgreSQL), not work that moves: it is
    # no alert's signal.
    assert used == PUBLISHED - {"ruvon_workflows_started_total"}


def test_prometheus_scrapes_the_workers_the_beat_and_flower(compose: dict[str, Any]) -> None:
    config = load_yaml(DEPLOY / "prometheus" / "prometheus.yml")
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    services = compose["services"]
    # Every worker replica (the service name resolves to each), on the port it serves.
    (workers,) = jobs["ruvon-worker"]["dns_sd_configs"]
    assert workers["names"] == ["worker"]
    assert str(workers["port"]) == services["worker"]["environment"]["RUVON_METRICS_PORT"]
    beat_port = services["beat"]["environment"]["RUVON_BEAT_METRICS_PORT"]
    assert jobs["ruvon-beat"]["static_configs"][0]["targets"] == [f"beat:{beat_port}"]
    flower_port = services["flower"]["command"][services["flower"]["command"].index("--port") + 1]
    assert jobs["flower"]["static_configs"][0]["targets"] == [f"flower:{flower_port}"]


# -- Grafana ---------------------------------------------------------------------------------


def test_dashboard_shows_throughput_latency_failures_zombies_and_queue_lag(
    dashboard: dict[str, Any],
) -> None:
    panels = [panel for panel in dashboard["panels"] if panel["type"] != "row"]
    assert dashboard["uid"] and dashboard["title"] == "Ruvon"
    assert len({panel["id"] for panel in dashboard["panels"]}) == len(dashboard["panels"])
    for panel in panels:
        assert panel["targets"] and panel["gridPos"]["w"] <= 24, panel["title"]
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
    queries = dashboard_queries(dashboard)
    assert any(
        "histogram_quantile(0.99" in q and "ruvon_step_duration_seconds_bucket" in q
        for q in queries
    )
    used = metric_families("\n".join(queries))
    assert used == PUBLISHED, PUBLISHED ^ used
    titles = {panel["title"] for panel in panels}
    assert {
        "Workflow throughput",
        "Step latency",
        "Workflow failures",
        "Zombies recovered",
    } <= titles
    assert "Queue lag" in titles


def test_dashboard_queries_are_valid_promql(dashboard: dict[str, Any], tmp_path: Path) -> None:
    rules = []
    for i, query in enumerate(dashboard_queries(dashboard)):
        for variable, value in GRAFANA_VARIABLES.items():
            query = query.replace(variable, value)
        assert "$" not in query, f"an unknown Grafana variable in {query}"
        rules.append({"record": f"dashboard:query_{i}", "expr": query})
    path = tmp_path / "dashboard_rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = promtool("check", "rules", path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_grafana_provisions_the_datasource_and_the_dashboard(
    compose: dict[str, Any], dashboard: dict[str, Any]
) -> None:
    provisioning = DEPLOY / "grafana" / "provisioning"
    (datasource,) = load_yaml(provisioning / "datasources" / "prometheus.yml")["datasources"]
    assert datasource["url"] == "http://prometheus:9090"
    variables = {variable["name"]: variable for variable in dashboard["templating"]["list"]}
    assert variables["datasource"]["current"]["value"] == datasource["uid"]
    (provider,) = load_yaml(provisioning / "dashboards" / "ruvon.yml")["providers"]
    mounts = dict(volume.split(":")[:2] for volume in compose["services"]["grafana"]["volumes"])
    assert mounts["./grafana/dashboards"] == provider["options"]["path"]
    assert mounts["./grafana/provisioning"] == "/etc/grafana/provisioning"


# -- docker-compose.yml ----------------------------------------------------------------------


def test_compose_runs_every_role_of_the_cluster(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) == {
        *("postgres", "redis", "migrate", "worker", "beat", "flower", "server"),
        *("prometheus", "grafana"),
    }
    for name in RUVON_SERVICES:
        service = services[name]
        assert service["build"] == {"context": "..", "dockerfile": "deploy/Dockerfile"}, name
        # The command is a `ruvon` subcommand (the image's ENTRYPOINT is `ruvon`).
        assert service["command"][0] in cli.commands, name
        env = service["environment"]
        assert env["RUVON_BROKER_URL"].startswith("redis://redis:"), name
        assert env["RUVON_DATABASE_URL"].startswith("postgresql://"), name
        assert "@postgres:5432/" in env["RUVON_DATABASE_URL"], name
    assert services["migrate"]["command"] == ["db", "upgrade"]
    assert services["migrate"]["restart"] == "no"
    for name in ("worker", "beat", "server"):
        depends = services[name]["depends_on"]
        assert depends["migrate"]["condition"] == "service_completed_successfully", name
        assert depends["postgres"]["condition"] == "service_healthy", name
        assert depends["redis"]["condition"] == "service_healthy", name
    assert "healthcheck" in services["postgres"] and "healthcheck" in services["redis"]
    assert services["worker"]["command"][:1] == ["worker"]
    assert services["beat"]["command"] == ["beat"]
    assert services["flower"]["command"][0] == "flower"


def test_compose_publishes_on_loopback_and_mounts_what_exists(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} beyond loopback"
        for volume in service.get("volumes", []):
            source = COMPOSE_DEFAULT.sub(r"\1", volume).split(":")[0]
            if source.startswith("."):
                assert (DEPLOY / source).exists(), f"{name} mounts missing {source}"
            else:
                assert source in compose["volumes"], f"{name} uses undeclared volume {source}"
    ruvon = compose["services"]["worker"]
    assert (DEPLOY / ruvon["build"]["context"] / ruvon["build"]["dockerfile"]).is_file()


def test_compose_serves_ruvon_server_on_loopback_with_a_healthcheck(
    compose: dict[str, Any],
) -> None:
    """`ruvon server` on every interface of its container, published on 127.0.0.1:8800 only,
    started once the migrations are done, its tokens from a mounted file and its session key
    from the environment, and healthy once /healthz answers."""
    server = compose["services"]["server"]
    assert server["command"] == ["server", "--host", "0.0.0.0", "--port", "8800"]
    assert server["ports"] == ["127.0.0.1:8800:8800"]
    env = server["environment"]
    (volume,) = server["volumes"]
    source, target, mode = COMPOSE_DEFAULT.sub(r"\1", volume).split(":")
    assert volume.startswith("${RUVON_SERVER_TOKENS_FILE:-")  # yours instead of the example
    assert (DEPLOY / source).is_file() and mode == "ro"
    assert env["RUVON_SERVER_TOKENS"] == target
    assert env["RUVON_SERVER_SESSION_SECRET"] == "${RUVON_SERVER_SESSION_SECRET:-}"
    assert (
        env["RUVON_REGISTRY_FILE"]
        == compose["services"]["worker"]["environment"]["RUVON_REGISTRY_FILE"]
    )
    check = server["healthcheck"]
    assert check["test"][:3] == ["CMD", "python", "-c"]  # the image has Python, not curl
    assert "http://127.0.0.1:8800/healthz" in check["test"][3]
    compile(check["test"][3], "healthcheck", "exec")
    assert check["retries"] >= 1 and check["start_period"]


def test_the_compose_tokens_are_those_the_readme_logs_in_with() -> None:
    """deploy/server-tokens.example is a tokens file the server reads (ruvon/server/tokens.py),
    with a token of every role; the admin token the README and the compose file name is one."""
    entries = parse_token_lines((DEPLOY / "server-tokens.example").read_text())
    assert {role for _, role, _ in entries} == set(Role)
    tokens = TokenSet(entries)
    readme = (REPO / "README.md").read_text()
    named = re.findall(r"ruvon-compose-[a-z]+", readme)
    assert named, "README.md names no compose token"
    for token in named:
        actor = tokens.identify(token)
        assert actor is not None, token
    assert "ruvon-compose-admin" in (DEPLOY / "docker-compose.yml").read_text()
    admin = tokens.identify("ruvon-compose-admin")
    assert admin is not None and admin.role is Role.ADMIN


@pytest.mark.slow
def test_the_compose_servers_healthcheck_and_tokens_work_on_a_real_server(
    compose: dict[str, Any], tmp_path: Path
) -> None:
    """The real `ruvon server` (on SQLite, a free port instead of 8800) with the compose
    service's tokens file: the admin token opens the API, and the healthcheck's command exits
    0 while the server answers and non-zero once it is gone."""
    server = compose["services"]["server"]
    source, target, _ = COMPOSE_DEFAULT.sub(r"\1", server["volumes"][0]).split(":")
    port = free_port()
    env = {
        **cli_env(),
        "RUVON_DATABASE_URL": f"sqlite:///{tmp_path / 'ruvon.sqlite3'}",
        "RUVON_SERVER_TOKENS": str(DEPLOY / source),  # where compose mounts it: `target`
    }
    assert server["environment"]["RUVON_SERVER_TOKENS"] == target
    args = ["server", "--host", "127.0.0.1", "--port", str(port)]
    log = tmp_path / "server.log"
    process = spawn(cli_argv(*args), env, log, cwd=tmp_path)
    check = server["healthcheck"]["test"][3].replace(":8800/", f":{port}/")

    def healthcheck() -> int:
        return subprocess.run(
            [sys.executable, "-c", check], capture_output=True, timeout=30
        ).returncode

    try:
        deadline = time.monotonic() + 30
        while healthcheck() != 0:
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        headers = {"Authorization": "Bearer ruvon-compose-admin"}
        response = httpx.get(f"http://127.0.0.1:{port}/api/v1/workflows", headers=headers)
        assert response.status_code == 200, response.text
    finally:
        stop_process_group(process)
    assert healthcheck() != 0


# -- Dockerfile ------------------------------------------------------------------------------


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, continuation lines joined, comments dropped."""
    text = (DEPLOY / "Dockerfile").read_text()
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    joined = re.sub(r"\\\n", " ", "\n".join(lines))
    instructions = []
    for line in joined.splitlines():
        if line.strip():
            keyword, _, args = line.strip().partition(" ")
            instructions.append((keyword.upper(), args.strip()))
    return instructions


def test_dockerfile_builds_in_two_stages_and_runs_as_a_non_root_user() -> None:
    instructions = dockerfile_instructions()
    stages = [i for i, (keyword, _) in enumerate(instructions) if keyword == "FROM"]
    assert len(stages) >= 2
    assert instructions[stages[0]][1].endswith("AS builder")
    runtime = instructions[stages[-1] :]
    users = [args for keyword, args in runtime if keyword == "USER"]
    assert users, "the runtime stage has no USER"
    user = users[-1].split(":")[0]
    assert user == "10001"
    assert ("WORKDIR", "/app") in runtime
    copied = {args.split()[0] for keyword, args in runtime if keyword == "COPY"}
    # The Celery app, the beat and the migrations come with the wheel: the checkout's worker/
    # and beat/ stay out of /app, where a user's own `worker` package would meet them.
    assert "examples" in copied
    assert not copied & {"worker", "beat", "migrations", "alembic.ini"}, copied
    assert any(args.startswith("--from=builder") for keyword, args in runtime if keyword == "COPY")
    (entrypoint,) = [args for keyword, args in runtime if keyword == "ENTRYPOINT"]
    assert json.loads(entrypoint) == ["ruvon"]  # exec form: Celery gets SIGTERM as PID 1
    (command,) = [args for keyword, args in runtime if keyword == "CMD"]
    assert json.loads(command) == ["worker"]


def dockerignored(source: str) -> bool:
    """Whether Dockerfile.dockerignore keeps ``source`` out of the build context (its last
    matching pattern, of the source or a parent, decides; ``!`` patterns bring one back)."""
    lines = (DEPLOY / "Dockerfile.dockerignore").read_text().splitlines()
    patterns = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    parts = Path(source).parts
    prefixes = [str(Path(*parts[:n])) for n in range(1, len(parts) + 1)]
    excluded = False
    for pattern in patterns:
        negated = pattern.startswith("!")
        if any(fnmatch.fnmatchcase(prefix, pattern.lstrip("!")) for prefix in prefixes):
            excluded = not negated
    return excluded


def test_dockerfile_installs_the_server_extras_and_copies_what_exists() -> None:
    instructions = dockerfile_instructions()
    run = " ".join(args for keyword, args in instructions if keyword == "RUN")
    assert "[postgres,celery,redis,prometheus,server]" in run
    for keyword, args in instructions:
        if keyword == "COPY" and not args.startswith("--from"):
            for source in args.split()[:-1]:
                assert (REPO / source).exists(), f"COPY {source}: not in the build context"
                assert not dockerignored(source), f"COPY {source}: excluded by the .dockerignore"
    assert dockerignored("tests") and dockerignored("deploy/grafana/dashboards/ruvon.json")


def test_dockerfile_installs_the_wheel_it_built_with_the_constraints() -> None:
    instructions = dockerfile_instructions()
    copies = [args.split() for keyword, args in instructions if keyword == "COPY"]
    (constraints,) = [args[-1] for args in copies if args[0] == "deploy/constraints.txt"]
    (run,) = [args for keyword, args in instructions if keyword == "RUN" and "pip wheel" in args]
    wheel_dir = re.search(r"pip wheel --no-deps --wheel-dir (\S+) \.", run)
    assert wheel_dir, run
    install = run[run.index("pip install") :]
    assert f"-c {constraints} " in install, install
    extras = ",".join(script_extras())
    assert f'"$(ls {wheel_dir.group(1)}/ruvon-*.whl)[{extras}]"' in install
    # What the image runs is in that wheel: nothing on its PYTHONPATH but the user's /app.
    env = " ".join(args for keyword, args in instructions if keyword == "ENV")
    assert "PYTHONPATH=/app " in env


def script_extras() -> tuple[str, ...]:
    extras: tuple[str, ...] = load_constraints_script().IMAGE_EXTRAS
    return extras


def load_constraints_script() -> Any:
    spec = importlib.util.spec_from_file_location(
        "constraints", REPO / "scripts" / "constraints.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_constraints_pin_every_package_the_image_installs_and_nothing_else() -> None:
    script = load_constraints_script()
    lines = [
        line
        for line in (DEPLOY / "constraints.txt").read_text().splitlines()
        if line and not line.startswith("#")
    ]
    pins = dict(line.split("==") for line in lines)
    assert all(re.fullmatch(r"[a-z0-9-]+==[0-9][0-9A-Za-z.+-]*", line) for line in lines), lines
    requirements = script.project_requirements()
    # The closure of pyproject.toml's requirements for the image's extras, read from .venv:
    # a dependency added to pyproject.toml without `scripts/constraints` is missing here.
    assert set(pins) == set(script.pinned_closure(requirements)), "run scripts/constraints"
    assert {"celery", "flower", "asyncpg", "redis", "prometheus-client", "alembic"} <= set(pins)
    # Ruvon Server's: FastAPI and uvicorn, and what they pull in.
    assert {"fastapi", "starlette", "uvicorn", "h11", "anyio", "jinja2"} <= set(pins)
    for requirement in requirements:
        pinned = pins[canonicalize_name(requirement.name)]
        assert requirement.specifier.contains(pinned, prereleases=True), (requirement, pinned)
    assert script.IMAGE_EXTRAS == ("postgres", "celery", "redis", "prometheus", "server")


def test_constraints_cover_the_server_extra_at_the_versions_installed() -> None:
    """Every requirement of pyproject.toml's `server` extra, and each of theirs, is pinned to
    the version installed here (the one the server tests ran with)."""
    script = load_constraints_script()
    lines = (DEPLOY / "constraints.txt").read_text().splitlines()
    pins = dict(line.split("==") for line in lines if line and not line.startswith("#"))
    server = [
        r for r in script.project_requirements(("server",)) if r.name in ("fastapi", "uvicorn")
    ]
    assert {r.name for r in server} == {"fastapi", "uvicorn"}
    closure = script.pinned_closure(server)
    assert closure.items() <= pins.items(), set(closure.items()) - set(pins.items())
