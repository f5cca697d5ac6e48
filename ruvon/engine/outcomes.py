"""What a step handler returns to the engine, and the handler interface itself.

A handler never saves anything on its own: it describes the transition (advance, jump, suspend)
and the engine commits it with the audit row in one save. Work that must happen *after* that
commit (running a child workflow, running an ASYNC step once PENDING_ASYNC is durable) is a
``follow_up`` that yields the next outcome.

:class:`StepHandler` has one method per thing the engine asks of a step kind; :class:`StepKind`
is its no-op base (dramatiq's middleware shape), so a kind overrides only what it does.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from ruvon.definitions.rules import StepProblem
from ruvon.models import WorkflowStatus

if TYPE_CHECKING:
    from ruvon.definitions.schema import StepDefinition
    from ruvon.engine.runtime import StepRuntime

__all__ = ["Advance", "Jump", "StepHandler", "StepKind", "StepOutcome", "Suspend"]


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
    """Runtime behaviour and definition rules of one step kind."""

    async def execute(
        self, rt: StepRuntime, step: StepDefinition, user_input: dict[str, Any] | None
    ) -> StepOutcome:
        """Run the step from the start (or again, after a crash interrupted it)."""
        ...

    async def resume(
        self, rt: StepRuntime, step: StepDefinition, user_input: dict[str, Any] | None
    ) -> StepOutcome | None:
        """Continue a step that suspended; None means it is still waiting."""
        ...

    def dispatch_ahead(
        self, rt: StepRuntime, step: StepDefinition, user_input: dict[str, Any] | None
    ) -> Suspend | None:
        """Distributed: hand the step to the workers now (enqueue its runs, return the
        suspension), or None if it runs in this process. The engine calls it when the workflow
        arrives at the step, so the runs join the save that records the arrival."""
        ...

    def validate(self, step: StepDefinition) -> Iterator[StepProblem]:
        """What is wrong with a definition of this kind (checked when a workflow file loads)."""
        ...


class StepKind:
    """A :class:`StepHandler` that does nothing but ``execute``: override what a kind needs."""

    async def execute(
        self, rt: StepRuntime, step: StepDefinition, user_input: dict[str, Any] | None
    ) -> StepOutcome:
        raise NotImplementedError

    async def resume(
        self, rt: StepRuntime, step: StepDefinition, user_input: dict[str, Any] | None
    ) -> StepOutcome | None:
        """Kinds that never suspend in a waiting status have nothing to resume."""
        return None

    def dispatch_ahead(
        self, rt: StepRuntime, step: StepDefinition, user_input: dict[str, Any] | None
    ) -> Suspend | None:
        """Most kinds run where the workflow is (inline, on whichever process moves it)."""
        return None

    def validate(self, step: StepDefinition) -> Iterator[StepProblem]:
        """No rules beyond the ones every step has."""
        return iter(())
