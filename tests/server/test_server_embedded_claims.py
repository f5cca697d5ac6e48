"""Embedded, the server runs a workflow's steps itself: it takes the workflow's claim first, so
an ``ruvon worker --embedded`` running the same workflow (or a second request) never runs its
steps beside it."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from ruvon.implementations.persistence.factory import persistence_from_url
from ruvon.providers.persistence import PersistenceProvider
from ruvon.records import RunnerClaim
from tests.server.conftest import OPERATOR, auth
from tests.server.test_server_reads import API, start

RESUME = {"input": {"approved": True, "approver": "ada"}}


@pytest.fixture
async def persistence(database_url: str) -> AsyncIterator[PersistenceProvider]:
    """A second connection to the server's database (as a runner would hold)."""
    provider = persistence_from_url(database_url)
    await provider.initialize()
    yield provider
    await provider.close()


@pytest.fixture
def live_process() -> Iterator[int]:
    """The pid of a process that lives for the test (the stand-in for a runner)."""
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        yield process.pid
    finally:
        process.kill()
        process.wait()


async def test_a_live_runners_claim_refuses_a_resume_and_a_dead_ones_does_not(
    api: httpx.AsyncClient, persistence: PersistenceProvider, live_process: int
) -> None:
    made = await start(api, "ExecHuman")
    record = await persistence.load_workflow(made["id"])
    record.runtime["claim"] = RunnerClaim(
        owner="runner@elsewhere", host=socket.gethostname(), pid=live_process, since="x"
    )
    await persistence.save_workflow(record, expected_version=record.version)
    version = record.version  # the save moved it on

    refused = await api.post(
        f"{API}/workflows/{made['id']}/resume", json=RESUME, headers=auth(OPERATOR)
    )  # the step after the wait would run here, beside the runner
    assert refused.status_code == 409, refused.text
    assert "is being run by runner@elsewhere" in refused.json()["message"]
    stored = await persistence.load_workflow(made["id"])
    assert (stored.status, stored.version) == ("WAITING_HUMAN", version)  # nothing written

    dead = RunnerClaim(owner="dead", host=socket.gethostname(), pid=_reaped_pid(), since="x")
    stored.runtime["claim"] = dead
    await persistence.save_workflow(stored, expected_version=version)
    done = await api.post(
        f"{API}/workflows/{made['id']}/resume", json=RESUME, headers=auth(OPERATOR)
    )
    assert done.status_code == 200, done.text
    assert done.json()["status"] == "COMPLETED"
    assert "claim" not in (await persistence.load_workflow(made["id"])).runtime  # released


async def test_two_resumes_at_once_run_the_steps_after_the_wait_once(
    api: httpx.AsyncClient, persistence: PersistenceProvider
) -> None:
    made = await start(api, "ExecHuman")
    url = f"{API}/workflows/{made['id']}/resume"
    first, second = await asyncio.gather(
        api.post(url, json=RESUME, headers=auth(OPERATOR)),
        api.post(url, json=RESUME, headers=auth(OPERATOR)),
    )
    assert sorted([first.status_code, second.status_code]) == [200, 409], (first, second)
    stored = await persistence.load_workflow(made["id"])
    assert stored.status == "COMPLETED" and stored.state["trail"] == ["Done"]


def _reaped_pid() -> int:
    """The pid of a process that has ended (a runner killed mid-way)."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid
