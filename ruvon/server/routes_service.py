"""Service endpoints: liveness, readiness and the registered workflow definitions."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse

from ruvon.errors import RuvonError
from ruvon.implementations.observability.health import check_database
from ruvon.server.auth import require
from ruvon.server.dependencies import server_runtime
from ruvon.server.models import (
    Check,
    DefinitionInfo,
    DefinitionList,
    DefinitionProblem,
    Readiness,
)
from ruvon.server.runtime import ServerRuntime
from ruvon.server.tokens import Actor, Role

READY_TIMEOUT = 5.0

health_router = APIRouter(tags=["service"])
api_router = APIRouter(tags=["definitions"])
Runtime = Annotated[ServerRuntime, Depends(server_runtime)]


@health_router.get("/healthz", summary="The process is up")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@health_router.get("/readyz", response_model=Readiness, summary="Database reachable, schema ok")
async def readyz(runtime: Runtime) -> JSONResponse:
    database, migrations = await check_database(runtime.settings.database_url, READY_TIMEOUT)
    checks = {
        check.name: Check(ok=check.ok, summary=check.summary) for check in (database, migrations)
    }
    ready = database.ok is True and migrations.ok is not False
    body = Readiness(ready=ready, checks=checks)
    return JSONResponse(body.model_dump(mode="json"), status_code=200 if ready else 503)


@api_router.get("/definitions", response_model=DefinitionList, summary="Registered workflow types")
async def list_definitions(
    _actor: Annotated[Actor, Depends(require(Role.VIEWER))], runtime: Runtime
) -> DefinitionList:
    builder = runtime.builder
    found: list[DefinitionInfo] = []
    problems: list[DefinitionProblem] = []
    for workflow_type in builder.workflow_types:
        try:
            versions = builder.definitions_of(workflow_type)
        except RuvonError as exc:
            problems.append(DefinitionProblem(workflow_type=workflow_type, error=str(exc)))
            continue
        last = len(versions) - 1
        found += [DefinitionInfo.of(d, latest=i == last) for i, d in enumerate(versions)]
    return DefinitionList(definitions=found, problems=problems)
