"""Errors as JSON: ``{"error": code, "message": text, "details": [...]}``, never a traceback.

Typed Ruvon errors map to the status a client can act on; anything unexpected is a 500 whose
message says where to look (the server log), not what the code was doing.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from ruvon.errors import (
    AmbiguousScheduleName,
    BrokerUnavailable,
    ConcurrencyConflict,
    DatabaseUnavailable,
    DefinitionError,
    InputValidationError,
    InvalidWorkflowOperation,
    RuvonError,
    ScheduleNotFound,
    SchemaOutOfDate,
    StateTooLargeError,
    StateValidationError,
    WorkflowNotFound,
    WorkflowTypeNotFound,
    WorkflowVersionNotFound,
)

logger = logging.getLogger("ruvon.server")

# Checked in order: the first class an error is an instance of decides.
_STATUS_OF: tuple[tuple[type[RuvonError], int, str], ...] = (
    (WorkflowNotFound, 404, "workflow_not_found"),
    (ScheduleNotFound, 404, "schedule_not_found"),
    (AmbiguousScheduleName, 409, "ambiguous_schedule_name"),
    (WorkflowVersionNotFound, 422, "unknown_workflow_version"),
    (WorkflowTypeNotFound, 422, "unknown_workflow_type"),
    (InputValidationError, 422, "invalid_input"),
    (StateValidationError, 422, "invalid_state"),
    (DefinitionError, 422, "invalid_definition"),
    (StateTooLargeError, 413, "state_too_large"),
    (InvalidWorkflowOperation, 409, "invalid_operation"),
    (ConcurrencyConflict, 409, "concurrent_change"),
    (DatabaseUnavailable, 503, "database_unavailable"),
    (SchemaOutOfDate, 503, "schema_out_of_date"),
    (BrokerUnavailable, 503, "broker_unavailable"),
)


class ApiProblem(Exception):
    """An error response decided by the server itself (auth, limits, bad parameters)."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: list[dict[str, Any]] | None = None,
        *,
        bearer: bool = False,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details or []
        self.bearer = bearer


def problem_response(
    status: int, code: str, message: str, details: list[dict[str, Any]] | None = None
) -> JSONResponse:
    """The JSON body every error response has."""
    return JSONResponse(
        {"error": code, "message": message, "details": details or []}, status_code=status
    )


def _parameter_name(location: tuple[Any, ...] | list[Any]) -> str:
    """``("query", "limit")`` -> ``limit``; ``("body", "data", "x")`` -> ``data.x``."""
    parts = [str(part) for part in location]
    if parts and parts[0] in ("query", "path", "body", "header"):
        parts = parts[1:]
    return ".".join(parts) or "body"


async def _on_problem(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiProblem)
    response = problem_response(exc.status, exc.code, exc.message, exc.details)
    if exc.bearer:
        response.headers["WWW-Authenticate"] = "Bearer"
    return response


async def _on_validation(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    details = [
        {"parameter": _parameter_name(error.get("loc", ())), "message": error.get("msg", "")}
        for error in exc.errors()
    ]
    names = ", ".join(dict.fromkeys(detail["parameter"] for detail in details))
    first = details[0]["message"] if details else "invalid request"
    return problem_response(422, "invalid_parameter", f"invalid {names}: {first}", details)


async def _on_http(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    return problem_response(exc.status_code, code, str(exc.detail))


async def _on_ruvon_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RuvonError)
    for error_type, status, code in _STATUS_OF:
        if isinstance(exc, error_type):
            return problem_response(status, code, str(exc))
    logger.warning("%s %s failed: %s", request.method, request.url.path, exc)
    return problem_response(500, type(exc).__name__, str(exc))


async def _on_unexpected(request: Request, exc: Exception) -> JSONResponse:
    logger.exception("%s %s failed unexpectedly", request.method, request.url.path)
    return problem_response(
        500, "internal_error", "the server failed unexpectedly; its log has the details"
    )


def install_problem_handlers(app: FastAPI) -> None:
    """Route every error a request can raise to its JSON response."""
    app.add_exception_handler(ApiProblem, _on_problem)
    app.add_exception_handler(RequestValidationError, _on_validation)
    app.add_exception_handler(StarletteHTTPException, _on_http)
    app.add_exception_handler(RuvonError, _on_ruvon_error)
    app.add_exception_handler(Exception, _on_unexpected)


def ruvon_error_status(exc: RuvonError) -> tuple[int, str]:
    """The HTTP status and code a typed Ruvon error maps to (500 for the unmapped)."""
    for error_type, status, code in _STATUS_OF:
        if isinstance(exc, error_type):
            return status, code
    return 500, type(exc).__name__
