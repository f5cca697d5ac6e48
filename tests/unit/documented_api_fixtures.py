"""Step functions for test_documented_api.py (importable by path)."""

from __future__ import annotations

from typing import Any


def returns_a_note(state: Any, context: Any) -> dict[str, Any]:
    """A step of free-form (dict) state."""
    return {"checked": True}
