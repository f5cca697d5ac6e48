"""Logging in with an API token (the session keeps its name and role, never the token) and out."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import RedirectResponse, Response

from ruvon.server.tokens import TokenSet
from ruvon.server.ui.access import PageError, PageRoute, current_session, read_form, replace_session
from ruvon.server.ui.rendering import UI_PREFIX, render
from ruvon.server.ui.session import COOKIE_NAME

router = APIRouter(route_class=PageRoute)


def _safe_next(target: str | None) -> str:
    """Only a page of this UI (no other host, no scheme-relative ``//``)."""
    plain = target is not None and not any(char in target for char in "\\\r\n")
    if plain and target and target.startswith(UI_PREFIX + "/"):
        return target
    return f"{UI_PREFIX}/workflows"


def _login_page(request: Request, next_url: str, error: str | None, status: int) -> Response:
    tokens: TokenSet = request.app.state.tokens
    session = current_session(request)
    context = {
        "next": _safe_next(next_url),
        "error": error,
        "anonymous": tokens.anonymous.label if tokens.anonymous is not None else None,
        "logged_in": session.actor,
        "csrf": session.csrf,
    }
    return render(request, "login.html", context, status=status)


@router.get(UI_PREFIX + "/login", include_in_schema=False)
async def login_form(request: Request) -> Response:
    return _login_page(request, request.query_params.get("next", ""), None, 200)


@router.post(UI_PREFIX + "/login", include_in_schema=False)
async def login(request: Request) -> Response:
    had_cookie = ui_cookie_present(request)
    session = current_session(request)
    form = await read_form(request)
    next_url = form.get("next", "")
    if not had_cookie:
        return _login_page(
            request,
            next_url,
            "Your browser sent no session cookie: allow cookies for this site, then log in.",
            400,
        )
    if not session.csrf_matches(form.get("csrf")):
        raise PageError(403, "Form expired", "The login form expired. Reload it and try again.")
    tokens: TokenSet = request.app.state.tokens
    token = form.get("token", "").strip()
    actor = tokens.identify(token) if token else None
    if actor is None:
        message = "This token is not accepted." if token else "Enter a token."
        return _login_page(request, next_url, message, 401)
    replace_session(request, session.with_actor(actor))
    response = RedirectResponse(_safe_next(next_url), status_code=303)
    request.app.state.ui.codec.write(response, request.state.ui_session, request)
    return response


@router.post(UI_PREFIX + "/logout", include_in_schema=False)
async def logout(request: Request) -> Response:
    session = current_session(request)
    form = await read_form(request)
    if not session.csrf_matches(form.get("csrf")):
        raise PageError(403, "Form expired", "The form expired. Reload the page and try again.")
    response = RedirectResponse(f"{UI_PREFIX}/login", status_code=303)
    request.app.state.ui.codec.write(response, session.with_actor(None), request)
    return response


def ui_cookie_present(request: Request) -> bool:
    """True when the browser sent a session cookie (a login needs cookies)."""
    return COOKIE_NAME in request.cookies
