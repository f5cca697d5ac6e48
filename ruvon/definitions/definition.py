"""A validated, frozen workflow definition and its snapshot form."""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass, field
from typing import Any

import orjson
from pydantic import BaseModel

from ruvon.definitions.imports import import_object
from ruvon.definitions.schema import StepDefinition, WorkflowFile
from ruvon.errors import DefinitionError

SNAPSHOT_SOURCE_KEY = "source_file"


def resolve_state_model(path: str | None, *, file: str | None) -> type[Any]:
    """Import the state model: a pydantic model class, or ``dict`` for free-form state."""
    if path is None or path in ("builtins.dict", "dict"):
        return dict
    try:
        model = import_object(path)
    except ImportError as exc:
        raise DefinitionError(
            f"cannot import state model '{path}': {exc}",
            file=file,
            field="initial_state_model_path",
        ) from exc
    if not (isinstance(model, type) and issubclass(model, BaseModel | dict)):
        raise DefinitionError(
            f"state model '{path}' is not a pydantic model class "
            "(use a BaseModel subclass, or builtins.dict for free-form state)",
            file=file,
            field="initial_state_model_path",
        )
    return model


@dataclass(frozen=True)
class WorkflowDefinition:
    """A workflow file after validation: what the engine runs and what instances snapshot."""

    spec: WorkflowFile
    state_model: type[Any]
    source_file: str | None = None
    step_index: dict[str, int] = field(default_factory=dict)

    @classmethod
    def build(
        cls, spec: WorkflowFile, *, state_model: type[Any], source_file: str | None
    ) -> WorkflowDefinition:
        """Assemble a definition from an already-validated spec."""
        index = {step.name: i for i, step in enumerate(spec.steps)}
        return cls(spec=spec, state_model=state_model, source_file=source_file, step_index=index)

    @property
    def workflow_type(self) -> str:
        return self.spec.workflow_type

    @property
    def steps(self) -> tuple[StepDefinition, ...]:
        return self.spec.steps

    @property
    def state_is_model(self) -> bool:
        """True when state is a pydantic model rather than a free-form dict."""
        return issubclass(self.state_model, BaseModel)

    @functools.cached_property
    def has_step_timeouts(self) -> bool:
        """Whether any step, branch or loop body step (inserted ones included) has a
        ``timeout``: a worker then runs the workflow's step functions on its task thread,
        the one its time-limit signal reaches (ruvon.implementations.execution.carriers)."""
        return any(_times_out(step) for step in self.steps)

    def snapshot(self) -> dict[str, Any]:
        """JSON-ready form stored with every instance, so YAML edits never reach it.

        Computed once and shared by every instance created from this definition: treat it as
        read-only (it is what the workflow's own definition is rebuilt from).
        """
        return self._snapshot

    @functools.cached_property
    def _snapshot(self) -> dict[str, Any]:
        data = self.spec.model_dump(mode="json", exclude_defaults=True)
        data["workflow_type"] = self.spec.workflow_type
        data["initial_state_model_path"] = self.spec.initial_state_model_path or "builtins.dict"
        data[SNAPSHOT_SOURCE_KEY] = self.source_file
        return data

    @classmethod
    def from_snapshot(cls, snapshot: dict[str, Any]) -> WorkflowDefinition:
        """Rebuild the definition an instance started with (cached by content)."""
        key = hashlib.blake2b(orjson.dumps(snapshot, option=orjson.OPT_SORT_KEYS)).hexdigest()
        cached = _snapshot_cache.get(key)
        if cached is not None:
            return cached
        data = {k: v for k, v in snapshot.items() if k != SNAPSHOT_SOURCE_KEY}
        source = snapshot.get(SNAPSHOT_SOURCE_KEY)
        spec = WorkflowFile.model_validate(data)
        definition = cls.build(
            spec,
            state_model=resolve_state_model(spec.initial_state_model_path, file=source),
            source_file=source,
        )
        _snapshot_cache[key] = definition
        return definition


_snapshot_cache: dict[str, WorkflowDefinition] = {}


def _times_out(step: StepDefinition) -> bool:
    if step.timeout is not None or any(task.timeout is not None for task in step.tasks):
        return True
    if any(_times_out(part) for part in step.loop_body):
        return True
    rules = step.dynamic_injection.rules if step.dynamic_injection is not None else ()
    return any(_times_out(inserted) for rule in rules for inserted in rule.steps_to_insert)
