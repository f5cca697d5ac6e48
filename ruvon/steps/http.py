"""HTTP steps: a templated request through httpx, its response stored at ``output_key``.

Error statuses raise ``HttpStepError``: 5xx and 429 are retried per the step's retry policy,
other 4xx are not (repeating a bad request does not fix it).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import httpx

from ruvon.errors import HttpStepError, StepTimeoutError
from ruvon.steps.base import Advance, NotResumable, StepOutcome
from ruvon.steps.invoke import call_step_function

if TYPE_CHECKING:
    from ruvon.definitions.schema import StepDefinition
    from ruvon.workflow import Workflow

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


class HttpStep(NotResumable):
    """Templates see ``state``, ``parameters``, ``workflow_id`` and ``workflow_type``."""

    async def execute(
        self, wf: Workflow, step: StepDefinition, user_input: dict[str, Any] | None
    ) -> StepOutcome:
        config = step.http_config
        assert config is not None  # validated at load time
        rendered = wf.render(
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
            wf,
            step,
            send_request,
            context=wf.make_context(step),
            kwargs={"spec": spec},
            retry=config.retry_policy or step.retry,
        )
        return Advance({str(step.output_key): response})
