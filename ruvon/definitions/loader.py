"""Load and validate workflow files; every problem is a ``DefinitionError``.

Validation happens once, at load time: schema (unknown keys, types), duplicate step names, route
targets, conditions that do not compile, function paths that do not import or take the wrong
arguments, input models, and loops that could never end. What each step kind needs of its own
fields (a PARALLEL's tasks, a WAIT's one deadline, a valid cron expression) is that kind's rules
(:mod:`ruvon.definitions.rules`), which the caller hands in. Registry files are
:mod:`ruvon.definitions.registry_file`'s; locating a problem is :mod:`ruvon.definitions.problems`'.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from ruvon.definitions.definition import WorkflowDefinition, resolve_state_model
from ruvon.definitions.graph import find_unbounded_cycle
from ruvon.definitions.imports import import_object, resolve_step_function
from ruvon.definitions.injection import lay_out_injections
from ruvon.definitions.problems import (
    bundle_problems,
    definition_error_from_validation,
    located_error,
    parse_field_path,
    raw_at,
)
from ruvon.definitions.rules import StepRulebook
from ruvon.definitions.schema import GATED_STEP_TYPES, StepDefinition, WorkflowFile
from ruvon.definitions.yaml_loader import LineDict, read_yaml_mapping
from ruvon.errors import DefinitionError, ExpressionError
from ruvon.expressions import compile_expression
from ruvon.models import StepType
from ruvon.templating import check_template, render_value, substitute_env

# Both spellings a workflow file may use for its state model.
_STATE_MODEL_KEYS = ("initial_state_model_path", "initial_state_model")


class _Checker:
    """Semantic checks over a parsed workflow file, with line numbers from the raw mapping."""

    def __init__(
        self, spec: WorkflowFile, raw: Mapping[str, Any], file: str | None, rules: StepRulebook
    ) -> None:
        self.spec = spec
        self.raw = raw
        self.file = file
        self.rules = rules
        self.problems: list[DefinitionError] = []

    def fail(
        self,
        message: str,
        *,
        step: str | None,
        field: str | None,
        path: tuple[Any, ...],
        cause: BaseException | None = None,
    ) -> None:
        """Record a problem and go on checking (every problem of a file is reported).

        ``cause`` becomes the problem's ``__context__``, as if it had been raised handling it.
        """
        mapping, key = raw_at(self.raw, path)
        line = mapping.line_of(key) if mapping is not None else None
        problem = DefinitionError(message, file=self.file, step=step, field=field, line=line)
        problem.__context__ = cause
        self.problems.append(problem)

    def run(self) -> None:
        if self.spec.concurrency is not None:
            key = self.spec.concurrency.key
            path = ("concurrency", "key")
            self.check_key_template(key, step=None, field="concurrency.key", path=path)
        self.check_steps(self.spec.steps, ("steps",), top_level=True)
        self.check_injections()
        if self.problems:  # the graph of a workflow with bad names or routes means nothing
            return
        cycle = find_unbounded_cycle(self.spec.steps)
        if cycle:
            names = " -> ".join([*cycle, cycle[0]])
            index = {s.name: i for i, s in enumerate(self.spec.steps)}
            # Point at the DECISION whose route closes the loop, not at a plain step in it.
            routed = [n for n in cycle if self.spec.steps[index[n]].routes]
            anchor = routed[0] if routed else cycle[0]
            self.fail(
                f"steps {names} form a loop that can never end: add 'max_iterations' to one "
                "of them (or give the loop an exit)",
                step=anchor,
                field="routes" if routed else None,
                path=("steps", index[anchor], "routes" if routed else "name"),
            )

    def check_steps(
        self, steps: tuple[StepDefinition, ...], path: tuple[Any, ...], *, top_level: bool
    ) -> None:
        seen: dict[str, int] = {}
        names = {s.name for s in steps}
        for i, step in enumerate(steps):
            here = (*path, i)
            if step.name in seen:
                self.fail(
                    f"duplicate step name (also step #{seen[step.name] + 1})",
                    step=step.name,
                    field="name",
                    path=(*here, "name"),
                )
            seen[step.name] = i
            self.check_step(step, here, names, top_level=top_level)

    def check_injections(self) -> None:
        """Each rule's steps are checked like any step; every name stays unique workflow-wide
        (an inserted step joins the workflow's step list)."""
        taken = {s.name: f"step #{i + 1}" for i, s in enumerate(self.spec.steps)}
        for i, step in enumerate(self.spec.steps):
            if step.dynamic_injection is None:
                continue
            for r, rule in enumerate(step.dynamic_injection.rules):
                path = ("steps", i, "dynamic_injection", "rules", r, "steps_to_insert")
                self.check_steps(rule.steps_to_insert, path, top_level=False)
                for k, inserted in enumerate(rule.steps_to_insert):
                    other = taken.get(inserted.name)
                    if other is not None:
                        self.fail(
                            f"inserted step name '{inserted.name}' is already taken by {other}; "
                            "inserted steps join the workflow, so each needs its own name",
                            step=step.name,
                            field=f"dynamic_injection.rules[{r}].steps_to_insert[{k}].name",
                            path=(*path, k, "name"),
                        )
                    taken[inserted.name] = f"a step inserted by step '{step.name}'"

    def check_step(
        self, step: StepDefinition, here: tuple[Any, ...], names: set[str], *, top_level: bool
    ) -> None:
        if step.dynamic_injection is not None and not top_level:
            self.fail(
                "dynamic_injection works on the workflow's own steps only, not inside a "
                "loop_body or steps_to_insert",
                step=step.name,
                field="dynamic_injection",
                path=(*here, "dynamic_injection"),
            )
        if step.injected_by is not None:
            self.fail(
                "'injected_by' is set by Ruvon on inserted steps; remove it",
                step=step.name,
                field="injected_by",
                path=(*here, "injected_by"),
            )
        kind = step.type
        rules = self.rules.get(kind)
        if rules is None:
            self.fail(
                f"no handler knows step type {kind}", step=step.name, field="type",
                path=(*here, "type"),
            )  # fmt: skip
        else:
            for problem in rules.validate(step):
                at = problem.at if problem.at is not None else (problem.field,)
                self.fail(
                    problem.message,
                    step=problem.step or step.name,
                    field=problem.field,
                    path=(*here, *at),
                )

        def owned(kind_of_field: StepType, present: bool, field: str, message: str) -> None:
            if present and kind is not kind_of_field:
                self.fail(message, step=step.name, field=field, path=(*here, field))

        owned(StepType.DECISION, bool(step.routes), "routes", "only DECISION steps route")
        owned(StepType.PARALLEL, bool(step.tasks), "tasks", "only PARALLEL steps have 'tasks'")
        owned(StepType.LOOP, bool(step.loop_body), "loop_body", "only LOOP steps have 'loop_body'")
        owned(StepType.WAIT_FOR_EVENT, step.event is not None, "event",
              "only WAIT_FOR_EVENT steps wait for an 'event'")  # fmt: skip
        owned(StepType.WAIT_FOR_EVENT, step.timeout_data is not None, "timeout_data",
              "only WAIT_FOR_EVENT steps have 'timeout_data'")  # fmt: skip
        if step.loop_body:
            self.check_steps(step.loop_body, (*here, "loop_body"), top_level=False)
        for r, route in enumerate(step.routes):
            if route.destination not in names:
                key = "default" if route.default is not None else "target"
                self.fail(
                    f"route #{r + 1} targets '{route.destination}', which is not a step of this "
                    f"workflow (steps: {', '.join(sorted(names))})",
                    step=step.name,
                    field=f"routes[{r}].{key}",
                    path=(*here, "routes", r, key),
                )
            if route.condition is not None:
                try:
                    compile_expression(route.condition)
                except ExpressionError as exc:
                    self.fail(
                        str(exc),
                        step=step.name,
                        field=f"routes[{r}].condition",
                        path=(*here, "routes", r, "condition"),
                        cause=exc,
                    )
        if step.while_condition is not None:
            try:
                compile_expression(step.while_condition)
            except ExpressionError as exc:
                self.fail(
                    str(exc),
                    step=step.name,
                    field="while_condition",
                    path=(*here, "while_condition"),
                    cause=exc,
                )
        self.check_functions(step, here)
        if step.input_model is not None:
            self.check_model(step.input_model, step, here)
        self.check_flow_control(step, here)

    def check_flow_control(self, step: StepDefinition, here: tuple[Any, ...]) -> None:
        """A step's ``concurrency`` and ``rate_limit`` gate its function's calls: a step kind
        that calls none cannot carry them; their keys must be templates that compile."""
        for field, spec in (("concurrency", step.concurrency), ("rate_limit", step.rate_limit)):
            if spec is None:
                continue
            if step.type not in GATED_STEP_TYPES:
                self.fail(
                    f"'{field}' gates the calls of a step's function, and a {step.type} step "
                    f"calls none; put it on the step that does the work (one of "
                    f"{', '.join(sorted(GATED_STEP_TYPES))})",
                    step=step.name,
                    field=field,
                    path=(*here, field),
                )
                continue
            self.check_key_template(spec.key, step=step.name, field=f"{field}.key",
                                    path=(*here, field, "key"))  # fmt: skip

    def check_key_template(
        self, template: str, *, step: str | None, field: str, path: tuple[Any, ...]
    ) -> None:
        try:
            check_template(template)
        except DefinitionError as exc:
            self.fail(str(exc), step=step, field=field, path=path, cause=exc)

    def check_functions(self, step: StepDefinition, here: tuple[Any, ...]) -> None:
        fields: list[tuple[str, str | None, tuple[Any, ...]]] = [
            ("function", step.function, (*here, "function")),
            ("compensate_function", step.compensate_function, (*here, "compensate_function")),
            ("task_function", step.task_function, (*here, "task_function")),
            ("merge_function_path", step.merge_function_path, (*here, "merge_function_path")),
        ]
        fields += [
            (f"tasks[{t}].function", task.function, (*here, "tasks", t, "function"))
            for t, task in enumerate(step.tasks)
        ]
        for field, path, raw_path in fields:
            if path is None:
                continue
            try:
                resolve_step_function(path, file=self.file, step=step.name, field=field)
            except DefinitionError as exc:
                mapping, key = raw_at(self.raw, raw_path)
                exc.line = mapping.line_of(key) if mapping is not None else None
                exc.args = (exc._render(),)
                self.problems.append(exc)

    def check_model(self, path: str, step: StepDefinition, here: tuple[Any, ...]) -> None:
        try:
            model = import_object(path)
        except ImportError as exc:
            self.fail(
                f"cannot import input model '{path}': {exc}",
                step=step.name,
                field="input_model",
                path=(*here, "input_model"),
                cause=exc,
            )
            return
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            self.fail(
                f"input model '{path}' is not a pydantic BaseModel subclass",
                step=step.name,
                field="input_model",
                path=(*here, "input_model"),
            )


def load_definition_data(
    raw: Mapping[str, Any],
    *,
    file: str | None,
    rules: StepRulebook,
    state_model_path: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> WorkflowDefinition:
    """Validate an already-parsed workflow mapping into a ``WorkflowDefinition``."""
    try:
        data = substitute_env(
            dict(raw), environ=environ if environ is not None else os.environ, file=file
        )
    except DefinitionError as exc:
        loc = parse_field_path(exc.field or "")
        raise located_error(exc.reason, raw=raw, file=file, loc=loc) from None
    try:
        spec = WorkflowFile.model_validate(data)
    except ValidationError as exc:
        raise definition_error_from_validation(exc, raw=raw, file=file) from None
    if spec.parameters:
        rendered = render_value(spec.parameters, {"env": dict(os.environ)})
        spec = spec.model_copy(update={"parameters": rendered})
    if spec.initial_state_model_path is None and state_model_path is not None:
        spec = spec.model_copy(update={"initial_state_model_path": state_model_path})
    checker = _Checker(spec, raw, file, rules)
    checker.run()
    try:
        state_model = resolve_state_model(spec.initial_state_model_path, file=file)
    except DefinitionError as exc:
        if isinstance(raw, LineDict):
            key = next((k for k in _STATE_MODEL_KEYS if k in raw), None)
            exc.line = raw.line_of(key) if key else None
            exc.args = (exc._render(),)
        checker.problems.append(exc)
    if checker.problems:
        raise bundle_problems(checker.problems)
    if any(step.dynamic_injection is not None for step in spec.steps):
        spec = spec.model_copy(update={"steps": lay_out_injections(spec.steps)})
    return WorkflowDefinition.build(spec, state_model=state_model, source_file=file)


def load_workflow_file(
    path: str | Path, *, rules: StepRulebook, state_model_path: str | None = None
) -> WorkflowDefinition:
    """Read and validate one workflow YAML file (each step kind by its own ``rules``)."""
    path = Path(path)
    raw = read_yaml_mapping(path)
    return load_definition_data(raw, file=str(path), rules=rules, state_model_path=state_model_path)
