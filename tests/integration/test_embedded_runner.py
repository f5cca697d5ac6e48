"""``ruvon worker --embedded``: real runner subprocesses on a real SQLite file.

Each test writes a small project into ``tmp_path`` (a registry, workflow files, a step module
that appends one line per real execution to ``marks.txt``), creates workflows through the SDK
so they stop at their wait, and runs ``python -m ruvon.cli.main worker --embedded`` there, as a
user would: once (``--once``), or in a loop stopped with SIGTERM, two at a time, or killed with
SIGKILL half-way.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from ruvon.builder import WorkflowBuilder
from ruvon.clock import utc_now
from ruvon.implementations.execution.sync import SyncExecutionProvider
from ruvon.implementations.persistence.sqlite import SQLitePersistenceProvider
from ruvon.models import WorkflowStatus
from ruvon.records import WorkflowRecord

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
DB = "ruvon.sqlite3"

STEPS = """
import time
from pathlib import Path


def mark(state, context):
    # One line per real execution (the tests count them); the cwd is the project directory.
    with open(Path(__file__).with_name("marks.txt"), "a") as marks:
        marks.write(f"{context.workflow_id} {context.step_name}\\n")
    time.sleep(float(state.get("slow", {}).get(context.step_name, 0)))
    return {context.step_name: True}


def decide(state, context, approved, reason=None, approver=None):
    mark(state, context)
    return {"approved": approved, "reason": reason}


def undo(state, context):
    with open(Path(__file__).with_name("marks.txt"), "a") as marks:
        marks.write(f"{context.workflow_id} undo:{context.step_name}\\n")
    return {"undone": True}
"""

WAITS = """
workflow_type: Waits
initial_state_model: builtins.dict
steps:
  - {name: Start, type: STANDARD, function: runner_steps.mark, automate_next: true}
  - {name: Pause, type: WAIT, wait_seconds: {wait}, automate_next: true}
  - {name: After, type: STANDARD, function: runner_steps.mark, automate_next: true}
  - {name: Done, type: STANDARD, function: runner_steps.mark}
"""

APPROVAL = """
workflow_type: {type}
initial_state_model: builtins.dict
steps:
  - {{name: Start, type: STANDARD, function: runner_steps.mark, automate_next: true}}
  - name: Approve
    type: HUMAN_APPROVAL
    function: runner_steps.decide
    approval_timeout: 0.5
    on_timeout: {on_timeout}
    automate_next: true
  - {{name: After, type: STANDARD, function: runner_steps.mark}}
"""

DEADLINE = """
workflow_type: Deadline
initial_state_model: builtins.dict
saga_mode: true
timeout: 0.5
steps:
  - name: Start
    type: STANDARD
    function: runner_steps.mark
    compensate_function: runner_steps.undo
    automate_next: true
  - {name: Review, type: HUMAN_IN_LOOP, function: runner_steps.mark}
"""

TICKER = """
workflow_type: Ticker
initial_state_model: builtins.dict
steps:
  - {name: Tick, type: STANDARD, function: runner_steps.mark}
"""

REGISTRY = """
workflows:
  - {type: Waits, config_file: waits.yaml}
  - {type: Rejected, config_file: rejected.yaml}
  - {type: Failing, config_file: failing.yaml}
  - {type: Deadline, config_file: deadline.yaml}
  - {type: Ticker, config_file: ticker.yaml, schedule: "@every 1s"}
"""


def write_project(root: Path, *, wait: float) -> Path:
    (root / "runner_steps.py").write_text(STEPS)
    (root / "waits.yaml").write_text(WAITS.replace("{wait}", str(wait)))
    (root / "rejected.yaml").write_text(APPROVAL.format(type="Rejected", on_timeout="auto_reject"))
    (root / "failing.yaml").write_text(APPROVAL.format(type="Failing", on_timeout="fail"))
    (root / "ticker.yaml").write_text(TICKER)
    (root / "deadline.yaml").write_text(DEADLINE)
    (root / "workflow_registry.yaml").write_text(REGISTRY)
    return root


@pytest.fixture
def project(tmp_path: Path) -> Iterator[Path]:
    sys.path.insert(0, str(tmp_path))
    sys.modules.pop("runner_steps", None)  # another test's project had its own copy
    try:
        yield write_project(tmp_path, wait=1.0)
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("runner_steps", None)


def runner_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "ruvon.cli.main", "worker", "--embedded", *args]


def environment(project: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RUVON_", "WORKFLOW_"))}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env["RUVON_REGISTRY_FILE"] = str(project / "workflow_registry.yaml")
    return env


def run_once(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        runner_argv("--once", *args), cwd=project, env=environment(project),
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def start_runner(project: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        runner_argv("--interval", "0.1", *args), cwd=project, env=environment(project),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def stop(runner: subprocess.Popen[str]) -> str:
    """SIGTERM, then the runner's stderr; it must exit 0 by itself."""
    runner.send_signal(signal.SIGTERM)
    _, err = runner.communicate(timeout=30)
    assert runner.returncode == 0, err
    return err


async def create(project: Path, workflow_type: str, count: int = 1, **data: Any) -> list[str]:
    """Start workflows through the SDK on the project's file; each stops at its wait."""
    store = SQLitePersistenceProvider(project / DB)
    await store.initialize()
    execution = SyncExecutionProvider()
    builder = WorkflowBuilder(
        project / "workflow_registry.yaml", persistence_provider=store,
        execution_provider=execution,
    )  # fmt: skip
    ids = []
    try:
        for _ in range(count):
            wf = await builder.create_workflow(workflow_type, dict(data))
            await wf.run()
            ids.append(wf.id)
    finally:
        await store.close()
        execution.close()
    return ids


async def load(project: Path, workflow_id: str) -> WorkflowRecord:
    store = SQLitePersistenceProvider(project / DB)
    await store.initialize()
    try:
        return await store.load_workflow(workflow_id)
    finally:
        await store.close()


async def workflows(project: Path, workflow_type: str) -> list[WorkflowRecord]:
    store = SQLitePersistenceProvider(project / DB)
    await store.initialize()
    try:
        return await store.list_workflows(workflow_type=workflow_type, limit=1000)
    finally:
        await store.close()


def marks(project: Path) -> Counter[tuple[str, str]]:
    path = project / "marks.txt"
    lines = path.read_text().splitlines() if path.exists() else []
    return Counter(tuple(line.split(" ", 1)) for line in lines)  # type: ignore[misc]


async def wait_for_status(
    project: Path, workflow_id: str, status: WorkflowStatus, timeout: float
) -> WorkflowRecord:
    deadline = time.monotonic() + timeout
    while True:
        record = await load(project, workflow_id)
        if record.status is status or time.monotonic() > deadline:
            return record
        await asyncio.sleep(0.05)


# ------------------------------------------------------------------------------ WAIT timers
async def test_a_wait_fires_after_its_delay_and_not_before(project: Path) -> None:
    write_project(project, wait=4.0)  # longer than a runner's start, so --once finds it early
    [wid] = await create(project, "Waits")
    waiting = await load(project, wid)
    assert waiting.status is WorkflowStatus.WAITING_TIMER and waiting.run_at is not None

    early = run_once(project)
    assert early.returncode == 0, early.stderr
    assert utc_now() < waiting.run_at  # the pass ended before the deadline
    assert "fired 0 WAIT timer(s)" in early.stderr
    assert (await load(project, wid)).status is WorkflowStatus.WAITING_TIMER
    assert marks(project)[(wid, "After")] == 0

    runner = start_runner(project)
    try:
        done = await wait_for_status(project, wid, WorkflowStatus.COMPLETED, timeout=20)
    finally:
        err = stop(runner)
    assert done.status is WorkflowStatus.COMPLETED, err
    fired = next(e for e in await audit(project, wid) if e[0] == "TIMER_FIRED")
    assert fired[1] >= waiting.run_at  # not before its deadline
    assert marks(project)[(wid, "After")] == marks(project)[(wid, "Done")] == 1
    assert f"WAIT timer of Waits workflow {wid} at step Pause: now COMPLETED" in err, err
    assert "SIGTERM received" in err and "stopped" in err
    assert (await load(project, wid)).runtime.get("claim") is None  # released


async def audit(project: Path, workflow_id: str) -> list[tuple[str, Any]]:
    store = SQLitePersistenceProvider(project / DB)
    await store.initialize()
    try:
        return [(e.event_type, e.recorded_at) for e in await store.get_audit_log(workflow_id)]
    finally:
        await store.close()


# ------------------------------------------------------------------------------ approvals
async def test_an_approval_timeout_applies_on_timeout(project: Path) -> None:
    [rejected] = await create(project, "Rejected")
    [failing] = await create(project, "Failing")
    assert (await load(project, rejected)).status is WorkflowStatus.WAITING_HUMAN
    await asyncio.sleep(0.7)  # past both deadlines (0.5 s)

    # From another directory, without a registry: the step modules are found next to each
    # workflow's YAML (its snapshot says where), as `ruvon resume` finds them.
    elsewhere = project / "elsewhere"
    elsewhere.mkdir()
    env = environment(project)
    del env["RUVON_REGISTRY_FILE"]
    db = str(project / DB)
    result = subprocess.run(
        [sys.executable, "-m", "ruvon.cli.main", "--db", db, "worker", "--embedded", "--once"],
        cwd=elsewhere, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "timed out 2 approval(s)" in result.stderr, result.stderr

    done = await load(project, rejected)
    assert done.status is WorkflowStatus.COMPLETED
    assert done.state["approved"] is False and "auto_reject" in done.state["reason"]
    assert marks(project)[(rejected, "Approve")] == marks(project)[(rejected, "After")] == 1
    assert "APPROVAL_TIMED_OUT" in [e[0] for e in await audit(project, rejected)]

    failed = await load(project, failing)
    assert failed.status is WorkflowStatus.FAILED
    assert failed.error is not None and "got no decision within 0.5s" in failed.error
    assert marks(project)[(failing, "After")] == 0
    assert f"approval deadline of Failing workflow {failing} at step Approve: now FAILED" in (
        result.stderr
    )


# ------------------------------------------------------------------------------ deadlines
async def test_two_runners_fail_a_workflow_past_its_deadline_once(project: Path) -> None:
    [wid] = await create(project, "Deadline")
    assert (await load(project, wid)).status is WorkflowStatus.WAITING_HUMAN
    await asyncio.sleep(0.7)  # past the 0.5 s deadline

    passes = [
        subprocess.Popen(
            runner_argv("--once"),
            cwd=project,
            env=environment(project),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    errors = [one.communicate(timeout=60)[1] for one in passes]
    assert [one.returncode for one in passes] == [0, 0], errors
    failed = await load(project, wid)
    assert failed.status is WorkflowStatus.FAILED_ROLLED_BACK
    assert (failed.error or "").startswith(
        f"WorkflowTimeoutError: workflow '{wid}' exceeded its timeout of 0.5s (at step 'Review')"
    )
    # Compensated once (whichever runner claimed it); the step after the deadline never ran.
    assert marks(project)[(wid, "undo:Start")] == 1
    assert marks(project)[(wid, "Review")] == 0
    counts = sorted("failed 1 past their deadline" in err for err in errors)
    assert counts in ([False, True], [True, True]), errors  # the other found it held or done
    assert [e[0] for e in await audit(project, wid)].count("WORKFLOW_TIMED_OUT") == 1


# ------------------------------------------------------------------------------ two runners
async def test_two_runners_fire_each_timer_and_each_tick_once(project: Path) -> None:
    ids = await create(project, "Waits", count=12, slow={"After": 0.05})
    first, second = start_runner(project), start_runner(project)
    try:
        deadline = time.monotonic() + 30
        while len(await workflows(project, "Ticker")) < 4:  # a tick a second
            assert time.monotonic() < deadline, "the schedule did not tick"
            await asyncio.sleep(0.1)
        for wid in ids:  # every timer was due after 1 s
            await wait_for_status(project, wid, WorkflowStatus.COMPLETED, timeout=20)
    finally:
        errs = [stop(first), stop(second)]
    counted = marks(project)
    for wid in ids:
        assert (await load(project, wid)).status is WorkflowStatus.COMPLETED
        assert counted[(wid, "After")] == 1, (wid, errs)  # fired once, by one runner
    fired = sum(err.count("WAIT timer of Waits") for err in errs)
    assert fired == len(ids), errs

    tickers = await workflows(project, "Ticker")
    keys = [t.idempotency_key for t in tickers]
    assert len(keys) >= 3 and len(set(keys)) == len(keys), keys
    for ticker in tickers:
        assert ticker.status is WorkflowStatus.COMPLETED
        assert counted[(ticker.id, "Tick")] == 1
    ticks = sorted(datetime.fromisoformat(t.metadata["scheduled_for"]) for t in tickers)
    # One workflow per due time, and none missed: the ticks are one second apart.
    assert [b - a for a, b in itertools.pairwise(ticks)] == [timedelta(seconds=1)] * (
        len(ticks) - 1
    ), ticks
    started = sum(err.count("started Ticker workflow") for err in errs)
    assert started == len(tickers), errs


# ------------------------------------------------------------------------------ SIGKILL
async def test_a_runner_killed_mid_way_leaves_nothing_half_written(project: Path) -> None:
    ids = await create(project, "Waits", count=3, slow={"After": 1.5})
    await asyncio.sleep(1.1)  # all three timers are due
    runner = start_runner(project)
    try:
        deadline = time.monotonic() + 20
        while not any(step == "After" for _, step in marks(project)):
            assert time.monotonic() < deadline, "the runner never fired a timer"
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.2)  # inside the first After step (it sleeps 1.5 s)
    finally:
        runner.kill()
        runner.communicate(timeout=10)  # reaped: its pid no longer exists
    with sqlite3.connect(project / DB) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    records = {wid: await load(project, wid) for wid in ids}
    interrupted = [wid for wid, r in records.items() if r.status is WorkflowStatus.ACTIVE]
    assert len(interrupted) == 1, {wid: r.status for wid, r in records.items()}
    [victim] = interrupted
    assert records[victim].current_step_name == "After"  # as its last save left it
    assert (records[victim].runtime.get("claim") or {}).get("pid") == runner.pid
    assert all(
        r.status is WorkflowStatus.WAITING_TIMER for wid, r in records.items() if wid != victim
    )

    result = run_once(project)
    assert result.returncode == 0, result.stderr
    assert "fired 2 WAIT timer(s)" in result.stderr and "took over 1" in result.stderr
    assert "workflow left by runner@" in result.stderr
    counted = marks(project)
    for wid in ids:
        record = await load(project, wid)
        assert record.status is WorkflowStatus.COMPLETED, (wid, result.stderr)
        assert record.runtime.get("claim") is None
        assert counted[(wid, "Done")] == 1
        # Step side effects are at-least-once: the step the kill interrupted ran again.
        assert counted[(wid, "After")] == (2 if wid == victim else 1)


# ------------------------------------------------------------------------------ bad input
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--interval", "0"], "--interval"),
        (["--interval", "abc"], "--interval"),
        (["--registry", "nowhere.yaml"], "--registry: workflow registry nowhere.yaml not found"),
        (["--queues", "default"], "--queues: Celery worker options, not for --embedded"),
    ],
)
def test_bad_options_are_named(project: Path, args: list[str], message: str) -> None:
    result = run_once(project, *args)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr, result.stderr


def test_embedded_options_need_embedded(project: Path) -> None:
    argv = [sys.executable, "-m", "ruvon.cli.main", "worker", "--once"]
    result = subprocess.run(
        argv, cwd=project, env=environment(project), capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert "--once only go with --embedded" in result.stderr, result.stderr


def test_a_missing_database_or_a_cluster_url_is_refused(project: Path) -> None:
    missing = run_once(project, "--registry", "workflow_registry.yaml")
    # No workflow was ever created here: no file, and the runner does not make one up.
    assert missing.returncode == 2, missing.stderr
    assert "database ruvon.sqlite3 does not exist" in missing.stderr
    assert not (project / DB).exists()
    argv = [sys.executable, "-m", "ruvon.cli.main", "--db", "postgresql://u@127.0.0.1/x"]
    result = subprocess.run(
        [*argv, "worker", "--embedded", "--once"], cwd=project, env=environment(project),
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 2
    assert "runs on the embedded SQLite file" in result.stderr and "ruvon beat" in result.stderr


def test_help_describes_embedded(project: Path) -> None:
    argv = [sys.executable, "-m", "ruvon.cli.main", "worker", "--help"]
    result = subprocess.run(argv, env=environment(project), capture_output=True, text=True)
    assert "--embedded" in result.stdout and "--once" in result.stdout


# ------------------------------------------------------------------------------ ruvon resume
async def hold(project: Path, workflow_id: str, pid: int) -> int:
    """Store a runner's claim by ``pid`` on this host; the version it left."""
    store = SQLitePersistenceProvider(project / DB)
    await store.initialize()
    try:
        record = await store.load_workflow(workflow_id)
        record.runtime["claim"] = {"owner": f"runner@test:{pid}", "host": socket.gethostname(),
                                   "pid": pid, "since": "2026-01-01T00:00:00+00:00"}  # fmt: skip
        return await store.save_workflow(record, expected_version=record.version)
    finally:
        await store.close()


async def test_resume_leaves_a_workflow_a_live_runner_holds_alone(project: Path) -> None:
    [wid] = await create(project, "Waits")
    version = await hold(project, wid, os.getpid())  # this test process: alive
    argv = [sys.executable, "-m", "ruvon.cli.main", "resume", wid]
    env = environment(project)
    refused = subprocess.run(argv, cwd=project, env=env, capture_output=True, text=True)
    assert refused.returncode == 1, refused.stderr  # as for any workflow it cannot resume
    assert f"is being run by runner@test:{os.getpid()}" in refused.stderr
    assert "nothing was changed" in refused.stderr
    assert (await load(project, wid)).version == version

    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    await hold(project, wid, gone.pid)  # a runner that died: its claim no longer holds
    resumed = subprocess.run(argv, cwd=project, env=env, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    done = await load(project, wid)
    assert done.status is WorkflowStatus.COMPLETED and done.runtime.get("claim") is None
    assert marks(project)[(wid, "After")] == 1
