"""CRON_SCHEDULE: register (or replace) a cron schedule row that starts a workflow."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from croniter import croniter

from ruvon.clock import utc_now
from ruvon.definitions.rules import StepProblem, unless
from ruvon.engine.outcomes import Advance, StepKind, StepOutcome
from ruvon.errors import StepFunctionError
from ruvon.records import ScheduleRecord
from ruvon.steps.sub_workflow import needs_target

if TYPE_CHECKING:
    from ruvon.definitions.schema import StepDefinition
    from ruvon.engine.runtime import StepRuntime


class CronScheduleStep(StepKind):
    """The schedule fires later (beat); this step only records it."""

    async def execute(
        self, rt: StepRuntime, step: StepDefinition, user_input: dict[str, Any] | None
    ) -> StepOutcome:
        name = str(rt.render(step.schedule_name or f"{rt.workflow_type}.{step.name}"))
        cron = str(rt.render(step.cron_expression))
        if not croniter.is_valid(cron):
            raise StepFunctionError(
                f"CRON_SCHEDULE step '{step.name}': '{cron}' is not a valid cron expression",
                step=step.name,
                non_retryable=True,
            )
        now = utc_now()
        schedule = ScheduleRecord(
            name=name,
            workflow_type=str(step.target_workflow_type),
            cron=cron,
            initial_data=rt.render(step.initial_data_template),
            source_workflow_id=rt.id,
            next_run_at=croniter(cron, now).get_next(type(now)),
        )
        await rt.persistence.save_schedule(schedule)
        rt.audit("SCHEDULE_REGISTERED", step.name, {"schedule": name, "cron": cron})
        return Advance({step.output_key: name} if step.output_key else {})

    def validate(self, step: StepDefinition) -> Iterator[StepProblem]:
        yield from needs_target(step)
        yield from unless(
            step.cron_expression is not None,
            "cron_expression",
            "a CRON_SCHEDULE step needs 'cron_expression'",
        )
        expr = step.cron_expression or ""
        yield from unless(
            "{{" in expr or croniter.is_valid(expr),
            "cron_expression",
            f"'{expr}' is not a valid cron expression (e.g. '*/5 * * * *')",
        )
