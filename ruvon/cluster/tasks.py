"""Celery task shims: each takes ids, reaches ``ruvon`` through the process's bridge, returns JSON.

Tasks are named explicitly because senders address them by name (clients never import this
module), so a rename here would silently strand messages. The run task names are
:data:`ruvon.implementations.execution.celery_config.RUN_TASKS`; every run task does the same
thing (:class:`ruvon.cluster.runner.StepRunner`), the names only tell the kinds apart in
Flower and in the logs. Their arguments are (run id, workflow id, step, branch): the run id is
the work, the rest makes a message readable.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from ruvon.bridge import get_process_bridge
from ruvon.cluster.app import app
from ruvon.cluster.process import process_carriers, process_persistence, process_runner
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

logger = logging.getLogger("ruvon.worker")

# A liveness query should answer quickly or count as a failure, not hang a pool slot.
_HEALTH_QUERY_TIMEOUT = 10.0


@app.task(name="ruvon.health.check_database")
def check_database() -> dict[str, Any]:
    """Run a trivial query through this process's provider; report which process answered."""
    provider = process_persistence()
    get_process_bridge().run(provider.list_workflows(limit=1), timeout=_HEALTH_QUERY_TIMEOUT)
    return {"pid": os.getpid(), "ok": True}


def _run(run_id: int) -> str:
    """Claim and execute one step run; sync step functions run in this (the task's) thread,
    or in a carrier thread the run is handed over to (then the task ends at once)."""
    runner = process_runner().run(int(run_id))
    outcome = TaskThread().run(get_process_bridge(), runner, process_carriers())
    return outcome if isinstance(outcome, str) else "handed-over"


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


# -- retired: the maintenance tasks an older beat sent ----------------------------------------
# The beat runs its sweeps itself (ruvon.cluster.beat) and sends none of these. They stay
# registered for one release so that messages an older beat left in the maintenance queue are
# drained harmlessly by a worker that still consumes it: each does nothing.
_drained: set[str] = set()


def _retired(name: str) -> dict[str, object]:
    if name not in _drained:
        _drained.add(name)
        logger.info(
            "ignored %s: the beat runs its sweeps itself now (upgrade the beat, and stop "
            "consuming the maintenance queue)",
            MAINTENANCE_TASKS[name],
        )
    return {"sweep": name, "retired": True}


@app.task(name=MAINTENANCE_TASKS["recover_zombies"], ignore_result=True)
def recover_zombies() -> dict[str, object]:
    """Retired (the beat sweeps itself): drains an older beat's message, does nothing."""
    return _retired("recover_zombies")


@app.task(name=MAINTENANCE_TASKS["redispatch_lost"], ignore_result=True)
def redispatch_lost() -> dict[str, object]:
    """Retired (the beat sweeps itself): drains an older beat's message, does nothing."""
    return _retired("redispatch_lost")


@app.task(name=MAINTENANCE_TASKS["reconcile"], ignore_result=True)
def reconcile_parents() -> dict[str, object]:
    """Retired (the beat sweeps itself): drains an older beat's message, does nothing."""
    return _retired("reconcile")


@app.task(name=MAINTENANCE_TASKS["fire_due_timers"], ignore_result=True)
def fire_due_timers() -> dict[str, object]:
    """Retired (the beat sweeps itself): drains an older beat's message, does nothing."""
    return _retired("fire_due_timers")


@app.task(name=MAINTENANCE_TASKS["poll_schedules"], ignore_result=True)
def poll_scheduled_workflows() -> dict[str, object]:
    """Retired (the beat sweeps itself): drains an older beat's message, does nothing."""
    return _retired("poll_schedules")
