"""What the UI keeps on ``app.state``: the session signer and the templates."""

from __future__ import annotations

from dataclasses import dataclass

from jinja2 import Environment
from starlette.requests import Request

from ruvon.server.ui.session import SessionCodec


@dataclass(frozen=True)
class UiState:
    """The UI's per-app objects, built once by :func:`ruvon.server.ui.mount_ui`."""

    codec: SessionCodec
    templates: Environment
    refresh_ms: int = 2000  # how often open pages poll for changes


def ui_state(request: Request) -> UiState:
    """The UI state of the app serving ``request``."""
    state: UiState = request.app.state.ui
    return state
