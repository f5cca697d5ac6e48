"""The embedded runner and its claims, in one process on the memory provider (no I/O).

Real processes on a real SQLite file are in ``tests/integration/test_embedded_runner.py``.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest

from ruvon.builder import WorkflowBuilder
from ruvon.clock import utc_now
from ruvon.embedded import Claimant, EmbeddedRunner, RunnerOptions
from ruvon.embedded.claims import claim_workflow, holder, release_workflow
from ruvon.errors import ConfigurationError
from ruvon.implementations.execution.sync import SyncExecutionProvider
from ruvon.implementations.persistence.memory import MemoryPersistenceProvider
from ruvon.models import StepContext, WorkflowStatus
from ruvon.records import RunnerClaim, ScheduleRecord

CALLS: list[tuple[str, str]] = []


def mark(state: dict[str, Any], context: StepContext) -> dict[str, Any]:
    CALLS.append((context.workflow_id, context.step_name))
    return {}


async def slow_mark(state: dict[str, Any], context: StepContext) -> dict[str, Any]:
    await asyncio.sleep(0.01)  # lets a second runner's pass interleave here
    return mark(state, context)


@pytest.fixture
async def builder() -> AsyncIterator[WorkflowBuilder]:
    CALLS.clear()
    store = MemoryPersistenceProvider()
    execution = SyncExecutionProvider()
    made = WorkflowBuilder(persistence_provider=store, execution_provider=execution)
    made.register_workflow_inline(
        "Waits",
        [
            {"name": "Pause", "type": "WAIT", "wait_seconds": 0.05, "automate_next": True},
            {"name": "After", "type": "STANDARD", "function": slow_mark},
        ],
    )
    made.register_workflow_inline(
        "Approval",
        [
            {"name": "Approve", "type": "HUMAN_APPROVAL", "approval_timeout": 0.05,
             "on_timeout": "auto_approve", "automate_next": True},
            {"name": "After", "type": "STANDARD", "function": mark},
        ],
    )  # fmt: skip
    made.register_workflow_inline("Tick", [{"name": "T", "type": "STANDARD", "function": mark}])
    yield made
    execution.close()


def runner(builder: WorkflowBuilder, pid: int | None = None) -> EmbeddedRunner:
    me = Claimant.here("runner")
    if pid is not None:
        me = Claimant(f"runner@{me.host}:{pid}", me.host, pid)
    return EmbeddedRunner(builder, builder.persistence_provider, claimant=me)  # type: ignore[arg-type]


async def started(builder: WorkflowBuilder, workflow_type: str, count: int = 1) -> list[str]:
    ids = []
    for _ in range(count):
        wf = await builder.create_workflow(workflow_type, {})
        await wf.run()
        ids.append(wf.id)
    return ids


def dead_pid() -> int:
    """A pid no process has (searched down from the top of the range, where pids are rare)."""
    for pid in range(4_194_303, 1, -1):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return pid
        except PermissionError:
            continue
    raise AssertionError("every pid is taken")


# ---------------------------------------------------------------------- options
@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"interval": 0}, "runner option interval: must be a positive number of seconds, not 0"),
        ({"interval": float("nan")}, "runner option interval: must be a positive number"),
        ({"interval": "1"}, "runner option interval: expected seconds, got '1'"),
        ({"recover_every": -1}, "runner option recover_every: must be a positive number"),
        ({"batch": 0}, "runner option batch: must be a whole number of at least 1, not 0"),
        ({"max_catch_up": True}, "runner option max_catch_up: must be a whole number"),
    ],
)
def test_bad_options_are_refused_naming_the_option(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message.replace("(", r"\(")):
        RunnerOptions(**options)


# ---------------------------------------------------------------------- passes
async def test_a_pass_fires_due_timers_and_approval_deadlines_only(
    builder: WorkflowBuilder,
) -> None:
    [early] = await started(builder, "Waits")
    report = await runner(builder).run_once()
    assert report.moved == 0 and CALLS == []
    await asyncio.sleep(0.06)
    [approval] = await started(builder, "Approval")
    [late] = await started(builder, "Waits")  # not due yet
    await asyncio.sleep(0.06)
    report = await runner(builder).run_once()
    assert sorted(report.fired) == sorted([early, late]) and report.timed_out == [approval]
    done = await builder.load_workflow(approval)
    assert done.status is WorkflowStatus.COMPLETED and done.state["approved"] is True
    assert holder(done) is None  # released


async def test_two_runners_in_one_loop_fire_each_timer_once(builder: WorkflowBuilder) -> None:
    ids = await started(builder, "Waits", count=10)
    await asyncio.sleep(0.06)
    one, two = runner(builder), runner(builder, os.getppid())  # both processes are alive
    reports = await asyncio.gather(one.run_once(), two.run_once())
    assert sorted(CALLS) == sorted((wid, "After") for wid in ids)
    assert sorted(reports[0].fired + reports[1].fired) == sorted(ids)


async def test_a_schedule_tick_starts_once_with_two_runners(builder: WorkflowBuilder) -> None:
    store = builder.persistence_provider
    assert store is not None
    due = utc_now() - timedelta(milliseconds=1)
    await store.save_schedule(ScheduleRecord("every", "Tick", "@every 3600s", next_run_at=due))
    one, two = runner(builder), runner(builder, os.getppid())
    reports = await asyncio.gather(one.run_once(), two.run_once())
    assert len(reports[0].started + reports[1].started) == 1 and len(CALLS) == 1


# ---------------------------------------------------------------------- claims
async def test_a_claim_holds_while_its_process_lives(builder: WorkflowBuilder) -> None:
    [wid] = await started(builder, "Waits")
    me, other = Claimant.here("runner"), runner(builder, os.getppid()).me
    wf = await builder.load_workflow(wid)
    assert await claim_workflow(wf, other) is None
    assert await claim_workflow(wf, other) is None  # its own claim: still its own
    stale_copy = await builder.load_workflow(wid)
    taken = await claim_workflow(stale_copy, me)
    assert taken is not None and taken["pid"] == os.getppid()
    assert await release_workflow(stale_copy, me) is False  # not mine to drop
    assert await release_workflow(wf, other) is True
    assert holder(await builder.load_workflow(wid)) is None


async def test_a_dead_or_expired_claim_is_taken_over(builder: WorkflowBuilder) -> None:
    [wid] = await started(builder, "Waits")
    me = Claimant.here("runner", lease=60)
    wf = await builder.load_workflow(wid)
    dead = Claimant(f"runner@{me.host}:x", me.host, dead_pid())
    assert await claim_workflow(wf, dead) is None
    assert await claim_workflow(wf, me) is None  # the dead process's claim does not hold
    assert holder(wf) is not None and me.holds(holder(wf))  # type: ignore[arg-type]

    since = (utc_now() - timedelta(seconds=30)).isoformat()
    far: RunnerClaim = {
        "owner": "runner@elsewhere:1",
        "host": "elsewhere",
        "pid": 1,
        "since": since,
    }
    assert me.is_live(far)  # another host: its lease (60 s) still runs
    expired = RunnerClaim(**{**far, "since": (utc_now() - timedelta(seconds=61)).isoformat()})
    assert not me.is_live(expired)


async def test_the_loser_of_a_claim_race_sees_the_winner(builder: WorkflowBuilder) -> None:
    [wid] = await started(builder, "Waits")
    first, second = await builder.load_workflow(wid), await builder.load_workflow(wid)
    winner, loser = runner(builder).me, runner(builder, os.getppid()).me
    assert await claim_workflow(first, winner) is None
    taken = await claim_workflow(second, loser)  # read the same version: its save conflicts
    assert taken is not None and taken["owner"] == winner.owner
    assert holder(second) is None  # its copy is as it was read


# ---------------------------------------------------------------------- workflow deadlines
def undo(state: dict[str, Any], context: StepContext) -> dict[str, Any]:
    CALLS.append((context.workflow_id, f"undo {context.step_name}"))
    return {"undone": True}


def register_deadlines(builder: WorkflowBuilder) -> None:
    builder.register_workflow_inline(
        "PersonWithDeadline",
        [
            {"name": "Reserve", "type": "STANDARD", "function": mark, "compensate_function": undo},
            {"name": "Approve", "type": "HUMAN_IN_LOOP", "function": mark},
        ],
        saga_mode=True,
        timeout=0.1,
    )
    builder.register_workflow_inline(
        "TimerWithDeadline",
        [
            {"name": "Pause", "type": "WAIT", "wait_seconds": 3600, "automate_next": True},
            {"name": "After", "type": "STANDARD", "function": mark},
        ],
        timeout=0.1,
    )


async def test_a_pass_fails_waiting_workflows_past_their_deadline_compensating(
    builder: WorkflowBuilder,
) -> None:
    register_deadlines(builder)
    [person] = await started(builder, "PersonWithDeadline")
    [timer] = await started(builder, "TimerWithDeadline")
    [untimed] = await started(builder, "Approval")
    assert (await runner(builder).run_once()).deadlines == []
    await asyncio.sleep(0.15)
    CALLS.clear()
    first, second = runner(builder), runner(builder, pid=os.getpid())
    report = await first.run_once()
    assert sorted(report.deadlines) == sorted([person, timer])
    assert (await second.run_once()).deadlines == []  # nothing left: failed exactly once
    store = builder.persistence_provider
    assert store is not None
    rolled_back = await store.load_workflow(person)
    assert rolled_back.status is WorkflowStatus.FAILED_ROLLED_BACK
    assert (rolled_back.error or "").startswith(
        f"WorkflowTimeoutError: workflow '{person}' exceeded its timeout of 0.1s "
        "(at step 'Approve')"
    )
    assert "claim" not in rolled_back.runtime
    assert (await store.load_workflow(timer)).status is WorkflowStatus.FAILED
    # Only the compensation ran: no step after a deadline (the untimed approval's timer fired).
    assert [call for call in CALLS if call[0] != untimed] == [(person, "undo Reserve")]
    assert (await store.load_workflow(untimed)).status is WorkflowStatus.COMPLETED


async def test_a_running_workflow_past_its_deadline_is_left_to_its_live_process(
    builder: WorkflowBuilder,
) -> None:
    register_deadlines(builder)
    running = await builder.create_workflow("PersonWithDeadline", {}, automate_start=False)
    orphan = await builder.create_workflow("PersonWithDeadline", {}, automate_start=False)
    me = Claimant.here("runner")
    assert await claim_workflow(orphan, Claimant("runner@x", me.host, dead_pid())) is None
    await asyncio.sleep(0.15)
    report = await runner(builder).run_once()
    # Unclaimed and ACTIVE: some process (`ruvon run`) has it, and its engine checks the
    # deadline. A dead claimant's is taken over and failed here.
    assert report.deadlines == [orphan.id]
    store = builder.persistence_provider
    assert store is not None
    assert (await store.load_workflow(running.id)).status is WorkflowStatus.ACTIVE
    assert (await store.load_workflow(orphan.id)).status is WorkflowStatus.FAILED
