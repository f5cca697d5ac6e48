"""``Jinja2TemplateEngine``: the documented template engine, backed by :mod:`ruvon.templating`.

Code written from the Ruvon documentation imports it and hands it to ``WorkflowBuilder``; the
builder accepts it because it *is* how Ruvon renders templates: Jinja in an immutable sandbox
with ``StrictUndefined``, so a misspelt variable raises :class:`~ruvon.errors.ExpressionError`
instead of rendering as an empty string.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ruvon.templating import render_template

__all__ = ["Jinja2TemplateEngine"]


class Jinja2TemplateEngine:
    """Renders ``"Hello {{ state.user_name }}!"`` the way HTTP steps and parameters are."""

    def render(self, template: str, context: Mapping[str, Any] | None = None) -> str:
        """``template`` rendered with the names in ``context``."""
        return render_template(template, context or {})
