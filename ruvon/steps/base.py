"""What a step handler returns to the engine, and the handler interface itself.

A handler never saves anything on its own: it describes the transition (advance, jump, suspend)
and the engine commits it with the audit row in one save. Work that must happen *after* that
commit (running a child workflow, running an ASYNC step once PENDING_ASYNC is durable) is a
``follow_up`` that yields the next outcome.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from ruvon.models import WorkflowStatus

if TYPE_CHECKING:
    from ruvon.definitions.schema import StepDefinition
    from ruvon.workflow import Workflow


@dataclass
class Advance:
    """The step is done: merge ``result`` and move to the next step."""

    result: dict[str, Any] = field(default_factory=dict)
    soft_keys: bool = False


@dataclass
class Jump:
    """The step is done: merge ``result`` and continue at ``target``."""

    target: str
    result: dict[str, Any] = field(default_factory=dict)


@dataclass
class Suspend:
    """The workflow waits at this step in ``status`` until something resumes it."""

    status: WorkflowStatus
    result: dict[str, Any] = field(default_factory=dict)
    run_at: datetime | None = None
    waiting_for: str | None = None
    blocked_on_child_id: str | None = None
    follow_up: Callable[[], Awaitable[StepOutcome | None]] | None = None
    # A pause raised by a step function resumes *after* that step (Ruvon's legacy pattern).
    resume_after: bool = False


StepOutcome = Advance | Jump | Suspend


class StepHandler(Protocol):
    """Runtime behaviour of one step kind."""

    async def execute(
        self, wf: Workflow, step: StepDefinition, user_input: dict[str, Any] | None
    ) -> StepOutcome:
        """Run the step from the start."""
        ...

    async def resume(
        self, wf: Workflow, step: StepDefinition, user_input: dict[str, Any] | None
    ) -> StepOutcome | None:
        """Continue a step that suspended; None means it is still waiting."""
        ...


class NotResumable:
    """Mixin for step kinds that never suspend in a waiting status."""

    async def resume(
        self, wf: Workflow, step: StepDefinition, user_input: dict[str, Any] | None
    ) -> StepOutcome | None:
        return None
