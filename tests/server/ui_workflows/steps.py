"""Step functions and input models of the UI tests' workflows (``ui_registry.yaml``)."""

from __future__ import annotations

import asyncio
import enum
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from ruvon.models import StepContext


class Priority(enum.Enum):
    LOW = "low"
    HIGH = "high"


class ReviewInput(BaseModel):
    """What the reviewer of ``UiReview`` sends: one field of each kind the form generates."""

    reviewer: str = Field(min_length=2, description="Who reviewed it")
    amount: int = Field(ge=1, description="Approved amount, in euros")
    priority: Priority = Priority.LOW
    urgent: bool = False
    note: str | None = None


def prepare(state: dict[str, Any], context: StepContext) -> dict[str, Any]:
    return {"prepared": True}


def record_review(state: dict[str, Any], context: StepContext) -> dict[str, Any]:
    review = context.validated_input
    assert isinstance(review, ReviewInput)
    return {"review": review.model_dump(mode="json")}


def fail_first_time(state: dict[str, Any], context: StepContext) -> dict[str, Any]:
    """Fails the first time it runs for a workflow, succeeds after (a marker file remembers)."""
    marker = Path(state["marker_dir"]) / f"{context.workflow_id}.failed-once"
    if not marker.exists():
        marker.write_text("failed once\n")
        raise ConnectionError("the payment service timed out <b>(first try)</b>")
    return {"charged": True}


async def finish(state: dict[str, Any], context: StepContext) -> dict[str, Any]:
    """Finishes after ``finish_seconds`` (default none), without blocking the server's loop."""
    await asyncio.sleep(float(state.get("finish_seconds", 0)))
    return {"finished": True}
