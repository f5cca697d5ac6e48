"""Pages from the package's Jinja2 templates (autoescaped), with the session cookie kept fresh."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup
from starlette.requests import Request
from starlette.responses import HTMLResponse

from ruvon.server.ui.state import ui_state

UI_PREFIX = "/ui"


def _when(moment: datetime | None) -> str:
    """A time as people read it in a table: UTC, to the second."""
    if moment is None:
        return "—"
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def _when_ms(moment: datetime | None) -> str:
    """A time on the timeline: to the millisecond."""
    if moment is None:
        return "—"
    return moment.strftime("%H:%M:%S.") + f"{moment.microsecond // 1000:03d}"


def _pretty_json(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, default=str, ensure_ascii=False)


def _compact_json(value: Any) -> str:
    """JSON on one line, as text (autoescaping makes it safe; no ``\\u003c`` noise)."""
    return json.dumps(value, sort_keys=True, default=str, ensure_ascii=False)


def _seconds(value: float | None) -> str:
    if value is None:
        return "—"
    if value < 0.01:
        return f"{value * 1000:.1f} ms"
    if value < 1:
        return f"{value * 1000:.0f} ms"
    if value < 120:
        return f"{value:.2f} s"
    return f"{value / 60:.1f} min"


_SUFFIXES = {1: "st", 2: "nd", 3: "rd"}


def _ordinal(number: int) -> str:
    """1 -> 1st, 2 -> 2nd, 11 -> 11th, 23 -> 23rd: a place in a waiting line."""
    teen = 10 <= number % 100 <= 20
    return f"{number}{'th' if teen else _SUFFIXES.get(number % 10, 'th')}"


def _status_class(status: str | None) -> Markup:
    return Markup("status status-") + (status or "unknown").lower().replace("_", "-")


def build_environment() -> Environment:
    """The template environment: HTML autoescaped, so stored text can never become markup."""
    env = Environment(
        loader=PackageLoader("ruvon.server.ui", "templates"),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["when"] = _when
    env.filters["when_ms"] = _when_ms
    env.filters["pretty_json"] = _pretty_json
    env.filters["compact_json"] = _compact_json
    env.filters["seconds"] = _seconds
    env.filters["status_class"] = _status_class
    env.filters["ordinal"] = _ordinal
    env.globals["prefix"] = UI_PREFIX
    return env


def render(
    request: Request, template: str, context: dict[str, Any], status: int = 200
) -> HTMLResponse:
    """``template`` with ``context`` plus who is logged in and the CSRF token of the session."""
    state = ui_state(request)
    access = getattr(request.state, "ui_access", None)
    session = getattr(request.state, "ui_session", None)
    page = {
        "request": request,
        "access": access,
        "actor": access.actor if access is not None else None,
        "csrf": session.csrf if session is not None else "",
        "refresh_ms": state.refresh_ms,
        **context,
    }
    html = state.templates.get_template(template).render(page)
    response = HTMLResponse(html, status_code=status)
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Content-Security-Policy"] = (
        "default-src 'self'; style-src 'self' 'unsafe-inline'; script-src 'self'; "
        "img-src 'self' data:; frame-ancestors 'none'; form-action 'self'"
    )
    if session is not None and getattr(request.state, "ui_session_dirty", False):
        state.codec.write(response, session, request)
    return response
