"""Load and validate workflow and registry files; every problem is a ``DefinitionError``.

Validation happens once, at load time: schema (unknown keys, types), duplicate step names, route
targets, conditions that do not compile, function paths that do not import or take the wrong
arguments, input models, and loops that could never end. What each step kind needs of its own
fields (a PARALLEL's tasks, a WAIT's one deadline, a valid cron expression) is that kind's rules
(:mod:`ruvon.definitions.rules`), which the caller hands in.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from ruvon.definitions.definition import WorkflowDefinition, resolve_state_model
from ruvon.definitions.graph import find_unbounded_cycle
from ruvon.definitions.imports import import_object, resolve_step_function
from ruvon.definitions.injection import lay_out_injections
from ruvon.definitions.registry_versions import ListedEntry, entry_line, order_versions
from ruvon.definitions.rules import StepRulebook
from ruvon.definitions.schema import (
    GATED_STEP_TYPES,
    QueueLimits,
    RegistryEntry,
    RegistryFile,
    StepDefinition,
    WorkflowFile,
)
from ruvon.definitions.yaml_loader import LineDict, read_yaml_mapping
from ruvon.errors import DefinitionError, ExpressionError
from ruvon.expressions import compile_expression
from ruvon.models import StepType
from ruvon.templating import check_template, render_value, substitute_env

# The keys whose items are steps (the field of an error inside one is named relative to it).
_STEP_LISTS = ("steps", "loop_body", "steps_to_insert")

# Both spellings a workflow file may use for its state model.
_STATE_MODEL_KEYS = ("initial_state_model_path", "initial_state_model")


def _raw_at(raw: Any, loc: Iterable[Any]) -> tuple[LineDict | None, str | None]:
    """Walk ``raw`` along a pydantic error location; return the deepest mapping and its key."""
    node, key = raw, None
    mapping: LineDict | None = raw if isinstance(raw, LineDict) else None
    for part in loc:
        if isinstance(node, dict) and part in node:
            if isinstance(node, LineDict):
                mapping, key = node, str(part)
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            node = node[part]
            if isinstance(node, LineDict):
                mapping, key = node, None
        else:
            if isinstance(node, LineDict):
                mapping, key = node, str(part)
            break
    return mapping, key


def _step_name_at(raw: Mapping[str, Any], loc: tuple[Any, ...]) -> str | None:
    """Name of the step an error location points into (innermost, for loop bodies)."""
    name: str | None = None
    node: Any = raw
    for i, part in enumerate(loc):
        if isinstance(node, Mapping):
            node = node.get(part)
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            node = node[part]
        else:
            break
        if isinstance(node, Mapping) and i > 0 and loc[i - 1] in _STEP_LISTS:
            name = str(node.get("name", f"#{part + 1}"))
    return name


def _clean_loc(loc: tuple[Any, ...]) -> tuple[Any, ...]:
    """A pydantic location without its union/tagged-union bookkeeping entries."""
    return tuple(part for part in loc if not (isinstance(part, str) and "[" in part))


def _validation_problem(error: Any, *, raw: Mapping[str, Any], file: str | None) -> DefinitionError:
    loc = _clean_loc(error["loc"])
    message = error["msg"]
    if error["type"] == "extra_forbidden":
        message = f"unknown key '{loc[-1]}' (check the spelling; see the step reference)"
    elif error["type"] == "missing":
        message = f"required key '{loc[-1]}' is missing"
    else:
        message = message.removeprefix("Value error, ")
        if "input" in error:
            message = f"{message} (got {error['input']!r})"
    return _located_error(message, raw=raw, file=file, loc=loc)


def definition_errors_from_validation(
    exc: ValidationError, *, raw: Mapping[str, Any], file: str | None
) -> list[DefinitionError]:
    """Every pydantic error as a DefinitionError naming file, step, field, line; root cause first.

    A misspelt key also makes the real one "missing" in the same mapping: only the misspelling
    is reported. An error about a whole list or mapping whose items have errors of their own
    (``steps`` left empty because every step failed) is their consequence: left out. A union
    reports one spot once per member: only the first is kept.
    """
    errors = exc.errors()
    locs = [_clean_loc(e["loc"]) for e in errors]
    misspelt_in = {
        loc[:-1] for loc, e in zip(locs, errors, strict=True) if e["type"] == "extra_forbidden"
    }
    inner = {loc[:i] for loc in locs for i in range(len(loc))}
    kept = [
        e
        for loc, e in zip(locs, errors, strict=True)
        if not (e["type"] == "missing" and loc[:-1] in misspelt_in) and loc not in inner
    ]
    first = next((e for e in kept if e["type"] == "extra_forbidden"), kept[0])
    problems: list[DefinitionError] = []
    seen: set[tuple[int | None, str | None, str | None]] = set()
    for error in [first, *(e for e in kept if e is not first)]:
        problem = _validation_problem(error, raw=raw, file=file)
        spot = (problem.line, problem.step, problem.field)
        if spot not in seen:
            seen.add(spot)
            problems.append(problem)
    return problems


def definition_error_from_validation(
    exc: ValidationError, *, raw: Mapping[str, Any], file: str | None
) -> DefinitionError:
    """The root-cause pydantic error as a DefinitionError, every other one in ``problems``."""
    return bundle_problems(definition_errors_from_validation(exc, raw=raw, file=file))


def bundle_problems(problems: list[DefinitionError]) -> DefinitionError:
    """The first of ``problems``, carrying all of them; its message counts the others."""
    first = problems[0]
    first.problems = tuple(problems)
    others = len(problems) - 1
    if others:
        first.args = (
            f"{first._render()} (and {others} more problem{'s' if others > 1 else ''}; "
            "`ruvon validate` lists them all)",
        )
    return first


def _located_error(
    message: str, *, raw: Mapping[str, Any], file: str | None, loc: tuple[Any, ...]
) -> DefinitionError:
    """A DefinitionError for the value at ``loc`` in ``raw``: step, step-relative field, line."""
    field_parts = list(loc)
    # Inside a step, the field is named relative to that (innermost) step.
    step_starts = [
        i
        for i, part in enumerate(field_parts[:-1])
        if part in _STEP_LISTS and isinstance(field_parts[i + 1], int)
    ]
    if step_starts:
        field_parts = field_parts[step_starts[-1] + 2 :]
    field = ".".join(str(p) for p in field_parts) or None
    mapping, key = _raw_at(raw, loc)
    line = mapping.line_of(key) if mapping is not None else None
    return DefinitionError(message, file=file, step=_step_name_at(raw, loc), field=field, line=line)


def _parse_field_path(path: str) -> tuple[Any, ...]:
    """``steps[0].queue`` -> ``("steps", 0, "queue")`` (the paths ``substitute_env`` reports)."""
    return tuple(
        int(index) if index else name for name, index in re.findall(r"([^.\[\]]+)|\[(\d+)\]", path)
    )


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
        mapping, key = _raw_at(self.raw, path)
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
                mapping, key = _raw_at(self.raw, raw_path)
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
        loc = _parse_field_path(exc.field or "")
        raise _located_error(exc.reason, raw=raw, file=file, loc=loc) from None
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


def load_registry_versions(
    path: str | Path,
) -> dict[str, tuple[tuple[str | None, RegistryEntry], ...]]:
    """Read ``workflow_registry.yaml``: workflow type -> ``(version, entry)``, oldest first.

    Config paths are made absolute. A type listed once has one entry whose version is read
    later, with its file (``None`` here); a type listed several times has its versions read and
    checked now (:mod:`ruvon.definitions.registry_versions`).
    """
    path = Path(path)
    raw = read_yaml_mapping(path)
    try:
        registry = RegistryFile.model_validate(raw)
    except ValidationError as exc:
        raise definition_error_from_validation(exc, raw=raw, file=str(path)) from None
    grouped: dict[str, list[ListedEntry]] = {}
    for i, entry in enumerate(registry.workflows):
        item = raw["workflows"][i]
        candidates = _config_file_candidates(Path(entry.config_file), registry=path)
        config = next((c for c in candidates if c.is_file()), None)
        if config is None:
            raise DefinitionError(
                f"workflow type '{entry.type}' lists config_file '{entry.config_file}', which "
                f"does not exist (looked for {' and '.join(str(c) for c in candidates)})",
                file=path,
                field="config_file",
                line=item.line_of("config_file") if isinstance(item, LineDict) else None,
            )
        for listed in grouped.get(entry.type, []):
            if Path(listed.entry.config_file).resolve() == config.resolve():
                raise DefinitionError(
                    f"workflow type '{entry.type}' is registered twice with the same "
                    f"config_file (also at {path}:{listed.line}); list each version's own file",
                    file=path,
                    field="type",
                    line=entry_line(item),
                )
        resolved = entry.model_copy(update={"config_file": str(config)})
        grouped.setdefault(entry.type, []).append(
            ListedEntry(resolved, str(path), entry_line(item))
        )
    return {
        workflow_type: order_versions(workflow_type, listed)
        for workflow_type, listed in grouped.items()
    }


def load_queue_limits(path: str | Path) -> dict[str, QueueLimits]:
    """The ``queues`` section of ``workflow_registry.yaml`` (queue name -> its limits)."""
    path = Path(path)
    raw = read_yaml_mapping(path)
    try:
        return dict(RegistryFile.model_validate(raw).queues)
    except ValidationError as exc:
        raise definition_error_from_validation(exc, raw=raw, file=str(path)) from None


def load_registry(path: str | Path) -> dict[str, RegistryEntry]:
    """Read ``workflow_registry.yaml``: workflow type -> its latest entry (paths absolute)."""
    return {
        workflow_type: versions[-1][1]
        for workflow_type, versions in load_registry_versions(path).items()
    }


def _config_file_candidates(config: Path, *, registry: Path) -> list[Path]:
    """Where a registry's ``config_file`` may be, in order.

    A relative path is looked up next to the registry file first, then in the working
    directory: the Ruvon documentation's default config dir, and where its getting-started
    tutorial puts the workflow file (``hello_workflow.yaml`` beside ``config/``).
    """
    if config.is_absolute():
        return [config]
    beside = registry.parent / config
    in_cwd = Path.cwd() / config
    return [beside] if in_cwd.resolve() == beside.resolve() else [beside, in_cwd]


_WORKFLOW_SUFFIXES = (".yaml", ".yml")


def discover_workflow_files(directory: str | Path) -> dict[str, RegistryEntry]:
    """Workflow type -> entry for each workflow file directly in ``directory``.

    The builder's fallback when there is no ``workflow_registry.yaml``: a file is a workflow
    file when its top level has a ``workflow_type``; other YAML files are left alone. Two
    files declaring the same type are a ``DefinitionError`` naming both.
    """
    directory = Path(directory)
    if not directory.is_dir():
        return {}
    entries: dict[str, RegistryEntry] = {}
    for path in sorted(directory.iterdir()):
        if path.suffix not in _WORKFLOW_SUFFIXES or not path.is_file():
            continue
        raw = read_yaml_mapping(path)
        workflow_type = raw.get("workflow_type")
        if not isinstance(workflow_type, str) or not workflow_type:
            continue
        if workflow_type in entries:
            raise DefinitionError(
                f"declares workflow_type '{workflow_type}', which "
                f"{entries[workflow_type].config_file} declares too; without a "
                "workflow_registry.yaml each workflow file in the config dir must declare its "
                "own type",
                file=path,
                field="workflow_type",
                line=raw.line_of("workflow_type"),
            )
        entries[workflow_type] = RegistryEntry(type=workflow_type, config_file=str(path))
    return entries
