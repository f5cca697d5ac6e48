"""Which handler runs which step type."""

from __future__ import annotations

from ruvon.models import StepType
from ruvon.steps.base import StepHandler
from ruvon.steps.decision import DecisionStep
from ruvon.steps.http import HttpStep
from ruvon.steps.human import HumanApprovalStep, HumanInLoopStep
from ruvon.steps.loop import LoopStep
from ruvon.steps.parallel import ParallelStep
from ruvon.steps.schedule import CronScheduleStep
from ruvon.steps.standard import AsyncStep, StandardStep
from ruvon.steps.sub_workflow import FireAndForgetStep, SubWorkflowStep
from ruvon.steps.timers import WaitStep

_HANDLERS: dict[StepType, StepHandler] = {
    StepType.STANDARD: StandardStep(),
    StepType.COMPENSATABLE: StandardStep(),
    StepType.ASYNC: AsyncStep(),
    StepType.DECISION: DecisionStep(),
    StepType.PARALLEL: ParallelStep(),
    StepType.LOOP: LoopStep(),
    StepType.HTTP: HttpStep(),
    StepType.HUMAN_IN_LOOP: HumanInLoopStep(),
    StepType.HUMAN_APPROVAL: HumanApprovalStep(),
    StepType.WAIT: WaitStep(),
    StepType.SUB_WORKFLOW: SubWorkflowStep(),
    StepType.FIRE_AND_FORGET: FireAndForgetStep(),
    StepType.CRON_SCHEDULE: CronScheduleStep(),
}


def handler_for(step_type: StepType) -> StepHandler:
    """The handler of a step type (every StepType has one)."""
    return _HANDLERS[step_type]
