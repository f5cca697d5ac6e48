"""Every error Ruvon raises on purpose derives from :class:`RuvonError`.

The tree (keep this outline in step with the classes below)::

    RuvonError
    ├── ConfigurationError          bad settings or environment (e.g. an unknown database URL)
    ├── DefinitionError             a workflow/registry file is invalid (file, step, field, line)
    │   └── FunctionImportError     a function path does not import or has the wrong signature
    ├── WorkflowNotFound            no workflow with that id
    ├── WorkflowTypeNotFound        no workflow type with that name in the registry
    │   └── WorkflowVersionNotFound the type has no version by that name (lists the known ones)
    ├── InvalidWorkflowOperation    the operation does not fit the workflow's status
    ├── WorkflowTimeoutError        a workflow ran past its workflow-level `timeout` (deadline)
    ├── ScheduleNotFound            no schedule by that name (with or without `registry:`)
    ├── AmbiguousScheduleName       a bare name is both `<name>` and `registry:<name>`
    ├── InputValidationError        user input or initial data fails its pydantic model
    ├── StateValidationError        state fails the workflow's state model after a merge
    ├── StateTooLargeError          serialized state exceeds the configured limit
    ├── StepFunctionError           a step function raised (original exception as __cause__)
    │   ├── InvalidStepResult       a step returned something other than a dict or None
    │   ├── StepTimeoutError        a step attempt exceeded its `timeout`
    │   ├── HttpStepError           an HTTP step got a transport error or an error status
    │   └── ChildWorkflowFailed     a sub-workflow ended in a failed or cancelled status
    ├── MergeConflictError          merge_conflict_behavior=raise_error found a conflicting key
    ├── ExpressionError             a route condition is malformed or failed to evaluate
    │   └── UnsafeExpressionError   a condition reaches for something the sandbox forbids
    ├── RoutingError                no route matched and there is no default
    ├── IterationLimitExceeded      a loop or routed cycle ran past its max_iterations
    ├── PersistenceError            the storage backend failed (never swallowed)
    │   ├── ConcurrencyConflict     another writer saved this workflow first (stale version)
    │   ├── DatabaseUnavailable     cannot connect: bad host, wrong password, missing database
    │   └── SchemaOutOfDate         the database schema is not at the code's migration head
    └── BridgeError                 the event-loop bridge cannot run the call
        ├── BridgeClosed            the bridge was closed
        └── BridgeForkError         the bridge was created in another process (fork)

Workflow control flow (jump, pause, start a sub-workflow) is *not* an error: the directives live
in :mod:`ruvon.models` and derive from ``BaseException`` so a step's ``except Exception`` cannot
swallow them.
"""

from __future__ import annotations

from pathlib import Path


class RuvonError(Exception):
    """Root of every error Ruvon raises deliberately.

    ``non_retryable`` tells the retry machinery not to try the step again.
    """

    non_retryable: bool = False


class ConfigurationError(RuvonError):
    """A setting or environment value is missing or malformed."""


class DefinitionError(RuvonError):
    """A registry or workflow file is invalid; the message names file, step, field and line.

    Loading a file checks all of it: the error raised is the first problem found, and
    ``problems`` holds every one (itself first), each a DefinitionError with its own file, line,
    step and field (``ruvon validate`` prints them all).
    """

    non_retryable = True
    problems: tuple[DefinitionError, ...]

    def __init__(
        self,
        message: str,
        *,
        file: str | Path | None = None,
        step: str | None = None,
        field: str | None = None,
        line: int | None = None,
    ) -> None:
        self.reason = message
        self.file = str(file) if file is not None else None
        self.step = step
        self.field = field
        self.line = line
        self.problems = (self,)
        super().__init__(self._render())

    def describe(self) -> str:
        """This problem alone, located (the message without the count of the others)."""
        return self._render()

    def _render(self) -> str:
        where: list[str] = []
        if self.file:
            where.append(f"{self.file}:{self.line}" if self.line else self.file)
        if self.step:
            where.append(f"step '{self.step}'")
        if self.field:
            where.append(f"field '{self.field}'")
        return f"{', '.join(where)}: {self.reason}" if where else self.reason


class FunctionImportError(DefinitionError):
    """A dotted function path does not import, is not callable, or has the wrong signature."""


class WorkflowNotFound(RuvonError, LookupError):
    """No workflow with the given id exists in the configured persistence."""

    def __init__(self, workflow_id: str) -> None:
        self.workflow_id = workflow_id
        super().__init__(f"workflow '{workflow_id}' not found (check the id and the database)")


class WorkflowTypeNotFound(RuvonError, LookupError):
    """The registry has no workflow type by that name."""


class WorkflowVersionNotFound(WorkflowTypeNotFound):
    """The workflow type is registered, but not in the version asked for."""

    def __init__(self, workflow_type: str, version: str, known: list[str | None]) -> None:
        self.workflow_type = workflow_type
        self.version = version
        self.known = tuple(known)
        listed = ", ".join(v or "(unversioned)" for v in known)
        super().__init__(
            f"workflow type '{workflow_type}' has no version '{version}' (known: {listed}); "
            "leave the version out to start the latest"
        )


class InvalidWorkflowOperation(RuvonError):
    """The operation is not allowed in the workflow's current status."""


class InputValidationError(RuvonError):
    """User input or initial data does not satisfy its pydantic model."""

    non_retryable = True


class StateValidationError(RuvonError):
    """Workflow state does not satisfy the state model (after a step's result was merged)."""

    non_retryable = True


class StateTooLargeError(RuvonError):
    """Serialized state exceeds the configured maximum size."""

    non_retryable = True

    def __init__(self, workflow_id: str, size: int, limit: int) -> None:
        self.workflow_id = workflow_id
        self.size = size
        self.limit = limit
        super().__init__(
            f"state of workflow '{workflow_id}' is {size} bytes, over the limit of {limit} bytes "
            "(raise RUVON_MAX_STATE_BYTES or keep large payloads out of workflow state)"
        )


class WorkflowTimeoutError(RuvonError):
    """A workflow was still not finished at its deadline (its start + its ``timeout``).

    It fails the workflow (compensating first under saga mode); never retried.
    """

    non_retryable = True

    def __init__(self, workflow_id: str, timeout: float, *, step: str | None = None) -> None:
        self.workflow_id = workflow_id
        self.timeout = timeout
        self.step = step
        at = f" (at step '{step}')" if step else ""
        super().__init__(
            f"workflow '{workflow_id}' exceeded its timeout of {timeout:g}s{at}: "
            "its deadline passed before it finished"
        )


class StepFunctionError(RuvonError):
    """A step function failed; the original exception is chained as ``__cause__``."""

    def __init__(self, message: str, *, step: str | None = None, non_retryable: bool = False):
        self.step = step
        self.non_retryable = non_retryable
        super().__init__(message)


class InvalidStepResult(StepFunctionError):
    """A step function returned something other than a dict or None."""


class StepTimeoutError(StepFunctionError):
    """A step attempt ran longer than its configured ``timeout``."""


class HttpStepError(StepFunctionError):
    """An HTTP step failed: transport error or an error status code."""


class ChildWorkflowFailed(StepFunctionError):
    """A sub-workflow ended FAILED*/CANCELLED; the parent goes to FAILED_CHILD_WORKFLOW."""


class MergeConflictError(RuvonError):
    """A merge with ``merge_conflict_behavior: raise_error`` met a key already set differently."""

    non_retryable = True


class ExpressionError(RuvonError):
    """A route condition could not be parsed or evaluated."""

    non_retryable = True


class UnsafeExpressionError(ExpressionError):
    """A route condition tried something the sandbox forbids (dunder access, calls, imports)."""


class RoutingError(RuvonError):
    """A DECISION step found no matching route and no default."""

    non_retryable = True


class IterationLimitExceeded(RuvonError):
    """A LOOP or a routed cycle exceeded its ``max_iterations`` safety limit."""

    non_retryable = True


class PersistenceError(RuvonError):
    """The persistence backend failed; the message names the backend, never a password."""


class ConcurrencyConflict(PersistenceError):
    """Another writer saved the workflow first; reload it and try again."""

    def __init__(self, workflow_id: str, expected_version: int) -> None:
        self.workflow_id = workflow_id
        self.expected_version = expected_version
        super().__init__(
            f"workflow '{workflow_id}' was modified concurrently: expected version "
            f"{expected_version} but another writer saved first; reload and retry"
        )


class ClaimLost(ConcurrencyConflict):
    """A worker's claim on a step run no longer holds (another attempt took it over, or the run
    was closed): its result is discarded, nothing is written."""

    def __init__(self, workflow_id: str, run_id: int, attempt: int) -> None:
        self.run_id = run_id
        self.attempt = attempt
        PersistenceError.__init__(
            self,
            f"step run {run_id} of workflow '{workflow_id}' is no longer held by attempt "
            f"{attempt} (its lease expired and another worker took it, or it was closed); "
            "this attempt's result is discarded",
        )
        self.workflow_id = workflow_id
        self.expected_version = -1


class DatabaseUnavailable(PersistenceError):
    """The database cannot be reached or refuses the connection; names host and database."""


class SchemaOutOfDate(PersistenceError):
    """The database schema is behind (or ahead of) the code: run ``ruvon db upgrade``."""


class ScheduleNotFound(RuvonError, LookupError):
    """No schedule with that name exists."""


class AmbiguousScheduleName(RuvonError, LookupError):
    """A bare name matches a schedule of that name and ``registry:<name>``; lists both."""


class WorkerCrashed(RuvonError):
    """Every worker that ran a step died or hung, as many times as the crash budget allows."""

    non_retryable = True


class BrokerUnavailable(RuvonError):
    """The message broker cannot be reached: nothing was started."""


class WaitTimeout(RuvonError):
    """A workflow did not reach a terminal status (or the awaited one) within the timeout."""


class BridgeError(RuvonError):
    """The event-loop bridge cannot run the call."""


class BridgeClosed(BridgeError):
    """The bridge was closed; create a new one (e.g. in the worker process)."""


class BridgeForkError(BridgeError):
    """A bridge (and its connection pool) cannot cross ``fork``: create one per process."""


def describe_error(exc: BaseException) -> str:
    """One line for an exception, used in logs and run records."""
    if isinstance(exc, RuvonError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"
