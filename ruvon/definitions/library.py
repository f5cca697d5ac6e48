"""The workflow types one builder knows, each with every one of its versions.

Two sources: the registry's entries (a ``workflow_registry.yaml``, a registry dict, or the
workflow files discovered in a directory), whose files are loaded the first time their type is
asked for, and the definitions registered directly (a file, an inline definition, a built one).
A type's versions load together, or none of them (a bad file leaves nothing half-registered).
The step kinds' validation rules are handed in, so this part stays below the step kinds.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ruvon.definitions.catalog import TypeVersions
from ruvon.definitions.definition import WorkflowDefinition
from ruvon.definitions.imports import callable_path
from ruvon.definitions.loader import load_definition_data, load_workflow_file
from ruvon.definitions.problems import bundle_problems
from ruvon.definitions.registry_file import (
    RegistryEntries,
    discover_workflow_files,
    load_registry_versions,
)
from ruvon.definitions.rules import StepRulebook
from ruvon.definitions.schema import RegistryEntry
from ruvon.errors import DefinitionError, WorkflowTypeNotFound
from ruvon.models import StepType

__all__ = ["DefinitionLibrary"]

_CHILD_TYPES = (StepType.SUB_WORKFLOW, StepType.FIRE_AND_FORGET, StepType.CRON_SCHEDULE)


class DefinitionLibrary:
    """Registry entries and registered definitions, by type and version (see the module)."""

    __slots__ = ("_definitions", "_entries", "_rules")

    def __init__(self, entries: RegistryEntries, rules: StepRulebook) -> None:
        self._entries = entries
        self._rules = rules
        self._definitions: dict[str, TypeVersions] = {}

    @classmethod
    def from_registry_file(cls, path: Path, rules: StepRulebook) -> DefinitionLibrary:
        """The entries of a ``workflow_registry.yaml`` (every version each type lists)."""
        return cls(load_registry_versions(path), rules)

    @classmethod
    def discovered(cls, config_dir: Path, rules: StepRulebook) -> DefinitionLibrary:
        """Every workflow file in ``config_dir``, under its ``workflow_type``."""
        return cls({t: ((None, e),) for t, e in discover_workflow_files(config_dir).items()}, rules)

    @classmethod
    def from_mapping(
        cls, registry: Mapping[str, Any], config_dir: Path, rules: StepRulebook
    ) -> DefinitionLibrary:
        """A registry dict (``{type: {config_file, initial_state_model_path}}``); relative
        ``config_file`` paths are taken from ``config_dir``."""
        entries: RegistryEntries = {}
        for workflow_type, entry in registry.items():
            data = {"type": workflow_type, **dict(entry)}
            config = Path(str(data["config_file"]))
            data["config_file"] = str(config if config.is_absolute() else config_dir / config)
            try:
                entries[workflow_type] = ((None, RegistryEntry.model_validate(data)),)
            except ValidationError as exc:
                raise DefinitionError(
                    f"registry entry is invalid: {exc.errors()[0]['msg']}", step=workflow_type
                ) from None
        return cls(entries, rules)

    @property
    def workflow_types(self) -> list[str]:
        """Every workflow type known, from either source."""
        return sorted({*self._entries, *self._definitions})

    def registry_schedules(self) -> list[tuple[str, str | dict[str, Any] | float]]:
        """``(workflow type, schedule)`` of every registry entry that has a ``schedule``."""
        return [
            (workflow_type, entry.schedule)
            for workflow_type, versions in sorted(self._entries.items())
            for _, entry in versions
            if entry.schedule is not None
        ]

    def register(self, definition: WorkflowDefinition) -> WorkflowDefinition:
        """Add a built definition beside the other versions of its type (one of the same
        version is replaced; versions side by side must be semantic: ``DefinitionError``)."""
        shelf = self._definitions.get(definition.workflow_type)
        if shelf is None:
            shelf = self._definitions[definition.workflow_type] = TypeVersions(
                definition.workflow_type
            )
        shelf.add(definition)
        return definition

    def register_file(self, path: str | Path) -> WorkflowDefinition:
        """Load and add one workflow file (no registry entry needed)."""
        return self.register(load_workflow_file(path, rules=self._rules))

    def register_inline(
        self,
        workflow_type: str,
        steps: Sequence[Mapping[str, Any]],
        *,
        initial_state_model: type[Any] | str = dict,
        saga_mode: bool = False,
        workflow_version: str | None = None,
        parameters: Mapping[str, Any] | None = None,
        timeout: float | None = None,
    ) -> WorkflowDefinition:
        """Define and add a workflow from Python data; ``function`` fields may be callables."""
        model = initial_state_model
        model_path = (
            model
            if isinstance(model, str)
            else ("builtins.dict" if model is dict else callable_path(model))
        )
        data: dict[str, Any] = {
            "workflow_type": workflow_type,
            "workflow_version": workflow_version,
            "initial_state_model_path": model_path,
            "saga_mode": saga_mode,
            "parameters": dict(parameters or {}),
            "steps": _inline_steps(steps),
        }
        if timeout is not None:
            data["timeout"] = timeout
        return self.register(
            load_definition_data(data, file=f"<inline {workflow_type}>", rules=self._rules)
        )

    def versions_of(self, workflow_type: str) -> TypeVersions:
        """Every version of ``workflow_type``, loaded from the registry on first use.

        ``WorkflowTypeNotFound`` (naming the known types) for a type neither source has.
        """
        shelf = self._definitions.get(workflow_type)
        if shelf is not None:
            return shelf
        entries = self._entries.get(workflow_type)
        if entries is None:
            known = ", ".join(self.workflow_types) or "none registered"
            raise WorkflowTypeNotFound(
                f"unknown workflow type '{workflow_type}' (known: {known}); register it in "
                "workflow_registry.yaml"
            )
        loaded = TypeVersions(workflow_type)
        for _, entry in entries:
            definition = load_workflow_file(
                entry.config_file,
                rules=self._rules,
                state_model_path=entry.initial_state_model_path,
            )
            if definition.workflow_type != workflow_type:
                raise DefinitionError(
                    f"declares workflow_type '{definition.workflow_type}' but the registry "
                    f"lists it as '{workflow_type}'",
                    file=entry.config_file,
                    field="workflow_type",
                )
            loaded.add(definition)
        # Stored only once every version loaded, so a bad file leaves nothing half-registered.
        self._definitions[workflow_type] = loaded
        return loaded

    def validate_all(self) -> list[WorkflowDefinition]:
        """Load every type and check that the child workflow types its steps name exist; the
        ``DefinitionError`` raised carries the problems of every file in ``problems``."""
        definitions: list[WorkflowDefinition] = []
        problems: list[DefinitionError] = []
        for workflow_type in self.workflow_types:
            try:
                definitions.extend(self.versions_of(workflow_type).definitions())
            except DefinitionError as exc:
                problems.extend(exc.problems)
        known = self.workflow_types
        for definition in definitions:
            for step in definition.steps:
                target = step.target_workflow_type
                if step.type in _CHILD_TYPES and target not in known:
                    problems.append(
                        DefinitionError(
                            f"targets workflow type '{target}', which is not registered "
                            f"(registered: {', '.join(known)})",
                            file=definition.source_file,
                            step=step.name,
                            field="target_workflow_type",
                        )
                    )
        if problems:
            raise bundle_problems(problems)
        return definitions


def _inline_steps(steps: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Step dicts whose function fields may be callables: turn those into importable paths."""
    converted: list[dict[str, Any]] = []
    for step in steps:
        item = dict(step)
        for key in ("function", "compensate_function", "task_function", "merge_function_path"):
            if callable(item.get(key)):
                item[key] = callable_path(item[key])
        if "tasks" in item:
            item["tasks"] = [
                {**t, "function": callable_path(t["function"])}
                if callable(t.get("function"))
                else t
                for t in item["tasks"]
            ]
        if "loop_body" in item:
            item["loop_body"] = _inline_steps(item["loop_body"])
        injection = item.get("dynamic_injection")
        if isinstance(injection, Mapping) and isinstance(injection.get("rules"), Sequence):
            item["dynamic_injection"] = {
                **injection,
                "rules": [
                    {**rule, "steps_to_insert": _inline_steps(rule["steps_to_insert"])}
                    if isinstance(rule, Mapping) and isinstance(rule.get("steps_to_insert"), list)
                    else rule
                    for rule in injection["rules"]
                ],
            }
        converted.append(item)
    return converted
