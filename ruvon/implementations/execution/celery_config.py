"""The Celery configuration shared by Ruvon workers and clients, and the run task names.

Senders address tasks **by name** (a client never imports the worker's tasks), so these names
are the contract between :class:`~ruvon.implementations.execution.celery.CeleryExecutionProvider`
and the task shims in :mod:`ruvon.cluster.tasks`.

PostgreSQL is the source of truth and a Celery message is only a hint (DESIGN.md, "The
correctness model"), which is what the settings below encode: a message is acknowledged after
its task ran (``task_acks_late``), a child killed mid-task gives its message back
(``task_reject_on_worker_lost``), a process reserves one message at a time
(``worker_prefetch_multiplier=1``), and messages are JSON carrying ids only.
"""

from __future__ import annotations

from typing import Any

from ruvon.config import Settings
from ruvon.implementations.execution.broker_lanes import PRIORITY_STEPS
from ruvon.providers.runs import RunKind

__all__ = ["BROKER_VISIBILITY_TIMEOUT", "MAINTENANCE_TASKS", "RUN_TASKS", "celery_config"]

#: One task name per kind of step run; each takes (run_id, workflow_id, step_name, branch).
RUN_TASKS: dict[RunKind, str] = {
    RunKind.STEP: "ruvon.run.step",
    RunKind.BRANCH: "ruvon.run.branch",
    RunKind.JOIN: "ruvon.run.join",
    RunKind.ADVANCE: "ruvon.run.advance",
}

#: Retired: the sweep tasks an older beat sent to the maintenance queue. The beat runs its sweeps
#: itself now and sends none; workers keep these names registered for one release, as no-ops,
#: so that messages already queued drain harmlessly (:mod:`ruvon.cluster.tasks`).
MAINTENANCE_TASKS: dict[str, str] = {
    "recover_zombies": "ruvon.maintenance.recover_zombies",
    "redispatch_lost": "ruvon.maintenance.redispatch_lost",
    "reconcile": "ruvon.maintenance.reconcile_parents",
    "fire_due_timers": "ruvon.maintenance.fire_due_timers",
    "poll_schedules": "ruvon.maintenance.poll_scheduled_workflows",
}

# Redis re-delivers a message that was reserved but not acknowledged after this long. With
# acks_late a message stays reserved while its task runs, so this must exceed the longest task:
# steps are short units of work, and delays live in PostgreSQL (``run_at``). A retry's message
# may carry a short countdown as a hint, capped well below this timeout (see the provider).
BROKER_VISIBILITY_TIMEOUT = 3600
# Opening the asyncpg pool (and checking the schema revision) happens in worker_process_init;
# Celery kills a child that has not reported "up" within worker_proc_alive_timeout (4 s by
# default), which a loaded machine or a slow database can exceed.
PROCESS_INIT_TIMEOUT = 30.0
_PROC_ALIVE_TIMEOUT = PROCESS_INIT_TIMEOUT + 10.0


def celery_config(settings: Settings) -> dict[str, Any]:
    """The Celery configuration of a Ruvon worker (or client) for ``settings``."""
    transport_options: dict[str, Any] = {
        "visibility_timeout": BROKER_VISIBILITY_TIMEOUT,
        # Kombu emulates AMQP acks on Redis by copying every delivered message into an
        # "unacked" hash and deleting it at the ack: two Redis round trips per message in the
        # worker's consumer. Acked on receipt (the default), that copy protects nothing, so it
        # is kept only with RUVON_ACKS_LATE.
        "ack_emulation": settings.acks_late,
        # One list per priority, 0-9 (kombu's default folds them into four): broker_lanes.
        "priority_steps": list(PRIORITY_STEPS),
    }
    backend_options: dict[str, Any] = {}
    if settings.broker_key_prefix:
        transport_options["global_keyprefix"] = settings.broker_key_prefix
        backend_options["global_keyprefix"] = settings.broker_key_prefix
    return {
        "broker_url": settings.broker_url,
        "result_backend": settings.result_backend,
        "broker_connection_retry_on_startup": True,
        "broker_transport_options": transport_options,
        "result_backend_transport_options": backend_options,
        # Ids-only messages: JSON, never pickle (no code execution from the broker).
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        "result_accept_content": ["json"],
        "task_acks_late": settings.acks_late,
        "task_reject_on_worker_lost": settings.acks_late,
        # A step running when the broker connection drops runs on and commits; only its ack
        # is lost (the message is a hint: a re-delivery finds the run done). Cancelling it
        # instead would SIGTERM the pool process mid-step for the lease sweep to re-run.
        # False is Celery 5's default; Celery 6 makes it True, hence explicit.
        "worker_cancel_long_running_tasks_on_connection_loss": False,
        "worker_prefetch_multiplier": settings.worker_prefetch,
        # "task-sent" events stay off: each would cost the sender a second Redis round trip per
        # message. Workers send the others only when asked (Flower asks; RUVON_TASK_EVENTS=1
        # sends them from the start).
        "task_send_sent_event": False,
        "worker_send_task_events": settings.task_events,
        "task_track_started": True,
        "worker_proc_alive_timeout": _PROC_ALIVE_TIMEOUT,
        "result_expires": 24 * 3600,
        "task_default_queue": settings.default_queue,
        "timezone": "UTC",
        "enable_utc": True,
    }
