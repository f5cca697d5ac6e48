"""``ruvon.Client``: start, watch and steer workflows on a Ruvon cluster from any process.

The client writes to the cluster's PostgreSQL and announces work through the broker; the
workers do the rest. It never runs a step itself, except the step a ``resume`` hands the
person's input to (the workers continue after it)::

    async with Client() as client:                      # RUVON_DATABASE_URL, RUVON_BROKER_URL
        record = await client.start("OrderFulfillment", {"order_id": "A-1"})
        done = await client.wait(record.id, timeout=30)
        print(done.status, done.state)
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Mapping
from types import TracebackType
from typing import Any

from pydantic import BaseModel

from ruvon.builder import WorkflowBuilder
from ruvon.clock import utc_now
from ruvon.config import Settings
from ruvon.errors import ConfigurationError, InvalidWorkflowOperation, WaitTimeout
from ruvon.models import StepType, WorkflowStatus
from ruvon.providers.persistence import PersistenceProvider
from ruvon.records import AuditEntry, WorkflowRecord
from ruvon.signals import SignalSent, send_signal
from ruvon.steps.human import ApprovalDecision, validate_input
from ruvon.workflow import Workflow

__all__ = ["SETTLED", "Client", "check_waiting_input"]


#: Statuses a workflow does not leave on its own: terminal ones, and waiting for a person.
SETTLED = frozenset(
    {status for status in WorkflowStatus if status.is_terminal} | {WorkflowStatus.WAITING_HUMAN}
)
_FIRST_POLL = 0.005
_MAX_POLL = 0.2


def check_waiting_input(workflow: Workflow, user_input: dict[str, Any]) -> None:
    """``InputValidationError`` when a workflow waiting for a person would reject the input.

    The engine fails a workflow whose step rejects its input; this checks first, so nothing
    changes. A pause raised by a step's function (``WorkflowPauseDirective``) takes any input.
    """
    if workflow.status is not WorkflowStatus.WAITING_HUMAN:
        return
    index = workflow.current_step_index
    step = workflow.steps[index] if 0 <= index < len(workflow.steps) else None
    if step is None or workflow.record.runtime.get("resume_after"):
        return
    if step.type is StepType.HUMAN_IN_LOOP:
        validate_input(step, user_input)
    elif step.type is StepType.HUMAN_APPROVAL:
        deadline = workflow.record.run_at
        if user_input or deadline is None or deadline > utc_now():  # else: the timeout applies
            validate_input(step, user_input, default=ApprovalDecision)


class Client:
    """A connection to a cluster: PostgreSQL for the truth, the broker for the hints.

    ``builder`` supplies the workflow types (default: the configured registry,
    ``RUVON_CONFIG_DIR`` / ``RUVON_REGISTRY_FILE``); ``settings`` the URLs (default: the
    environment). Use it as an async context manager, or call :meth:`close`.
    """

    def __init__(
        self,
        builder: WorkflowBuilder | None = None,
        *,
        settings: Settings | None = None,
        persistence: PersistenceProvider | None = None,
        execution: Any = None,
    ) -> None:
        self.settings = settings or (builder.settings if builder else Settings.from_env())
        self.builder = builder or WorkflowBuilder(settings=self.settings)
        self._persistence = persistence
        self._execution = execution
        self._owned: list[Any] = []

    async def __aenter__(self) -> Client:
        await self.connect()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    async def connect(self) -> None:
        """Open the database pool and the broker app (idempotent)."""
        if self._persistence is None:
            url = self.settings.database_url
            if not url.split("://", 1)[0].startswith("postgres"):
                raise ConfigurationError(
                    f"a cluster client needs the cluster's PostgreSQL database, not {url!r}: "
                    "set RUVON_DATABASE_URL=postgresql://USER@HOST/DB"
                )
            from ruvon.implementations.persistence.factory import persistence_from_url

            self._persistence = persistence_from_url(
                url, max_state_bytes=self.settings.max_state_bytes, settings=self.settings
            )
            self._owned.append(self._persistence)
        await self._persistence.initialize()
        if self._execution is None:
            from ruvon.implementations.execution.celery import CeleryExecutionProvider

            self._execution = CeleryExecutionProvider(settings=self.settings)
            self._owned.append(self._execution)

    async def close(self) -> None:
        """Release what this client opened."""
        owned, self._owned = self._owned, []
        for resource in owned:
            result = resource.close()
            if asyncio.iscoroutine(result):
                await result
        self._persistence = None if self._persistence in owned else self._persistence
        self._execution = None if self._execution in owned else self._execution

    # -- operations ----------------------------------------------------------------------------

    async def start(
        self,
        workflow_type: str,
        initial_data: Mapping[str, Any] | BaseModel | None = None,
        *,
        idempotency_key: str | None = None,
        owner_id: str | None = None,
        org_id: str | None = None,
        data_region: str | None = None,
        priority: int | None = None,
        metadata: Mapping[str, Any] | None = None,
        check_broker: bool = True,
        actor: str | None = None,
        version: str | None = None,
    ) -> WorkflowRecord:
        """Store a new workflow with its start run and announce it; return the stored record.

        It runs the latest registered version of ``workflow_type``, or ``version``
        (``WorkflowVersionNotFound``, nothing written, when the type has no such version).

        The broker is checked first (``BrokerUnavailable``, nothing written) unless
        ``check_broker`` is False. With an ``idempotency_key`` already used, the existing
        workflow is returned and nothing is written. ``actor`` (who asked; the server passes
        its token's name) is written to the audit log as an ``OPERATOR_ACTION``, as it is by
        :meth:`resume`, :meth:`cancel` and :meth:`retry`.
        """
        persistence, execution = await self._providers()
        if check_broker:
            await asyncio.to_thread(execution.check_broker)
        workflow = await self.builder.create_workflow(
            workflow_type,
            initial_data,
            persistence_provider=persistence,
            execution_provider=execution,
            idempotency_key=idempotency_key,
            owner_id=owner_id,
            org_id=org_id,
            data_region=data_region,
            priority=priority,
            metadata=metadata,
            actor=actor,
            workflow_version=version,
        )
        return workflow.record

    async def get(self, workflow_id: str) -> WorkflowRecord:
        """The workflow as stored (``WorkflowNotFound`` for an unknown id)."""
        persistence, _ = await self._providers()
        return await persistence.load_workflow(workflow_id)

    async def history(self, workflow_id: str) -> list[AuditEntry]:
        """The workflow's audit log, oldest first (each committed transition, once)."""
        persistence, _ = await self._providers()
        return await persistence.get_audit_log(workflow_id)

    async def state(self, workflow_id: str) -> dict[str, Any]:
        """The workflow's current state."""
        return dict((await self.get(workflow_id)).state)

    async def wait(
        self,
        workflow_id: str,
        timeout: float = 60.0,
        *,
        until: Iterable[WorkflowStatus] = SETTLED,
    ) -> WorkflowRecord:
        """Poll until the workflow is in one of ``until`` (default: settled); ``WaitTimeout``."""
        wanted = frozenset(until)
        deadline = time.monotonic() + timeout
        pause = _FIRST_POLL
        while True:
            record = await self.get(workflow_id)
            if record.status in wanted:
                return record
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise WaitTimeout(
                    f"workflow '{workflow_id}' is still {record.status} at step "
                    f"'{record.current_step_name}' after {timeout:g}s"
                )
            await asyncio.sleep(min(pause, remaining))
            pause = min(pause * 2, _MAX_POLL)

    async def resume(
        self,
        workflow_id: str,
        user_input: dict[str, Any] | None = None,
        *,
        actor: str | None = None,
    ) -> WorkflowRecord:
        """Give a waiting workflow its input; the workers continue after that step.

        Input a person's step rejects raises ``InputValidationError`` before anything is
        written: the workflow keeps waiting (a typo should not fail it). A workflow that is not
        waiting for input raises ``InvalidWorkflowOperation`` and nothing is written: the input
        would otherwise be dropped unread (the second of two racing resumes finds the workflow
        already handed to the workers by the first).
        """
        workflow = await self._load(workflow_id, "resume", actor)
        status = workflow.status
        if status is not WorkflowStatus.WAITING_HUMAN and not status.is_terminal:
            step = workflow.current_step
            where = f" at step '{step}'" if step else ""
            raise InvalidWorkflowOperation(
                f"workflow '{workflow_id}' is {status}{where}, not waiting for input: only a "
                "WAITING_HUMAN workflow can be resumed, and nothing was written (was it resumed "
                "already? `ruvon show` tells where it is)"
            )
        check_waiting_input(workflow, user_input or {})
        await workflow.resume(user_input or {})
        return workflow.record

    async def approve(
        self,
        workflow_id: str,
        approved: bool,
        reason: str | None = None,
        *,
        actor: str | None = None,
    ) -> WorkflowRecord:
        """Decide the HUMAN_APPROVAL step a workflow waits at: ``resume`` with the decision.

        The decision is the step's input (``approved``, ``reason``, ``approver``: the actor),
        validated as ``resume`` validates it. A workflow that is not waiting at an approval
        step raises ``InvalidWorkflowOperation`` and nothing is written. The audit log names the
        action ``approve`` or ``reject``.
        """
        workflow = await self._load(workflow_id, "approve" if approved else "reject", actor)
        index = workflow.current_step_index
        step = workflow.steps[index] if 0 <= index < len(workflow.steps) else None
        if (
            workflow.status is not WorkflowStatus.WAITING_HUMAN
            or step is None
            or step.type is not StepType.HUMAN_APPROVAL
            or workflow.record.runtime.get("resume_after")
        ):
            where = f"at step '{step.name}' ({step.type})" if step is not None else "past its end"
            raise InvalidWorkflowOperation(
                f"workflow '{workflow_id}' is {workflow.status} {where}: only a workflow "
                "waiting at a HUMAN_APPROVAL step can be approved or rejected"
            )
        decision: dict[str, Any] = {"approved": approved}
        if reason is not None:
            decision["reason"] = reason
        if actor is not None:
            decision["approver"] = actor
        check_waiting_input(workflow, decision)
        await workflow.resume(decision)
        return workflow.record

    async def signal(
        self,
        workflow_id: str,
        name: str,
        data: dict[str, Any] | None = None,
        *,
        event_id: str | None = None,
        actor: str | None = None,
    ) -> SignalSent:
        """Send the event ``name`` to a workflow (see :func:`ruvon.signals.send_signal`).

        A workflow waiting at a WAIT_FOR_EVENT step for it moves on (the workers continue
        after that step); otherwise the signal is kept until the workflow gets there. A second
        send with the same ``event_id`` changes nothing (``outcome`` is ``duplicate``).
        """
        workflow = await self._load(workflow_id, "signal", None)
        return await send_signal(
            workflow,
            name,
            data,
            event_id=event_id,
            actor=actor,
            reload=lambda: self._load(workflow_id, "signal", None),
        )

    async def cancel(
        self, workflow_id: str, reason: str | None = None, *, actor: str | None = None
    ) -> WorkflowRecord:
        """Move the workflow to CANCELLED; runs still queued for it become no-ops."""
        workflow = await self._load(workflow_id, "cancel", actor)
        await workflow.cancel(reason)
        return workflow.record

    async def retry(self, workflow_id: str, *, actor: str | None = None) -> WorkflowRecord:
        """Re-activate a failed workflow at its failed step, on the workers."""
        workflow = await self._load(workflow_id, "retry", actor)
        await workflow.retry()
        return workflow.record

    async def _load(self, workflow_id: str, action: str, actor: str | None) -> Workflow:
        persistence, execution = await self._providers()
        workflow = await self.builder.load_workflow(
            workflow_id, persistence_provider=persistence, execution_provider=execution
        )
        if actor is not None:
            workflow.note_operator_action(action, actor)
        return workflow

    async def _providers(self) -> tuple[PersistenceProvider, Any]:
        if self._persistence is None or self._execution is None:
            await self.connect()
        assert self._persistence is not None
        return self._persistence, self._execution
