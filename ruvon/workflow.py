"""The public workflow object, driven by :meth:`Workflow.next_step`.

The engine only knows the provider protocols: where state lives is the persistence provider's
business, how a function runs is the execution provider's. Each call to ``next_step`` performs
one transition (plus the ones ``automate_next`` chains), and every transition is one fenced save:
state, status, position and its audit rows together (see :mod:`ruvon.engine`).
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

from ruvon.engine.deadline import past_deadline
from ruvon.engine.machine import WAITING, WorkflowEngine
from ruvon.errors import InvalidWorkflowOperation
from ruvon.models import WorkflowStatus
from ruvon.providers.runs import RunKind
from ruvon.steps.registry import DEFAULT_HANDLERS


class _Done:
    """An already-finished awaitable, so ``enable_saga_mode()`` works with or without await."""

    def __await__(self) -> Any:
        return iter(())


class Workflow(WorkflowEngine):
    """One running workflow instance.

    Build it with :class:`ruvon.builder.WorkflowBuilder` (``create_workflow`` / ``load_workflow``);
    then call ``await workflow.next_step(user_input=...)`` until the status is terminal, or
    ``await workflow.run()`` to go as far as possible.
    """

    #: The step kinds Ruvon ships: what a workflow runs unless it is handed other handlers.
    default_handlers = DEFAULT_HANDLERS

    # ------------------------------------------------------------------ read-only view
    @property
    def workflow_version(self) -> str | None:
        return self._record.workflow_version

    @property
    def current_step_index(self) -> int:
        return self._record.current_step

    @property
    def current_step(self) -> str | None:
        """Name of the step the workflow is at (None once it ran past the last step)."""
        return self._record.current_step_name

    @property
    def definition_snapshot(self) -> dict[str, Any]:
        return self._record.definition_snapshot

    @property
    def saga_mode_enabled(self) -> bool:
        return self._record.saga_mode

    @property
    def parent_execution_id(self) -> str | None:
        return self._record.parent_execution_id

    @property
    def error(self) -> str | None:
        return self._record.error

    @property
    def sub_workflow_results(self) -> dict[str, Any]:
        """Results of finished children, keyed by child workflow id."""
        return dict(self._record.runtime.get("sub_workflow_results", {}))

    def __repr__(self) -> str:
        return f"<Workflow {self.workflow_type} {self.id} {self.status} at {self.current_step}>"

    # ------------------------------------------------------------------ public operations
    def enable_saga_mode(self) -> Awaitable[None]:
        """Turn on compensation for this instance (persisted with the next save)."""
        self._record.saga_mode = True
        return _Done()

    async def next_step(
        self, user_input: dict[str, Any] | None = None
    ) -> tuple[dict[str, Any], str | None]:
        """Perform the next transition; returns (step result, jump target or None).

        A step failure is persisted (FAILED, or FAILED_ROLLED_BACK after compensation) and then
        re-raised to the caller. Calling it on a terminal workflow raises
        ``InvalidWorkflowOperation``.
        """
        async with self._lock:
            if self.status.is_terminal:
                raise InvalidWorkflowOperation(
                    f"workflow '{self.id}' is {self.status}; it has nothing left to run "
                    "(use `ruvon retry` to re-run a FAILED workflow)"
                )
            result, jump, chain = await self._transition(user_input)
            while chain and self.status is WorkflowStatus.ACTIVE:
                result, jump, chain = await self._transition(None)
            return result, jump

    async def run(self, *, max_transitions: int = 100_000) -> WorkflowStatus:
        """Advance as far as possible; stop at a wait that is not due, or a terminal status.

        A workflow found PENDING_ASYNC / PENDING_PARALLEL (its process died mid-step) runs that
        step again; one PENDING_SUB_WORKFLOW checks on its child. Step failures do not raise
        here: they are persisted and visible in ``status`` / ``error``.
        """
        for _ in range(max_transitions):
            status = self.status
            if status.is_terminal or (status in WAITING and not self._is_due()):
                break
            version = self._record.version
            try:
                await self.next_step()
            except Exception:
                if not self.status.is_terminal:
                    raise
                break
            if self.status is status and self._record.version == version:
                break  # nothing moved: the workflow waits on something outside it
        return self.status

    async def resume(
        self, user_input: dict[str, Any] | None = None
    ) -> tuple[dict[str, Any], str | None]:
        """Resume a waiting workflow with ``user_input`` (alias of ``next_step``)."""
        return await self.next_step(user_input=user_input if user_input is not None else {})

    async def cancel(self, reason: str | None = None) -> None:
        """Move to CANCELLED (no compensation); a terminal workflow cannot be cancelled."""
        async with self._lock:
            if self.status.is_terminal:
                raise InvalidWorkflowOperation(f"workflow '{self.id}' is already {self.status}")
            self._record.error = reason
            await self._finish(WorkflowStatus.CANCELLED, "WORKFLOW_CANCELLED", {"reason": reason})

    async def retry(self) -> None:
        """Re-activate a FAILED workflow at the step that failed (an operator's decision)."""
        async with self._lock:
            retryable = (
                WorkflowStatus.FAILED,
                WorkflowStatus.FAILED_WORKER_CRASH,
                WorkflowStatus.FAILED_CHILD_WORKFLOW,
            )
            if self.status not in retryable:
                raise InvalidWorkflowOperation(
                    f"workflow '{self.id}' is {self.status}; only "
                    f"{', '.join(retryable)} workflows can be retried"
                )
            deadline = self._record.deadline_at
            if deadline is not None and past_deadline(self._record):
                # Its deadline is fixed at its start: re-activated, it would fail again at once.
                raise InvalidWorkflowOperation(
                    f"workflow '{self.id}' is past its deadline ({deadline.isoformat()}, its "
                    "workflow timeout counted from its start); a retry would fail it again at "
                    "once: start a new workflow instead"
                )
            old = self.status
            self._record.error = None
            self._record.completed_at = None
            self._record.blocked_on_child_id = None
            self._set_status(WorkflowStatus.ACTIVE, "WORKFLOW_RETRIED", old=old)
            if self.distribution is not None:  # on a cluster, the workers re-run the step
                self.distribution.enqueue(
                    RunKind.ADVANCE,
                    self.current_step or "",
                    branch=f"v{self._record.version + 1}",
                )
            await self.save()

    async def jump_to_step(self, target_step_name: str) -> None:
        """Move the workflow to ``target_step_name`` without running anything."""
        async with self._lock:
            self._record.current_step = self._index_of(target_step_name)
            self._audit("JUMPED", target_step_name, {"manual": True})
            await self.save()
