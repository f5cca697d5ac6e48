"""The execution seam: how a step function is actually run."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable


@dataclass(slots=True)
class StepCall:
    """Everything needed to run one step function once.

    ``function`` is called as ``function(state, context, **kwargs)``; it may be sync or async.
    ``timeout`` (seconds) bounds this one attempt.
    """

    step_name: str
    function: Callable[..., Any]
    state: Any
    context: Any
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    timeout: float | None = None


@runtime_checkable
class ExecutionProvider(Protocol):
    """Runs step functions: inline, on a thread pool, or (later) on remote workers.

    ``execute`` raises what the function raised (``StepTimeoutError`` on timeout), so directives
    and errors reach the engine unchanged. The engine runs PARALLEL branches by awaiting several
    ``execute`` calls at once: a provider that runs calls inline serializes them, a pooled one
    overlaps them.
    """

    name: str

    async def execute(self, call: StepCall) -> Any:
        """Run one call and return its value."""
        ...

    def close(self) -> None:
        """Release threads or connections. Safe to call twice."""
        ...
