"""The web UI: server-rendered pages over the same runtime as the API, at ``/ui``.

Pages are Jinja2 templates shipped in this package with one stylesheet and one small script
(no JavaScript build; it works offline). A browser logs in with an API token and gets a signed
session cookie (:mod:`ruvon.server.ui.session`); every form carries the session's CSRF token.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from fastapi import FastAPI
from starlette.staticfiles import StaticFiles

from ruvon.errors import ConfigurationError
from ruvon.server.ui import (
    routes_catalog,
    routes_cluster,
    routes_concurrency,
    routes_list,
    routes_login,
    routes_workflow,
)
from ruvon.server.ui.rendering import UI_PREFIX, build_environment
from ruvon.server.ui.session import SessionCodec, session_key
from ruvon.server.ui.state import UiState

__all__ = ["UI_PREFIX", "mount_ui"]

STATIC_DIR = Path(__file__).parent / "static"
REFRESH_ENV = "RUVON_SERVER_UI_REFRESH"
DEFAULT_REFRESH = 2.0


def mount_ui(app: FastAPI, env: Mapping[str, str] | None = None) -> None:
    """Add the UI's pages and static files to ``app`` (its tokens on ``app.state.tokens``).

    ``env`` (default: the process environment) may set ``RUVON_SERVER_SESSION_SECRET`` and
    ``RUVON_SERVER_UI_REFRESH`` (seconds between an open page's polls, default 2).
    """
    env = os.environ if env is None else env
    state = UiState(
        codec=SessionCodec(session_key(env)),
        templates=build_environment(),
        refresh_ms=int(_refresh_seconds(env) * 1000),
    )
    app.state.ui = state
    # Before the pages: routes match in order, and the catalog's last route takes any /ui path.
    app.mount(UI_PREFIX + "/static", StaticFiles(directory=STATIC_DIR), name="ui-static")
    pages = (routes_login, routes_list, routes_workflow, routes_cluster, routes_concurrency)
    for module in (*pages, routes_catalog):
        app.include_router(module.router)


def _refresh_seconds(env: Mapping[str, str]) -> float:
    text = env.get(REFRESH_ENV, "").strip()
    if not text:
        return DEFAULT_REFRESH
    try:
        seconds = float(text)
    except ValueError:
        seconds = -1.0
    if not 0.1 <= seconds <= 3600:
        raise ConfigurationError(
            f"{REFRESH_ENV}={text!r}: expected seconds between 0.1 and 3600 (default 2)"
        )
    return seconds
