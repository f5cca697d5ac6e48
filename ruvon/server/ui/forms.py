"""A resume form generated from a step's ``input_model``, and the form's values back as input.

The model's JSON schema gives one field per property: text for strings, number inputs for
numbers and integers, a checkbox for booleans, a select for enums (and ``Literal`` choices);
anything else (objects, lists) is a JSON text area. Values a field cannot convert are sent as
typed, so the model's own validation names the field and says what is wrong.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ValidationError

FIELD_PREFIX = "input."
RAW_FIELD = "input_json"


@dataclass(frozen=True)
class FormField:
    """One input of a generated form."""

    name: str
    label: str
    kind: str  # text | number | integer | checkbox | select | json
    required: bool
    description: str | None = None
    choices: tuple[str, ...] = ()
    default: Any = None

    @property
    def html_name(self) -> str:
        return FIELD_PREFIX + self.name

    @property
    def html_id(self) -> str:
        return "field-" + self.name


@dataclass
class FormOutcome:
    """The input a form gives, or the errors of each field (``""``: the whole form)."""

    data: dict[str, Any] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)


def fields_of(model: type[BaseModel]) -> list[FormField]:
    """The form fields of ``model``'s JSON schema, in declaration order."""
    schema = model.model_json_schema()
    definitions = schema.get("$defs", {})
    required = set(schema.get("required", []))
    found: list[FormField] = []
    for name, spec in schema.get("properties", {}).items():
        resolved = _resolve(spec, definitions)
        kind, choices = _kind(resolved)
        found.append(
            FormField(
                name=name,
                label=str(spec.get("title") or name.replace("_", " ").capitalize()),
                kind=kind,
                required=name in required,
                description=spec.get("description") or resolved.get("description"),
                choices=choices,
                default=spec.get("default"),
            )
        )
    return found


def _resolve(spec: dict[str, Any], definitions: dict[str, Any]) -> dict[str, Any]:
    """Follow ``$ref`` and drop the ``null`` of an optional field (``X | None``)."""
    if "$ref" in spec:
        return _resolve(definitions.get(spec["$ref"].rsplit("/", 1)[-1], {}), definitions)
    options = spec.get("anyOf") or spec.get("oneOf")
    if options:
        real = [option for option in options if option.get("type") != "null"]
        if len(real) == 1:
            return _resolve(real[0], definitions)
    if "allOf" in spec and len(spec["allOf"]) == 1:
        return _resolve(spec["allOf"][0], definitions)
    return spec


def _kind(spec: dict[str, Any]) -> tuple[str, tuple[str, ...]]:
    if "enum" in spec:
        return "select", tuple(str(choice) for choice in spec["enum"])
    if "const" in spec:
        return "select", (str(spec["const"]),)
    kind = spec.get("type")
    if kind == "string":
        return "text", ()
    if kind == "integer":
        return "integer", ()
    if kind == "number":
        return "number", ()
    if kind == "boolean":
        return "checkbox", ()
    return "json", ()


def read_input(fields: list[FormField], form: dict[str, str]) -> FormOutcome:
    """The input dict the form's values make (empty optional fields left out)."""
    outcome = FormOutcome()
    for spec in fields:
        raw = form.get(spec.html_name)
        if spec.kind == "checkbox":
            outcome.data[spec.name] = raw is not None
            continue
        if raw is None or raw.strip() == "":
            if spec.required:
                outcome.errors[spec.name] = "a value is required"
            continue
        outcome.data[spec.name] = _convert(spec, raw.strip(), outcome)
    return outcome


def _convert(spec: FormField, raw: str, outcome: FormOutcome) -> Any:
    try:
        if spec.kind == "integer":
            return int(raw)
        if spec.kind == "number":
            return float(raw)
        if spec.kind == "json":
            return json.loads(raw)
    except ValueError:
        if spec.kind == "json":
            outcome.errors[spec.name] = "not valid JSON"
        return raw  # as typed: the model's validation says what is wrong with it
    return raw


def read_raw_input(form: dict[str, str]) -> FormOutcome:
    """The input of a step without a model: a JSON object typed into one text area."""
    raw = form.get(RAW_FIELD, "").strip()
    if not raw:
        return FormOutcome()
    try:
        data = json.loads(raw)
    except ValueError as exc:
        return FormOutcome(errors={RAW_FIELD: f"not valid JSON: {exc}"})
    if not isinstance(data, dict):
        return FormOutcome(errors={RAW_FIELD: "must be a JSON object ({...})"})
    return FormOutcome(data=data)


def validation_errors(model: type[BaseModel], data: dict[str, Any]) -> dict[str, str]:
    """The model's complaints about ``data``, by top-level field (``""``: not one field)."""
    try:
        model.model_validate(data)
    except ValidationError as exc:
        errors: dict[str, str] = {}
        for error in exc.errors():
            location = error.get("loc", ())
            name = str(location[0]) if location else ""
            message = error.get("msg", "invalid")
            errors[name] = f"{errors[name]}; {message}" if name in errors else message
        return errors
    return {}
