"""The real ``ruvon server`` in a subprocess, over the SQLite file a ``ruvon run`` wrote."""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from ruvon.testing.cluster import REPO_ROOT
from ruvon.testing.processes import free_port
from tests.integration.test_cli_process import audit, cli_argv, cli_env, ruvon, write_project

TOKEN = "process-test-token"
OPERATOR_TOKEN = "process-operator-token"


def wait_until_up(url: str, process: subprocess.Popen[str], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"ruvon server exited {process.returncode}")
        try:
            if httpx.get(f"{url}/healthz", timeout=1.0).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.1)
    raise AssertionError(f"ruvon server did not answer at {url} within {timeout}s")


@pytest.mark.slow
def test_ruvon_server_serves_the_workflow_ruvon_run_stored(tmp_path: Path) -> None:
    write_project(tmp_path, wait=0.05)
    run = ruvon(tmp_path, "run", "review.yaml", "--input", '{"order_id": 7}', "--json")
    assert run.returncode == 0, run.stderr
    workflow_id = json.loads(run.stdout)["id"]
    (tmp_path / "tokens").write_text(
        f"viewer {TOKEN} dashboard\noperator {OPERATOR_TOKEN} night-shift\n"
    )
    port = free_port()
    env = {**cli_env(), "RUVON_SERVER_TOKENS": str(tmp_path / "tokens")}
    process = subprocess.Popen(
        cli_argv("server", "--port", str(port)),
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(url, process)
        headers = {"Authorization": f"Bearer {TOKEN}"}
        response = httpx.get(f"{url}/api/v1/workflows/{workflow_id}", headers=headers)
        assert response.status_code == 200, response.text
        detail = response.json()
        assert detail["status"] == "WAITING_HUMAN" and detail["current_step"] == "Approve"
        assert detail["state"] == {"order_id": 7, "prepared": True}
        assert httpx.get(f"{url}/api/v1/workflows").status_code == 401
        assert httpx.get(f"{url}/readyz").json()["ready"] is True

        # Embedded: the server runs the rest of the workflow itself, with the step modules
        # of the directory it was started in, as `ruvon resume` would.
        resumed = httpx.post(
            f"{url}/api/v1/workflows/{workflow_id}/resume",
            json={"input": {"approved": True, "comment": "fine"}},
            headers={"Authorization": f"Bearer {OPERATOR_TOKEN}"},
            timeout=20,
        )
        assert resumed.status_code == 200, resumed.text
        assert resumed.json()["status"] == "COMPLETED"
        assert resumed.json()["state"]["finished"] is True
    finally:
        process.terminate()
        output, _ = process.communicate(timeout=20)
    assert f"Ruvon Server on {url}" in output
    assert TOKEN not in output and OPERATOR_TOKEN not in output  # tokens are never logged
    actions = [e.details for e in audit(tmp_path, workflow_id) if e.event_type == "OPERATOR_ACTION"]
    assert actions == [{"action": "resume", "by": "night-shift"}]


def test_ruvon_server_refuses_to_start_without_tokens(tmp_path: Path) -> None:
    result = ruvon(tmp_path, "server", "--port", str(free_port()))
    assert result.returncode != 0
    assert "RUVON_SERVER_TOKENS is not set" in result.stderr
    assert "RUVON_SERVER_ANONYMOUS=viewer" in result.stderr
    assert not (tmp_path / "ruvon.sqlite3").exists()  # refused before opening anything


def _readme_quick_start_server() -> tuple[dict[str, str], list[str]]:
    """The README's quick-start ``ruvon server`` line: its environment and its arguments."""
    readme = (REPO_ROOT / "README.md").read_text()
    line = next(
        line
        for line in readme.split("## Writing a workflow")[0].splitlines()
        if "ruvon server" in line
    )
    command = shlex.split(line.split("&&", 1)[1].split("#", 1)[0])
    env = dict(word.split("=", 1) for word in command if "=" in word and not word.startswith("-"))
    args = [word for word in command if "=" not in word][1:]  # after .venv/bin/ruvon
    return env, args


@pytest.mark.slow
def test_the_readme_quick_start_opens_the_ui_over_what_ruvon_run_stored(tmp_path: Path) -> None:
    shutil.copytree(REPO_ROOT / "examples", tmp_path / "examples")
    run = ruvon(tmp_path, "run", "examples/order_fulfillment/order_fulfillment.yaml", timeout=60)
    assert run.returncode == 0, run.stderr
    env, args = _readme_quick_start_server()
    assert args == ["server"]  # the default address: http://127.0.0.1:8800/ui, as the README says
    port = free_port()  # 8800 may be taken on a test machine
    process = subprocess.Popen(
        cli_argv(*args, "--port", str(port)),
        cwd=tmp_path,
        env={**cli_env(), **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(url, process)
        page = httpx.get(f"{url}/ui", follow_redirects=True, timeout=10)
        assert page.status_code == 200, page.text
        assert "OrderFulfillment" in page.text and "COMPLETED" in page.text
        # Read-only: no operator may act through it.
        listed = httpx.get(f"{url}/api/v1/workflows", timeout=10).json()["items"]
        cancel = httpx.post(f"{url}/api/v1/workflows/{listed[0]['id']}/cancel", json={}, timeout=10)
        assert cancel.status_code == 403, cancel.text
    finally:
        process.terminate()
        process.communicate(timeout=20)
