"""Schedules: list them (viewer); pause, resume and trigger one now (admin).

Pause and resume are ``ruvon schedules pause/resume`` (:func:`set_schedule_enabled`, the same
name lookup: a registry schedule answers to its type too; ``?exact=true`` takes the name as
written). An unknown name is a 404, a bare name that names two schedules a 409 naming both.
A trigger starts the schedule's workflow at once, through ``ruvon.Client.start`` like
``POST /workflows``, audited with the admin who asked; it does not move the schedule's ticks,
and works on a paused schedule too (an explicit request, not a tick).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from ruvon.clock import utc_now
from ruvon.cluster.schedules import find_schedule, set_schedule_enabled
from ruvon.server.auth import require
from ruvon.server.dependencies import server_runtime
from ruvon.server.models import ScheduleItem, ScheduleList, TriggerResult, WorkflowDetail
from ruvon.server.runtime import ServerRuntime
from ruvon.server.tokens import Actor, Role

router = APIRouter(tags=["schedules"])
Viewer = Annotated[Actor, Depends(require(Role.VIEWER))]
Admin = Annotated[Actor, Depends(require(Role.ADMIN))]
Runtime = Annotated[ServerRuntime, Depends(server_runtime)]
Exact = Annotated[
    bool, Query(description="The name is the full name as listed, never a registry type.")
]


@router.get("/schedules", response_model=ScheduleList, summary="Every schedule, by name")
async def list_schedules(_actor: Viewer, runtime: Runtime) -> ScheduleList:
    schedules = await runtime.persistence.list_schedules()
    return ScheduleList(schedules=[ScheduleItem.of(schedule) for schedule in schedules])


@router.post(
    "/schedules/{name:path}/pause",
    response_model=ScheduleItem,
    summary="Stop a schedule from starting workflows until it is resumed",
)
async def pause_schedule(
    name: str, _actor: Admin, runtime: Runtime, exact: Exact = False
) -> ScheduleItem:
    return ScheduleItem.of(
        await set_schedule_enabled(runtime.persistence, name, False, exact=exact)
    )


@router.post(
    "/schedules/{name:path}/resume",
    response_model=ScheduleItem,
    summary="Let a schedule start workflows again, from its next tick after now",
)
async def resume_schedule(
    name: str, _actor: Admin, runtime: Runtime, exact: Exact = False
) -> ScheduleItem:
    return ScheduleItem.of(await set_schedule_enabled(runtime.persistence, name, True, exact=exact))


@router.post(
    "/schedules/{name:path}/trigger",
    response_model=TriggerResult,
    status_code=201,
    summary="Start the schedule's workflow now",
)
async def trigger_schedule(
    name: str, actor: Admin, runtime: Runtime, exact: Exact = False
) -> TriggerResult:
    schedule = find_schedule(await runtime.persistence.list_schedules(), name, exact=exact)
    record = await runtime.client.start(
        schedule.workflow_type,
        dict(schedule.initial_data),
        metadata={
            "schedule": schedule.name,
            "triggered_by": actor.name,
            "triggered_at": utc_now().isoformat(),
        },
        actor=actor.name,
        check_broker=not runtime.embedded,
    )
    workflow = WorkflowDetail.of(await runtime.carry_on(record))
    return TriggerResult(schedule=ScheduleItem.of(schedule), workflow=workflow)
