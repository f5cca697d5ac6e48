"""The real ``ruvon server`` process: live streams see commits made by another process (a
``ruvon resume`` on the same SQLite file), within a second, and SIGTERM with streams open
stops it promptly."""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from ruvon.testing.processes import free_port
from tests.integration.test_cli_process import cli_argv, cli_env, ruvon, write_project
from tests.server.test_server_events import Events
from tests.server.test_server_process import wait_until_up

TOKEN = "process-events-token"
WITHIN = 10.0  # a liveness bound (see tests/server/test_server_events.py), not the target


def lag(event: dict[str, Any]) -> float:
    """Seconds from the commit (its updated_at, this machine's clock) to the event's arrival."""
    committed = datetime.fromisoformat(event["data"]["updated_at"])
    return (datetime.now(UTC) - committed).total_seconds()


@pytest.mark.slow
async def test_streams_of_the_real_server_see_another_process_commit(tmp_path: Path) -> None:
    write_project(tmp_path, wait=0.05)
    run = ruvon(tmp_path, "run", "review.yaml", "--input", '{"order_id": 7}', "--json")
    assert run.returncode == 0, run.stderr
    workflow_id = json.loads(run.stdout)["id"]
    (tmp_path / "tokens").write_text(f"viewer {TOKEN} dashboard\n")
    port = free_port()
    process = subprocess.Popen(
        cli_argv("server", "--port", str(port)),
        cwd=tmp_path,
        env={**cli_env(), "RUVON_SERVER_TOKENS": str(tmp_path / "tokens")},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    headers = {"Authorization": f"Bearer {TOKEN}"}
    try:
        await asyncio.to_thread(wait_until_up, url, process)
        async with (
            httpx.AsyncClient(base_url=url, headers=headers, timeout=20) as client,
            client.stream("GET", f"/api/v1/workflows/{workflow_id}/events") as one,
            client.stream("GET", "/api/v1/events", params={"type": "OrderReview"}) as listing,
        ):
            assert one.status_code == listing.status_code == 200
            one_events, list_events = Events(one), Events(listing)
            first = await one_events.next()
            assert first["data"]["status"] == "WAITING_HUMAN"

            resume = await asyncio.to_thread(
                ruvon, tmp_path, "resume", workflow_id, "--input", '{"approved": true}'
            )
            assert resume.returncode == 0, resume.stderr
            seen = [await one_events.next()]
            while seen[-1]["data"]["status"] != "COMPLETED":
                seen.append(await one_events.next())
            assert all(lag(event) < WITHIN for event in seen), [lag(e) for e in seen]
            listed = await list_events.next()
            assert listed["data"]["id"] == workflow_id and lag(listed) < WITHIN

            # SIGTERM while the list stream is still open: the server ends it and exits.
            stopped_at = time.monotonic()
            process.terminate()
            with pytest.raises((EOFError, httpx.HTTPError)):
                while True:
                    await list_events.next(5.0)
            await asyncio.to_thread(process.wait, 10)
            assert time.monotonic() - stopped_at < 5.0
    finally:
        if process.poll() is None:
            process.kill()
        output, _ = process.communicate(timeout=20)
    # uvicorn shuts down gracefully, then re-raises the signal it caught (so: -SIGTERM).
    assert process.returncode in (0, -15), output
    assert "Application shutdown complete" in output
    assert TOKEN not in output
