"""Celery task shims: each takes ids, reaches ``ruvon`` through the process's bridge, returns JSON.

Tasks are named explicitly because senders address them by name (clients never import this
module), so a rename here would silently strand messages. The run task names are
:data:`ruvon.implementations.execution.celery_config.RUN_TASKS`; every run task does the same
thing (:class:`ruvon.cluster.runner.StepRunner`), the names only tell the kinds apart in
Flower and in the logs. Their arguments are (run id, workflow id, step, branch): the run id is
the work, the rest makes a message readable.
"""

from __future__ import annotations

import os
from typing import Any

from ruvon.bridge import get_process_bridge
from ruvon.cluster.app import app
from ruvon.cluster.process import process_persistence, process_runner, process_sweeps
from ruvon.cluster.sweeps import SweepReport
from ruvon.implementations.execution.celery_config import MAINTENANCE_TASKS, RUN_TASKS
from ruvon.implementations.execution.task_thread import TaskThread
from ruvon.providers.runs import RunKind

__all__ = [
    "check_database",
    "fire_due_timers",
    "poll_scheduled_workflows",
    "reconcile_parents",
    "recover_zombies",
    "redispatch_lost",
    "run_advance",
    "run_branch",
    "run_join",
    "run_step",
]

# A liveness query should answer quickly or count as a failure, not hang a pool slot.
_HEALTH_QUERY_TIMEOUT = 10.0


@app.task(name="ruvon.health.check_database")
def check_database() -> dict[str, Any]:
    """Run a trivial query through this process's provider; report which process answered."""
    provider = process_persistence()
    get_process_bridge().run(provider.list_workflows(limit=1), timeout=_HEALTH_QUERY_TIMEOUT)
    return {"pid": os.getpid(), "ok": True}


def _run(run_id: int) -> str:
    """Claim and execute one step run; sync step functions run in this (the task's) thread."""
    return TaskThread().run(get_process_bridge(), process_runner().run(int(run_id)))


@app.task(name=RUN_TASKS[RunKind.STEP], ignore_result=True)
def run_step(run_id: int, workflow_id: str, step_name: str, branch: str = "") -> str:
    """Run an ASYNC step, then the inline steps after it."""
    return _run(run_id)


@app.task(name=RUN_TASKS[RunKind.BRANCH], ignore_result=True)
def run_branch(run_id: int, workflow_id: str, step_name: str, branch: str = "") -> str:
    """Run one PARALLEL branch; the branch completing the set runs the join too."""
    return _run(run_id)


@app.task(name=RUN_TASKS[RunKind.JOIN], ignore_result=True)
def run_join(run_id: int, workflow_id: str, step_name: str, branch: str = "") -> str:
    """Merge a PARALLEL step's branch results and continue."""
    return _run(run_id)


@app.task(name=RUN_TASKS[RunKind.ADVANCE], ignore_result=True)
def run_advance(run_id: int, workflow_id: str, step_name: str, branch: str = "") -> str:
    """Move a workflow on from where it is (its start, a finished child, a resume)."""
    return _run(run_id)


# -- the beat's maintenance tasks (sent by beat/ to the maintenance queue) -------------------


def _sweep(name: str) -> dict[str, object]:
    sweeps = process_sweeps()
    report: SweepReport = TaskThread().run(get_process_bridge(), getattr(sweeps, name)())
    return report.as_dict()


@app.task(name=MAINTENANCE_TASKS["recover_zombies"], ignore_result=True)
def recover_zombies() -> dict[str, object]:
    """Re-queue step runs whose worker died; fail those that lost too many workers."""
    return _sweep("recover_zombies")


@app.task(name=MAINTENANCE_TASKS["redispatch_lost"], ignore_result=True)
def redispatch_lost() -> dict[str, object]:
    """Send again the due step runs whose message was lost."""
    return _sweep("redispatch_lost")


@app.task(name=MAINTENANCE_TASKS["reconcile"], ignore_result=True)
def reconcile_parents() -> dict[str, object]:
    """Resume parents whose child ended; fire complete joins without a join run."""
    return _sweep("reconcile")


@app.task(name=MAINTENANCE_TASKS["fire_due_timers"], ignore_result=True)
def fire_due_timers() -> dict[str, object]:
    """Advance cluster workflows whose WAIT timer or approval deadline is due."""
    return _sweep("fire_due_timers")


@app.task(name=MAINTENANCE_TASKS["poll_schedules"], ignore_result=True)
def poll_scheduled_workflows() -> dict[str, object]:
    """Start the workflows of cron schedules whose tick is due."""
    return _sweep("poll_schedules")
