"""The side of a workflow a step sees: what it reads, what it records for the next save.

:class:`WorkflowScope` holds one workflow's record, definition, live state and providers, and
implements the reading and recording half of :class:`~ruvon.engine.runtime.StepRuntime`
(identity, state, templates, expressions, step contexts, merges, audit rows). The transitions
that save are :class:`~ruvon.engine.machine.WorkflowEngine`, which extends it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ruvon.engine.events import WorkflowEvents
from ruvon.engine.state import StateKeeper
from ruvon.engine.tracebacks import format_traceback
from ruvon.expressions import evaluate_expression
from ruvon.models import StepContext, WorkflowStatus, make_step_context
from ruvon.records import (
    OPERATOR_ACTION,
    AuditEntry,
    CompensationEntry,
    ExecutionLogEntry,
    WorkflowRecord,
)
from ruvon.templating import render_value

if TYPE_CHECKING:
    from ruvon.definitions.definition import WorkflowDefinition
    from ruvon.definitions.schema import StepDefinition
    from ruvon.engine.distribution import Distribution
    from ruvon.engine.runtime import ChildFactory, RemoteWork
    from ruvon.providers.execution import ExecutionProvider
    from ruvon.providers.observer import WorkflowObserver
    from ruvon.providers.persistence import PersistenceProvider

__all__ = ["WorkflowScope"]


class WorkflowScope:
    """One workflow's record, state and providers, as its steps read and record them."""

    def __init__(
        self,
        record: WorkflowRecord,
        definition: WorkflowDefinition,
        *,
        persistence: PersistenceProvider,
        execution: ExecutionProvider,
        observer: WorkflowObserver,
        children: ChildFactory,
        distribution: Distribution | None,
    ) -> None:
        self._record = record
        self.definition = definition
        self.persistence = persistence
        self.execution = execution
        self.observer = observer
        self.children = children
        self.distribution = distribution
        self._states = StateKeeper(definition.state_model, record.state, workflow_id=record.id)
        self.events = WorkflowEvents(observer, record.id, record.workflow_type)
        self._pending_audit: list[AuditEntry] = []
        self._pending_compensations: list[CompensationEntry] = []
        self._last_result: dict[str, Any] | None = None

    # ------------------------------------------------------------------ what a step reads
    @property
    def id(self) -> str:
        return self._record.id

    @property
    def workflow_type(self) -> str:
        return self._record.workflow_type

    @property
    def status(self) -> WorkflowStatus:
        return self._record.status

    @property
    def state(self) -> Any:
        """The state: an instance of the workflow's pydantic model, or a dict."""
        return self._states.value

    @property
    def record(self) -> WorkflowRecord:
        """The stored form (read it, do not mutate it)."""
        return self._record

    @property
    def steps(self) -> tuple[StepDefinition, ...]:
        return self.definition.steps

    @property
    def remote(self) -> RemoteWork | None:
        """The distributed part as steps see it (None embedded)."""
        return self.distribution

    def run_number(self, step_name: str) -> int:
        """How many times the step has been entered (stable across retries of one run)."""
        return int(self._record.runtime.get("runs", {}).get(step_name, 1))

    def state_dict(self) -> dict[str, Any]:
        """State as a JSON-ready dict (includes changes a step made to ``state`` in place)."""
        return self._states.as_dict()

    def template_variables(self) -> dict[str, Any]:
        """Names available to templates: state, parameters, workflow id and type."""
        return {
            "state": self.state_dict(),
            "parameters": self.definition.spec.parameters,
            "workflow_id": self.id,
            "workflow_type": self.workflow_type,
        }

    def render(self, value: Any) -> Any:
        """Render Jinja templates inside ``value`` against this workflow (sandboxed)."""
        return render_value(value, self.template_variables())

    def evaluate(self, expression: str, extra: dict[str, Any] | None = None) -> Any:
        """Evaluate a safe expression over the state."""
        return evaluate_expression(expression, self._states.value, extra)

    def make_context(self, step: StepDefinition, **extra: Any) -> StepContext:
        """The StepContext handed to a step function."""
        run = self.run_number(step.name)
        base: dict[str, Any] = {
            "workflow_id": self.id,
            "step_name": step.name,
            "previous_step_result": self._last_result,
            "workflow_type": self.workflow_type,
            "idempotency_key": f"{self.id}:{step.name}:{run}",
            "parent_execution_id": self._record.parent_execution_id,
        }
        base.update(extra)
        return make_step_context(base)

    # ------------------------------------------------------------------ what a step may do
    def apply_result(
        self, result: dict[str, Any], step: StepDefinition | None, *, soft: bool = False
    ) -> None:
        """Merge a step result into state and re-validate it (see :meth:`StateKeeper.apply`)."""
        self._states.apply(result, step, soft=soft)

    def audit(self, event: str, step: str | None, details: dict[str, Any]) -> None:
        """Queue an audit row for the next save."""
        self._audit(event, step, details)

    def record_retry(
        self, step: StepDefinition, attempt: int, exc: BaseException, delay: float
    ) -> None:
        """Audit a failed attempt that will be retried after ``delay`` seconds."""
        details: dict[str, Any] = {
            "attempt": attempt,
            "error": f"{type(exc).__name__}: {exc}",
            "delay": round(delay, 3),
        }
        if exc.__traceback__ is not None:
            details["traceback"] = format_traceback(exc)
        self._audit("STEP_RETRY", step.name, details)

    def record_compensation(self, entry: CompensationEntry) -> None:
        """Queue one compensation's outcome for the next save (written with it, fenced)."""
        self._pending_compensations.append(entry)

    def take_pending_audit(self) -> list[AuditEntry]:
        """The audit rows the next save would write, handed to the caller who writes them."""
        audit, self._pending_audit = self._pending_audit, []
        return audit

    def note_operator_action(self, action: str, by: str) -> None:
        """Audit who asked for ``action`` (start, resume, cancel, retry); the next save writes
        it, in the same transaction as the change the action makes."""
        self._audit(OPERATOR_ACTION, None, {"action": action, "by": by})

    async def log(self, message: str, *, level: str = "INFO", step: str | None = None) -> None:
        """Attach a log line to this workflow (shown by ``ruvon logs``)."""
        await self.persistence.append_execution_log(
            ExecutionLogEntry(self.id, level, message, step_name=step)
        )

    def _audit(
        self,
        event: str,
        step: str | None,
        details: dict[str, Any],
        *,
        old: WorkflowStatus | None = None,
        new: WorkflowStatus | None = None,
    ) -> None:
        self._pending_audit.append(
            AuditEntry(
                self.id,
                event,
                step_name=step,
                old_status=str(old) if old else None,
                new_status=str(new) if new else None,
                details=details,
            )
        )
