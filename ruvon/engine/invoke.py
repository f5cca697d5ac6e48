"""Calling a user function for a step: executor, timeout, retries with backoff, result check."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from ruvon.definitions.imports import function_shape
from ruvon.definitions.schema import RetryPolicy
from ruvon.engine.admission import gated_call, is_gated, rate_turn
from ruvon.engine.deadline import step_timeout_within
from ruvon.engine.deadline import timeout_error as workflow_timeout_error
from ruvon.errors import InvalidStepResult, RuvonError, StepTimeoutError
from ruvon.log_context import bind_step_log_context, step_log_context
from ruvon.models import StepContext
from ruvon.providers.execution import StepCall
from ruvon.providers.runs import RetryLater, RunKind

if TYPE_CHECKING:
    from ruvon.definitions.schema import StepDefinition
    from ruvon.engine.runtime import StepRuntime

NO_RETRY = RetryPolicy()


def is_retryable(exc: BaseException, policy: RetryPolicy) -> bool:
    """False for errors marked non-retryable by Ruvon or named in the step's policy."""
    if getattr(exc, "non_retryable", False):
        return False
    if isinstance(exc, RuvonError) and exc.non_retryable:
        return False
    names = {cls.__name__ for cls in type(exc).__mro__}
    names |= {f"{cls.__module__}.{cls.__qualname__}" for cls in type(exc).__mro__}
    return not names.intersection(policy.non_retryable)


def check_result(value: Any, *, step: str, function: Callable[..., Any]) -> dict[str, Any]:
    """A step must return a dict (merged into state) or None."""
    if value is None:
        return {}
    if isinstance(value, dict):
        return value
    name = getattr(function, "__qualname__", repr(function))
    raise InvalidStepResult(
        f"step '{step}': function '{name}' returned {type(value).__name__} ({value!r:.80}); "
        "a step function must return a dict (merged into state) or None",
        step=step,
        non_retryable=True,
    )


async def call_step_function(
    rt: StepRuntime,
    step: StepDefinition,
    function: Callable[..., Any],
    *,
    context: StepContext,
    state: Any = None,
    kwargs: Mapping[str, Any] | None = None,
    timeout: float | None = None,
    retry: RetryPolicy | None = None,
) -> dict[str, Any]:
    """Run ``function(state, context, **kwargs)`` with the step's timeout and retry policy.

    Directives (BaseException) pass straight through; the last failure is re-raised unchanged.
    On a worker that claimed this step (or branch), one call is one attempt: the claim says which,
    and a retryable failure raises :class:`~ruvon.providers.runs.RetryLater` so the backoff
    waits in the database, not in this process.
    """
    policy = retry or step.retry or NO_RETRY
    remote = rt.remote
    claimed_attempt = (
        remote.claimed_attempt(step.name, RunKind.STEP, RunKind.BRANCH) if remote else None
    )
    attempt = claimed_attempt or 1
    claim = remote.claim if remote is not None and claimed_attempt is not None else None
    queue, worker = (claim.queue, claim.owner) if claim is not None else (None, None)
    call_state = rt.state if state is None else state
    # Sync functions may run in another thread (a pool, the Celery task thread), which the
    # context variable does not follow: the wrapper enters the log context there.
    called = function if function_shape(function).is_async else bind_step_log_context(function)
    step_timeout = timeout if timeout is not None else step.timeout
    attempts = _attempts(
        rt, step, function, called, context, call_state, kwargs, step_timeout, policy,
        attempt, claimed_attempt, queue, worker,
    )  # fmt: skip
    if not is_gated(rt, step):
        return await attempts  # (most steps: no admission to pass)
    try:
        # Its rate-limit turn first (a deferral then holds no slot), then a slot of its key.
        await rate_turn(rt, step, first=True)
        async with gated_call(rt, step, context.branch_name):
            return await attempts
    finally:
        attempts.close()  # never awaited when admission raised: not a leaked coroutine


async def _attempts(
    rt: StepRuntime,
    step: StepDefinition,
    function: Callable[..., Any],
    called: Callable[..., Any],
    context: StepContext,
    call_state: Any,
    kwargs: Mapping[str, Any] | None,
    step_timeout: float | None,
    policy: RetryPolicy,
    attempt: int,
    claimed_attempt: int | None,
    queue: str | None,
    worker: str | None,
) -> dict[str, Any]:
    """The attempts of one call: in this process until the policy gives up (embedded), or the
    one attempt a worker's claim stands for."""
    while True:
        attempt_context = (
            context if attempt == 1 else context.model_copy(update={"attempt": attempt})
        )
        # An attempt never runs past the workflow's deadline: it is stopped there as at its own
        # timeout, and the workflow fails (no retry can help it).
        limit, by_deadline = step_timeout_within(rt.record, step_timeout)
        if by_deadline and limit is not None and limit <= 0:
            raise workflow_timeout_error(rt.record, step.name)
        call = StepCall(
            step_name=step.name,
            function=called,
            state=call_state,
            context=attempt_context,
            kwargs=kwargs or {},
            timeout=limit,
        )
        branch = context.branch_name
        rt.events.step_started(step, attempt, branch, queue=queue, worker=worker)
        started = time.perf_counter()
        try:
            with step_log_context(attempt_context):
                value = await rt.execution.execute(call)
            result = check_result(value, step=step.name, function=function)
        except Exception as caught:
            exc: Exception = caught
            if by_deadline and isinstance(caught, StepTimeoutError):
                exc = workflow_timeout_error(rt.record, step.name)
                exc.__cause__ = caught
            will_retry = attempt < policy.max_attempts and is_retryable(exc, policy)
            rt.events.step_failed(step, exc, attempt, will_retry)
            rt.events.attempt_ended(step, attempt, branch, time.perf_counter() - started, exc)
            if not will_retry:
                if exc is caught:
                    raise
                raise exc from caught
            delay = policy.delay_before(attempt + 1)
            if policy.jitter:
                delay *= random.uniform(0.5, 1.0)
            if claimed_attempt is not None:
                raise RetryLater(delay, exc, attempt) from exc
            rt.record_retry(step, attempt, exc, delay)
            await asyncio.sleep(delay)
            await rate_turn(rt, step, first=False)
            attempt += 1
            continue
        except BaseException:
            # A directive (jump, pause, child workflow) or a cancellation ends the attempt too.
            rt.events.attempt_ended(step, attempt, branch, time.perf_counter() - started, None)
            raise
        rt.events.attempt_ended(step, attempt, branch, time.perf_counter() - started, None)
        return result
