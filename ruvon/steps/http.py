"""HTTP steps: a templated request through httpx, its response stored at ``output_key``.

Error statuses raise ``HttpStepError``: 5xx and 429 are retried per the step's retry policy,
other 4xx are not (repeating a bad request does not fix it).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import httpx

from ruvon.definitions.rules import StepProblem, unless
from ruvon.engine.invoke import call_step_function
from ruvon.engine.outcomes import Advance, StepKind, StepOutcome
from ruvon.errors import HttpStepError, StepTimeoutError

if TYPE_CHECKING:
    from ruvon.definitions.schema import StepDefinition
    from ruvon.engine.runtime import StepRuntime

_BODY_PREVIEW = 200


async def send_request(state: Any, context: Any, *, spec: dict[str, Any]) -> dict[str, Any]:
    """Perform one request described by ``spec``; the engine treats it like a step function."""
    method, url = spec["method"], spec["url"]
    body = spec["body"]
    content = body if isinstance(body, str | bytes) else None
    json_body = None if content is not None or body is None else body
    try:
        async with httpx.AsyncClient(timeout=spec["timeout"]) as client:
            response = await client.request(
                method,
                url,
                headers=spec["headers"],
                params=spec["params"] or None,
                content=content,
                json=json_body,
            )
    except httpx.TimeoutException as exc:
        raise StepTimeoutError(
            f"HTTP step '{context.step_name}': {method} {url} timed out after {spec['timeout']:g}s",
            step=context.step_name,
        ) from exc
    except httpx.HTTPError as exc:
        raise HttpStepError(
            f"HTTP step '{context.step_name}': {method} {url} failed: {exc}", step=context.step_name
        ) from exc
    if response.status_code >= 400:
        retryable = response.status_code >= 500 or response.status_code == 429
        raise HttpStepError(
            f"HTTP step '{context.step_name}': {method} {url} returned {response.status_code}: "
            f"{response.text[:_BODY_PREVIEW]}",
            step=context.step_name,
            non_retryable=not retryable,
        )
    try:
        parsed: Any = response.json()
    except ValueError:
        parsed = response.text
    parts = {"status_code": response.status_code, "headers": dict(response.headers), "body": parsed}
    return {part: parts[part] for part in spec["includes"]}


class HttpStep(StepKind):
    """Templates see ``state``, ``parameters``, ``workflow_id`` and ``workflow_type``."""

    async def execute(
        self, rt: StepRuntime, step: StepDefinition, user_input: dict[str, Any] | None
    ) -> StepOutcome:
        config = step.http_config
        assert config is not None  # validated at load time
        rendered = rt.render(
            {
                "url": config.url,
                "headers": config.headers,
                "params": config.query_params,
                "body": config.body,
            }
        )
        spec = {
            **rendered,
            "method": config.method,
            "timeout": config.timeout,
            "includes": step.includes,
        }
        response = await call_step_function(
            rt,
            step,
            send_request,
            context=rt.make_context(step),
            kwargs={"spec": spec},
            retry=config.retry_policy or step.retry,
        )
        return Advance({str(step.output_key): response})

    def validate(self, step: StepDefinition) -> Iterator[StepProblem]:
        yield from unless(
            step.http_config is not None,
            "http_config",
            "an HTTP step needs 'http_config' with at least 'url'",
        )
        yield from unless(
            step.output_key is not None,
            "output_key",
            "an HTTP step needs 'output_key' (the state key that receives the response)",
        )
