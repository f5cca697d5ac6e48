"""What a step handler may read and do: the one view of a workflow that ``steps/`` sees.

The engine (:class:`~ruvon.engine.machine.WorkflowEngine`) implements :class:`StepRuntime`;
handlers are typed against it, never against the concrete workflow, so a handler cannot reach
into the machine (its saves, its lock, its pending audit rows) and the machine can change
without touching them. The same shape as Temporal's ``_Runtime``: the API delegates, the worker
implements.

Two parts are optional and protocols of their own:

* :class:`ChildFactory` — how a handler creates or loads another workflow (SUB_WORKFLOW,
  FIRE_AND_FORGET, a parent's resumption), given to the engine by whoever built it;
* :class:`RemoteWork` — the distributed part (``None`` embedded): the runs a step asks workers
  for, and the claim a worker runs this workflow under.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from ruvon.definitions.definition import WorkflowDefinition
    from ruvon.definitions.schema import QueueLimits, StepDefinition
    from ruvon.engine.events import WorkflowEvents
    from ruvon.models import StepContext, WorkflowStatus
    from ruvon.providers.execution import ExecutionProvider
    from ruvon.providers.ledger import RunLedger
    from ruvon.providers.persistence import PersistenceProvider
    from ruvon.providers.runs import Claim, QueuedRun, RunKind
    from ruvon.records import CompensationEntry, WorkflowRecord

__all__ = ["ChildFactory", "ChildWorkflow", "RemoteWork", "StepRuntime", "WorkflowView"]


class RemoteWork(Protocol):
    """A workflow's distributed part, as a step sees it."""

    @property
    def ledger(self) -> RunLedger | None:
        """The shared store of step runs (branch results live there)."""
        ...

    @property
    def claim(self) -> Claim | None:
        """The run this object was loaded to execute, on a worker (None on a client)."""
        ...

    def enqueue(
        self,
        kind: RunKind,
        step_name: str,
        *,
        branch: str = "",
        queue: str | None = None,
        run_number: int | None = None,
        workflow_id: str | None = None,
    ) -> None:
        """Ask for a step run, inserted by the workflow's next save and announced after it.

        The queue defaults to the step's own ``queue``, else the workflow's data region, else
        the dispatcher's default; the run number to the step's current visit (1 for advance).
        """
        ...

    def claimed_attempt(self, step_name: str, *kinds: RunKind) -> int | None:
        """The attempt number when this object runs the claimed work of ``step_name`` (of one
        of ``kinds``) itself, else None: a worker's call is one attempt, its retry a new run."""
        ...

    def defer(self, runs: Sequence[QueuedRun]) -> None:
        """Announce ``runs`` (already stored) only after this workflow's next save commits."""
        ...

    def take_deferred(self) -> list[QueuedRun]:
        """Hand over the stored runs not announced yet (a new child's start run)."""
        ...


class WorkflowView(Protocol):
    """Who a workflow is and where it stands: what every view of one shares."""

    @property
    def id(self) -> str: ...

    @property
    def workflow_type(self) -> str: ...

    @property
    def status(self) -> WorkflowStatus: ...

    @property
    def record(self) -> WorkflowRecord:
        """The stored form; handlers keep their bookkeeping in ``record.runtime``."""
        ...

    @property
    def remote(self) -> RemoteWork | None:
        """The distributed part; None when steps run in this process (embedded)."""
        ...


class ChildWorkflow(WorkflowView, Protocol):
    """Another workflow, as the engine drives it from a parent (or a child's report)."""

    reports_to_parent: bool

    async def run(self, *, max_transitions: int = 100_000) -> WorkflowStatus: ...

    async def next_step(
        self, user_input: dict[str, Any] | None = None
    ) -> tuple[dict[str, Any], str | None]: ...


class ChildFactory(Protocol):
    """Creates and loads workflows on the providers of the one asking."""

    async def create_child(
        self,
        asking: StepRuntime,
        workflow_type: str,
        initial_data: dict[str, Any],
        *,
        parent_execution_id: str | None,
        owner_id: str | None,
        data_region: str | None,
        priority: int | None = None,
    ) -> ChildWorkflow:
        """Store a new workflow (not started: the caller runs or announces it); ``priority``
        None gives it its workflow file's."""
        ...

    async def load_related(self, asking: StepRuntime, workflow_id: str) -> ChildWorkflow:
        """Load a stored workflow (a child, or a parent to resume)."""
        ...


class StepRuntime(WorkflowView, Protocol):
    """What a step handler reads (the workflow as it stands) and may do (merge, audit, save)."""

    @property
    def state(self) -> Any:
        """The live state: an instance of the workflow's pydantic model, or a dict."""
        ...

    @property
    def definition(self) -> WorkflowDefinition: ...

    @property
    def persistence(self) -> PersistenceProvider: ...

    @property
    def execution(self) -> ExecutionProvider: ...

    @property
    def events(self) -> WorkflowEvents: ...

    @property
    def children(self) -> ChildFactory: ...

    @property
    def queue_limits(self) -> Mapping[str, QueueLimits]:
        """The registry's limits per queue name (``queues:``), over the steps on each."""
        ...

    def run_number(self, step_name: str) -> int:
        """How many times the step has been entered (stable across retries of one run)."""
        ...

    def state_dict(self) -> dict[str, Any]:
        """State as a JSON-ready dict."""
        ...

    def evaluate(self, expression: str, extra: dict[str, Any] | None = None) -> Any:
        """Evaluate a safe expression over the state."""
        ...

    def render(self, value: Any) -> Any:
        """Render Jinja templates inside ``value`` against this workflow (sandboxed)."""
        ...

    def make_context(self, step: StepDefinition, **extra: Any) -> StepContext:
        """The StepContext handed to a step function."""
        ...

    def apply_result(
        self, result: dict[str, Any], step: StepDefinition | None, *, soft: bool = False
    ) -> None:
        """Merge a step result into state with the step's strategy, and re-validate it."""
        ...

    def audit(self, event: str, step: str | None, details: dict[str, Any]) -> None:
        """Queue an audit row for the next save."""
        ...

    def record_compensation(self, entry: CompensationEntry) -> None:
        """Queue a compensation's outcome for the next save (written with it, fenced)."""
        ...

    async def checkpoint(self, event: str, step: StepDefinition, details: dict[str, Any]) -> None:
        """Save progress inside a long step (e.g. after each LOOP iteration), with an audit row."""
        ...

    def record_retry(
        self, step: StepDefinition, attempt: int, exc: BaseException, delay: float
    ) -> None:
        """Audit a failed attempt that will be retried in this process after ``delay`` s."""
        ...
