"""Who is looking at a page, what they may do, and errors as readable pages.

Pages take a :class:`PageAccess` (the actor and its session) from :func:`page_access`; forms
take a :class:`FormAccess` from :func:`form_access`, which also checks the form's CSRF token.
Every UI route uses :class:`PageRoute`, which turns the errors a page can raise into an HTML
page with the right status (a login redirect, 403, 404, 409, 422, 500), never a traceback.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, quote

from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from ruvon.errors import RuvonError
from ruvon.server.problems import ApiProblem, ruvon_error_status
from ruvon.server.tokens import Actor, Role, TokenSet
from ruvon.server.ui.rendering import UI_PREFIX, render
from ruvon.server.ui.session import Session, new_session
from ruvon.server.ui.state import ui_state

logger = logging.getLogger("ruvon.server.ui")

FORM_TYPE = "application/x-www-form-urlencoded"
MAX_FORM_FIELDS = 200


class PageError(Exception):
    """An error shown as a page: ``status``, a short ``title`` and a ``message``."""

    def __init__(self, status: int, title: str, message: str) -> None:
        super().__init__(message)
        self.status, self.title, self.message = status, title, message


class LoginRequired(Exception):
    """No session (and no anonymous access): the browser goes to the login page."""


@dataclass(frozen=True)
class PageAccess:
    """The actor a page is shown to and the session it came with."""

    actor: Actor
    session: Session

    @property
    def may_operate(self) -> bool:
        """True when the actor may resume, approve, cancel and retry."""
        return self.actor.role >= Role.OPERATOR


@dataclass(frozen=True)
class FormAccess(PageAccess):
    """A page access whose form passed the CSRF check, with the form's fields."""

    form: dict[str, str]


def current_session(request: Request) -> Session:
    """The request's session, or a new one (set on the response when a page is rendered)."""
    session = getattr(request.state, "ui_session", None)
    if isinstance(session, Session):
        return session
    found = ui_state(request).codec.read(request)
    if found is None:
        found = new_session()
        request.state.ui_session_dirty = True
    request.state.ui_session = found
    return found


def replace_session(request: Request, session: Session) -> None:
    """Make ``session`` the one written on this request's response."""
    request.state.ui_session = session
    request.state.ui_session_dirty = True


def _actor(request: Request, session: Session) -> Actor | None:
    if session.actor is not None:
        return session.actor
    tokens: TokenSet = request.app.state.tokens
    return tokens.identify(None)  # the anonymous actor, when the server allows one


def page_access(role: Role) -> Callable[[Request], Awaitable[PageAccess]]:
    """A dependency: the page's viewer with at least ``role`` (login redirect / 403 else)."""

    async def dependency(request: Request) -> PageAccess:
        session = current_session(request)
        actor = _actor(request, session)
        if actor is None:
            raise LoginRequired
        access = PageAccess(actor, session)
        request.state.ui_access = access
        _check_role(actor, role)
        return access

    return dependency


def form_access(role: Role) -> Callable[[Request], Awaitable[FormAccess]]:
    """A dependency for a POST form: logged in, CSRF token right, at least ``role``."""

    async def dependency(request: Request) -> FormAccess:
        session = current_session(request)
        actor = _actor(request, session)
        if actor is None:
            raise LoginRequired
        request.state.ui_access = PageAccess(actor, session)
        form = await read_form(request)
        if not session.csrf_matches(form.get("csrf")):
            raise PageError(
                403,
                "Form expired",
                "This form's security token does not match your session (it may have expired "
                "or come from another page). Reload the page and try again.",
            )
        _check_role(actor, role)
        return FormAccess(actor, session, form)

    return dependency


def _check_role(actor: Actor, role: Role) -> None:
    if actor.role < role:
        raise PageError(
            403,
            "Not allowed",
            f"'{actor.name}' has the role {actor.role.label}; this needs {role.label} or above. "
            "Log in with another token to do this.",
        )


async def read_form(request: Request) -> dict[str, str]:
    """A URL-encoded form's fields (the last value of a repeated one)."""
    raw = await request.body()
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if not raw:
        return {}  # an empty form: its missing CSRF token is the error to show
    if content_type != FORM_TYPE:
        raise PageError(415, "Not a form", f"this page accepts forms sent as {FORM_TYPE}")
    body = raw.decode("utf-8", errors="replace")
    fields = parse_qs(body, keep_blank_values=True, max_num_fields=MAX_FORM_FIELDS)
    return {name: values[-1] for name, values in fields.items()}


def login_redirect(request: Request) -> RedirectResponse:
    """To the login page, coming back to this page (a GET) or the list (a form) after it."""
    back = request.url.path
    if request.url.query:
        back += "?" + request.url.query
    if request.method != "GET":
        back = f"{UI_PREFIX}/workflows"
    return RedirectResponse(f"{UI_PREFIX}/login?next={quote(back, safe='')}", status_code=303)


def error_page(request: Request, status: int, title: str, message: str) -> Response:
    """A readable error page (the session's actor, if any, stays in the header)."""
    return render(request, "error.html", {"title": title, "message": message}, status=status)


def _page_for(request: Request, exc: Exception) -> Response:
    if isinstance(exc, LoginRequired):
        return login_redirect(request)
    if isinstance(exc, PageError):
        return error_page(request, exc.status, exc.title, exc.message)
    if isinstance(exc, ApiProblem):
        return error_page(request, exc.status, _TITLES.get(exc.status, "Error"), exc.message)
    if isinstance(exc, RequestValidationError):
        problems = "; ".join(
            f"{'.'.join(str(p) for p in error.get('loc', ())[1:]) or 'request'}: "
            f"{error.get('msg', '')}"
            for error in exc.errors()
        )
        return error_page(request, 422, "Invalid request", problems or "invalid request")
    if isinstance(exc, RuvonError):
        status, _code = ruvon_error_status(exc)
        if status == 500:
            logger.warning("%s %s failed: %s", request.method, request.url.path, exc)
        return error_page(request, status, _TITLES.get(status, "Error"), str(exc))
    logger.exception("%s %s failed unexpectedly", request.method, request.url.path)
    return error_page(
        request, 500, "Server error", "The server failed unexpectedly; its log has the details."
    )


_TITLES = {
    403: "Not allowed",
    404: "Not found",
    409: "Not possible now",
    413: "Too large",
    422: "Invalid input",
    501: "Not supported",
    503: "Unavailable",
}


class PageRoute(APIRoute):
    """A route whose errors become HTML pages (the API's routes keep their JSON problems)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def page_handler(request: Request) -> Response:
            try:
                return await handler(request)
            except Exception as exc:
                return _page_for(request, exc)

        return page_handler
