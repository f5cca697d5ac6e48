"""Which step a log record was emitted in: a context variable set around every step attempt.

:func:`ruvon.engine.invoke.call_step_function` enters the attempt's
:class:`~ruvon.models.StepContext` for the duration of the call, so a record logged by the step
function, or by Ruvon while it runs the step, can carry the workflow id, type, step, attempt and
branch (:class:`ruvon.implementations.observability.json_logs.StepContextFilter` adds them to
records; :func:`current_step_log_context` is what it reads).

A context variable follows the coroutine and anything it awaits, but not a sync function that
an executor hands to another thread (a thread pool, a Celery task thread):
:func:`bind_step_log_context` wraps such a function so it enters the context again, from the
``StepContext`` it is called with, in whatever thread runs it.

This runs on every step, so it stays cheap: the variable holds the ``StepContext`` itself and the
:class:`StepLogContext` view is only built when a record asks for it.
"""

from __future__ import annotations

import contextvars
import functools
import threading
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from ruvon.models import StepContext

__all__ = [
    "StepLogContext",
    "bind_step_log_context",
    "current_step_log_context",
    "step_log_context",
]


@dataclass(frozen=True, slots=True)
class StepLogContext:
    """The step attempt a record belongs to."""

    workflow_id: str
    workflow_type: str | None
    step: str
    attempt: int
    branch: str | None = None

    @classmethod
    def of(cls, context: StepContext) -> StepLogContext:
        """The log context of the attempt a step function was called for."""
        return cls(
            context.workflow_id,
            context.workflow_type,
            context.step_name,
            context.attempt,
            context.branch_name,
        )

    def fields(self) -> dict[str, Any]:
        """The record attributes it adds (``branch`` only inside a PARALLEL branch)."""
        fields: dict[str, Any] = {
            "workflow_id": self.workflow_id,
            "workflow_type": self.workflow_type,
            "step": self.step,
            "attempt": self.attempt,
        }
        if self.branch is not None:
            fields["branch"] = self.branch
        return fields


_current: contextvars.ContextVar[StepContext | None] = contextvars.ContextVar(
    "ruvon_step_log_context", default=None
)


def current_step_log_context() -> StepLogContext | None:
    """The step attempt running in this context (None outside a step)."""
    context = _current.get()
    return None if context is None else StepLogContext.of(context)


class step_log_context:  # lower case: used like a function, `with step_log_context(ctx):`
    """Mark everything logged in the ``with`` block as belonging to the attempt ``context``."""

    __slots__ = ("_context", "_token")

    def __init__(self, context: StepContext) -> None:
        self._context = context
        self._token: contextvars.Token[StepContext | None] | None = None

    def __enter__(self) -> StepContext:
        self._token = _current.set(self._context)
        return self._context

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._token is not None:
            _current.reset(self._token)
            self._token = None


_bound: dict[Callable[..., Any], Callable[..., Any]] = {}
_bound_lock = threading.Lock()


def bind_step_log_context(function: Callable[..., Any]) -> Callable[..., Any]:
    """``function`` (a sync step function) entering its attempt's log context when called.

    The wrapper keeps the signature (``functools.wraps``), so keyword selection by signature
    sees the original; one wrapper per function, like the definitions that name them.
    """
    known = _bound.get(function)
    if known is not None:
        return known

    @functools.wraps(function)
    def in_step_context(*args: Any, **kwargs: Any) -> Any:
        context = args[1] if len(args) > 1 else None
        if _current.get() is context or not isinstance(context, StepContext):
            return function(*args, **kwargs)  # entered already (run inline), or not a step call
        token = _current.set(context)
        try:
            return function(*args, **kwargs)
        finally:
            _current.reset(token)

    with _bound_lock:
        return _bound.setdefault(function, in_step_context)
