"""What a workflow waiting for a person expects, and the command that gives it to it."""

from __future__ import annotations

import enum
import json
import shlex
import types
import typing
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel
from pydantic_core import PydanticUndefined, to_jsonable_python

from ruvon.definitions.imports import import_object
from ruvon.definitions.schema import StepDefinition
from ruvon.errors import InputValidationError
from ruvon.models import StepType
from ruvon.steps.human import ApprovalDecision, validate_input
from ruvon.workflow import Workflow

_HUMAN_STEPS = (StepType.HUMAN_IN_LOOP, StepType.HUMAN_APPROVAL)


@dataclass(frozen=True)
class InputField:
    """One field of a step's input model, as shown to the operator."""

    name: str
    type_name: str
    required: bool
    default: Any = None


def waiting_step(wf: Workflow) -> StepDefinition | None:
    """The step a workflow is parked at (None past the last step)."""
    index = wf.current_step_index
    return wf.steps[index] if 0 <= index < len(wf.steps) else None


def paused_by_directive(wf: Workflow) -> bool:
    """A step raised WorkflowPauseDirective: the input goes to the *next* step's function."""
    return bool(wf.record.runtime.get("resume_after"))


def input_model(wf: Workflow) -> type[BaseModel] | None:
    """The pydantic model the resume input is validated against, if any."""
    step = waiting_step(wf)
    if step is None or paused_by_directive(wf):
        return None
    if step.type not in _HUMAN_STEPS and step.type is not StepType.WAIT_FOR_EVENT:
        return None
    if step.input_model:
        model = import_object(step.input_model)
        return model if isinstance(model, type) and issubclass(model, BaseModel) else None
    return ApprovalDecision if step.type is StepType.HUMAN_APPROVAL else None


def check_resume_input(wf: Workflow, user_input: dict[str, Any]) -> None:
    """Validate input before it reaches the engine.

    The engine fails a workflow whose step rejects its input; a typo on the command line
    should cost a retyped command, not a failed workflow.
    """
    step = waiting_step(wf)
    if step is None or paused_by_directive(wf) or step.type not in _HUMAN_STEPS:
        return
    default = ApprovalDecision if step.type is StepType.HUMAN_APPROVAL else None
    try:
        validate_input(step, user_input, default=default)
    except InputValidationError as exc:
        raise InputValidationError(
            f"{exc} (workflow '{wf.id}' is still waiting; nothing was changed)"
        ) from None


def _type_name(annotation: Any) -> str:
    if annotation is None or annotation is type(None):
        return "None"
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return " | ".join(_type_name(arg) for arg in typing.get_args(annotation))
    if origin is typing.Literal:
        return " | ".join(json.dumps(arg) for arg in typing.get_args(annotation))
    if origin is not None:
        args = ", ".join(_type_name(arg) for arg in typing.get_args(annotation))
        return f"{getattr(origin, '__name__', str(origin))}[{args}]"
    return getattr(annotation, "__name__", str(annotation).replace("typing.", ""))


def model_fields(model: type[BaseModel]) -> list[InputField]:
    """The fields of an input model, in declaration order."""
    fields = []
    for name, info in model.model_fields.items():
        default = None if info.default is PydanticUndefined else info.default
        fields.append(
            InputField(info.alias or name, _type_name(info.annotation), info.is_required(), default)
        )
    return fields


def _placeholder(annotation: Any) -> Any:
    """A value of the right JSON type for the operator to overwrite."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        options = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        return _placeholder(options[0]) if options else None
    if origin is typing.Literal:
        return typing.get_args(annotation)[0]
    base = origin or annotation
    if isinstance(base, type):
        if issubclass(base, enum.Enum):
            return next(iter(base)).value
        for kind, value in ((bool, True), (int, 0), (float, 0.0), (str, "")):
            if issubclass(base, kind):
                return value
        if issubclass(base, list | tuple | set | frozenset):
            return []
        if issubclass(base, dict | BaseModel):
            return {}
    return None


def example_input(model: type[BaseModel] | None) -> dict[str, Any]:
    """An input object with every field: defaults where there are some, placeholders elsewhere."""
    if model is None:
        return {}
    example: dict[str, Any] = {}
    for name, info in model.model_fields.items():
        key = info.alias or name
        if info.is_required():
            example[key] = _placeholder(info.annotation)
        else:
            default = info.get_default(call_default_factory=True)
            try:
                example[key] = to_jsonable_python(default)
            except Exception:
                example[key] = None
    return example


def waiting_event(wf: Workflow) -> str | None:
    """The event name a workflow waits for at a WAIT_FOR_EVENT step (None otherwise)."""
    step = waiting_step(wf)
    if step is None or paused_by_directive(wf) or step.type is not StepType.WAIT_FOR_EVENT:
        return None
    return step.event


def signal_command_line(
    prefix: list[str], workflow_id: str, event: str, model: type[BaseModel] | None
) -> str:
    """The exact shell command that sends ``event`` to ``workflow_id``."""
    payload = json.dumps(example_input(model), ensure_ascii=False)
    return shlex.join([*prefix, "signal", workflow_id, event, "--data", payload])


def resume_command(prefix: list[str], workflow_id: str, model: type[BaseModel] | None) -> str:
    """The exact shell command that resumes ``workflow_id`` (``prefix`` is ``ruvon [--db …]``)."""
    payload = json.dumps(example_input(model), ensure_ascii=False)
    return shlex.join([*prefix, "resume", workflow_id, "--input", payload])
