"""Which handler runs which step type: the one module that names every kind.

The engine is handed this mapping (:class:`~ruvon.workflow.Workflow` wires it in), and the
definition loader checks each step by its kind's rules from it.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from ruvon.engine.outcomes import StepHandler
from ruvon.models import StepType
from ruvon.steps.decision import DecisionStep
from ruvon.steps.events import WaitForEventStep
from ruvon.steps.http import HttpStep
from ruvon.steps.human import HumanApprovalStep, HumanInLoopStep
from ruvon.steps.loop import LoopStep
from ruvon.steps.parallel import ParallelStep
from ruvon.steps.schedule import CronScheduleStep
from ruvon.steps.standard import AsyncStep, StandardStep
from ruvon.steps.sub_workflow import FireAndForgetStep, SubWorkflowStep
from ruvon.steps.timers import WaitStep

__all__ = ["DEFAULT_HANDLERS"]

#: The handler of every step type Ruvon ships.
DEFAULT_HANDLERS: Mapping[StepType, StepHandler] = MappingProxyType(
    {
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
        StepType.WAIT_FOR_EVENT: WaitForEventStep(),
        StepType.SUB_WORKFLOW: SubWorkflowStep(),
        StepType.FIRE_AND_FORGET: FireAndForgetStep(),
        StepType.CRON_SCHEDULE: CronScheduleStep(),
    }
)
