"""The form a waiting workflow needs: fields from its step's input model, approve / reject,
or a JSON object where the step declares no model."""

from __future__ import annotations

from dataclasses import dataclass, field

from pydantic import BaseModel

from ruvon.definitions.imports import import_object
from ruvon.models import WorkflowStatus
from ruvon.records import WorkflowRecord
from ruvon.server.ui.forms import FormField, fields_of
from ruvon.steps.human import ApprovalDecision


@dataclass
class WaitingForm:
    """How to answer the step a workflow waits at.

    ``kind``: ``fields`` (a form generated from ``model``), ``approval`` (approve / reject with
    a reason) or ``raw`` (a JSON object, for a step without an input model).
    """

    step: str
    kind: str
    model: type[BaseModel] | None = None
    fields: list[FormField] = field(default_factory=list)
    note: str | None = None


def waiting_form(record: WorkflowRecord) -> WaitingForm | None:
    """The form for ``record``'s waiting step (None unless it waits for a person)."""
    if record.status is not WorkflowStatus.WAITING_HUMAN:
        return None
    steps = record.definition_snapshot.get("steps", [])
    if not 0 <= record.current_step < len(steps):
        return None
    spec = steps[record.current_step]
    name = str(spec.get("name"))
    kind = str(spec.get("type") or "STANDARD").upper()
    if kind == "WAIT_FOR_EVENT":  # answered by a signal (the API, `ruvon signal`), not a form
        return None
    if record.runtime.get("resume_after"):  # a step's function paused: any input goes
        return WaitingForm(step=name, kind="raw")
    model_path = spec.get("input_model")
    if model_path:
        try:
            model = import_object(str(model_path))
        except ImportError as exc:
            note = f"the input model {model_path} does not import in the server: {exc}"
            return WaitingForm(step=name, kind="raw", note=note)
        if isinstance(model, type) and issubclass(model, BaseModel):
            return WaitingForm(step=name, kind="fields", model=model, fields=fields_of(model))
    if kind == "HUMAN_APPROVAL":
        return WaitingForm(step=name, kind="approval", model=ApprovalDecision)
    return WaitingForm(step=name, kind="raw")
