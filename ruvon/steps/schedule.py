"""CRON_SCHEDULE: register (or replace) a cron schedule row that starts a workflow."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from croniter import croniter

from ruvon.clock import utc_now
from ruvon.errors import StepFunctionError
from ruvon.records import ScheduleRecord
from ruvon.steps.base import Advance, NotResumable, StepOutcome

if TYPE_CHECKING:
    from ruvon.definitions.schema import StepDefinition
    from ruvon.workflow import Workflow


class CronScheduleStep(NotResumable):
    """The schedule fires later (beat); this step only records it."""

    async def execute(
        self, wf: Workflow, step: StepDefinition, user_input: dict[str, Any] | None
    ) -> StepOutcome:
        name = str(wf.render(step.schedule_name or f"{wf.workflow_type}.{step.name}"))
        cron = str(wf.render(step.cron_expression))
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
            initial_data=wf.render(step.initial_data_template),
            source_workflow_id=wf.id,
            next_run_at=croniter(cron, now).get_next(type(now)),
        )
        await wf.persistence.save_schedule(schedule)
        wf.checkpoint_audit("SCHEDULE_REGISTERED", step.name, {"schedule": name, "cron": cron})
        return Advance({step.output_key: name} if step.output_key else {})
