"""Shared by the UI tests: the UI workflows' registry, logging in, reading a page's CSRF token
and its table rows."""

from __future__ import annotations

import html
import os
import re
from pathlib import Path

import httpx

from ruvon.testing.processes import REPO_ROOT

UI_REGISTRY = Path(__file__).parent / "ui_workflows" / "ui_registry.yaml"
#: The concurrency tests' registry: ``UiGate`` alone (one workflow per lane at a time).
GATE_REGISTRY = Path(__file__).parent / "ui_workflows" / "gate_registry.yaml"
ARTIFACTS_ENV = "RUVON_TEST_ARTIFACTS"
_CSRF = re.compile(r'name="csrf" value="([^"]+)"')
_CELL = re.compile(r"<td[^>]*>(.*?)</td>", re.DOTALL)
_TAG = re.compile(r"<[^>]+>")


def screenshot_dir() -> Path:
    """Where the browser tests write screenshots (``$RUVON_TEST_ARTIFACTS/screenshots``)."""
    root = Path(os.environ.get(ARTIFACTS_ENV) or REPO_ROOT / "test-artifacts")
    directory = root / "screenshots"
    directory.mkdir(parents=True, exist_ok=True)
    return directory


def csrf_of(html: str) -> str:
    """The CSRF token of the first form on a page."""
    match = _CSRF.search(html)
    assert match, "the page has no form with a CSRF token"
    return match.group(1)


async def log_in(client: httpx.AsyncClient, token: str) -> httpx.Response:
    """Log ``client`` in through the login form (it keeps the session cookie)."""
    page = await client.get("/ui/login")
    return await client.post(
        "/ui/login", data={"csrf": csrf_of(page.text), "token": token, "next": "/ui/workflows"}
    )


def row_cells(page: str, attribute: str, value: str) -> list[str]:
    """The text of each cell of the table row ``<tr attribute="value">`` (tags stripped)."""
    found = re.search(
        rf'<tr[^>]*\b{attribute}="{re.escape(html.escape(value))}"[^>]*>(.*?)</tr>', page, re.DOTALL
    )
    assert found, f"no row with {attribute}={value!r} on the page"
    return [" ".join(html.unescape(_TAG.sub("", cell)).split()) for cell in _CELL.findall(found[1])]
