"""Bad workflow and registry files: each fails with the exact error class, naming its culprit.

Every case writes YAML into ``tmp_path`` and loads it the way users do. The assertions pin the
error class exactly (``type(exc) is X``, since a subclass could hide a wrong one), the location
attributes (``file``, ``step``, ``field``, ``line``), that the rendered message repeats them, and
that the message is one readable line rather than a pydantic dump.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

from ruvon.builder import WorkflowBuilder
from ruvon.definitions.loader import load_workflow_file
from ruvon.definitions.registry_file import load_registry
from ruvon.errors import (
    DefinitionError,
    ExpressionError,
    FunctionImportError,
    UnsafeExpressionError,
)
from ruvon.steps.registry import DEFAULT_HANDLERS

FIX = "tests.unit.bad_input_fixtures"
OK = f"{FIX}.ok_step"
UNSET_VAR = "RUVON_TEST_SURELY_UNSET_VARIABLE"


def write(tmp_path: Path, text: str, name: str = "workflow.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def workflow_with(steps: str, header: str = "") -> str:
    """A workflow file whose steps list is ``steps`` (YAML list items, unindented)."""
    body = textwrap.indent(textwrap.dedent(steps).strip("\n"), "  ")
    return f"workflow_type: BadInput\n{textwrap.dedent(header)}steps:\n{body}\n"


def line_of(path: Path, needle: str) -> int:
    """1-based number of the first line of ``path`` containing ``needle``."""
    for number, text in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if needle in text:
            return number
    raise AssertionError(f"{needle!r} not in {path}")


def assert_readable(exc: BaseException) -> None:
    """One line, no pydantic error dump."""
    text = str(exc)
    assert text
    assert "\n" not in text, text
    assert "https://errors.pydantic.dev" not in text, text
    assert "validation error" not in text.lower(), text


def load_error(path: Path, expected: type[DefinitionError] = DefinitionError) -> DefinitionError:
    with pytest.raises(expected) as info:
        load_workflow_file(path, rules=DEFAULT_HANDLERS)
    exc = info.value
    assert type(exc) is expected, f"{type(exc).__name__}: {exc}"
    assert exc.file == str(path)
    assert str(path) in str(exc)
    assert_readable(exc)
    return exc


def assert_located(
    exc: DefinitionError, path: Path, *, step: str | None, field: str | None, line: int | None
) -> None:
    """The attributes point at the culprit and the message says so too."""
    assert (exc.step, exc.field, exc.line) == (step, field, line), str(exc)
    if step is not None:
        assert f"step '{step}'" in str(exc)
    if field is not None:
        assert f"field '{field}'" in str(exc)
    if line is not None:
        assert f"{path}:{line}" in str(exc)


# ---------------------------------------------------------------------- malformed files


def test_bad_indentation_points_at_the_misindented_line(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        f"""
        workflow_type: BadInput
        steps:
          - name: first
            function: {OK}
           type: STANDARD
        """,
    )
    exc = load_error(path)
    assert "malformed YAML" in str(exc)
    assert exc.line == line_of(path, "   type: STANDARD")


def test_unclosed_quote_points_at_the_line_where_the_quote_opens(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        f"""
        workflow_type: BadInput
        description: "never closed
        steps:
          - name: first
            function: {OK}
        """,
    )
    exc = load_error(path)
    assert "malformed YAML" in str(exc)
    assert "quoted scalar" in str(exc)
    assert exc.line == line_of(path, '"never closed')


@pytest.mark.parametrize(
    ("text", "found"),
    [("", "found empty"), ("# only a comment\n", "found empty"), ("- a\n- b\n", "found a list")],
    ids=["empty", "comment-only", "top-level-list"],
)
def test_top_level_must_be_a_mapping(tmp_path: Path, text: str, found: str) -> None:
    exc = load_error(write(tmp_path, text))
    assert "expected a mapping at the top level" in str(exc)
    assert found in str(exc)


def test_missing_file_is_named(tmp_path: Path) -> None:
    exc = load_error(tmp_path / "nope.yaml")
    assert "file not found" in str(exc)


def test_duplicate_yaml_key_names_the_key_and_its_second_line(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        f"""
        workflow_type: BadInput
        steps:
          - name: first
            function: {OK}
            automate_next: true
            function: {FIX}.compensate_ok
        """,
    )
    exc = load_error(path)
    assert "duplicate key 'function'" in str(exc)
    assert_located(exc, path, step=None, field="function", line=line_of(path, "compensate_ok"))


def test_unknown_top_level_key(tmp_path: Path) -> None:
    path = write(tmp_path, workflow_with(f"- name: first\n  function: {OK}", "sage_mode: true\n"))
    exc = load_error(path)
    assert "unknown key 'sage_mode'" in str(exc)
    assert_located(exc, path, step=None, field="sage_mode", line=line_of(path, "sage_mode"))


@pytest.mark.parametrize("value", ["12", "-1", "high", "2.5", "true"])
def test_a_priority_out_of_range_names_the_field_and_line(tmp_path: Path, value: str) -> None:
    header = f"priority: {value}\n"
    path = write(tmp_path, workflow_with(f"- name: first\n  function: {OK}", header))
    exc = load_error(path)
    assert_located(exc, path, step=None, field="priority", line=line_of(path, "priority"))
    assert_readable(exc)


@pytest.mark.parametrize(
    ("header", "says"),
    [
        ("timeout: soon\n", ("valid number", "'soon'")),
        ("timeout: 0\n", ("greater than 0",)),
        ("timeout_seconds: -5\n", ("greater than 0", "-5")),
    ],
    ids=["not-a-number", "zero", "negative-alias"],
)
def test_bad_workflow_timeout(tmp_path: Path, header: str, says: tuple[str, ...]) -> None:
    path = write(tmp_path, workflow_with(f"- name: first\n  function: {OK}", header))
    exc = load_error(path)
    for text in says:
        assert text in str(exc), exc
    key = header.partition(":")[0]
    assert_located(exc, path, step=None, field=key, line=line_of(path, key))


def test_workflow_timeout_loads_in_seconds_under_either_name(tmp_path: Path) -> None:
    for key in ("timeout", "timeout_seconds"):
        path = write(tmp_path, workflow_with(f"- name: first\n  function: {OK}", f"{key}: 90\n"))
        assert load_workflow_file(path, rules=DEFAULT_HANDLERS).spec.timeout == 90


def test_missing_steps(tmp_path: Path) -> None:
    path = write(tmp_path, "workflow_type: BadInput\ndescription: no steps\n")
    exc = load_error(path)
    assert "required key 'steps' is missing" in str(exc)
    assert exc.field == "steps"


def test_misspelt_top_level_steps_reports_the_misspelling(tmp_path: Path) -> None:
    path = write(tmp_path, f"workflow_type: BadInput\nstep:\n  - name: a\n    function: {OK}\n")
    exc = load_error(path)
    assert "unknown key 'step'" in str(exc)
    assert exc.line == 2


def test_duplicate_step_names_point_at_the_second(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        workflow_with(
            f"""
            - name: charge
              function: {OK}
            - name: ship
              function: {OK}
            - name: charge
              function: {FIX}.compensate_ok
            """
        ),
    )
    exc = load_error(path)
    assert "duplicate step name (also step #1)" in str(exc)
    assert_located(exc, path, step="charge", field="name", line=line_of(path, "compensate_ok") - 1)


# ---------------------------------------------------------------------- one bad step


@dataclass(frozen=True)
class BadStep:
    """A workflow whose step ``broken`` breaks one rule."""

    id: str
    steps: str
    field: str | None
    marker: str  # text on the line the error must point at
    says: tuple[str, ...]
    error: type[DefinitionError] = DefinitionError


NEXT = f"- name: next\n  function: {OK}\n"

BAD_STEPS = [
    # Schema: unknown keys, wrong types, out-of-range values.
    BadStep(
        "unknown-step-key",
        f"- name: broken\n  fucntion: {OK}\n",
        "fucntion",
        "fucntion",
        ("unknown key 'fucntion'", "check the spelling"),
    ),
    BadStep(
        "unknown-step-type",
        f"- name: broken\n  type: STANDRAD\n  function: {OK}\n",
        "type",
        "STANDRAD",
        ("'STANDRAD'", "'STANDARD'"),
    ),
    BadStep(
        "negative-retry-attempts",
        f"- name: broken\n  function: {OK}\n  retry:\n    max_attempts: -1\n",
        "retry.max_attempts",
        "max_attempts",
        ("greater than or equal to 1", "-1"),
    ),
    BadStep(
        "timeout-not-a-number",
        f"- name: broken\n  function: {OK}\n  timeout: soon\n",
        "timeout",
        "soon",
        ("valid number", "'soon'"),
    ),
    BadStep(
        "route-condition-without-target",
        "- name: broken\n  type: DECISION\n  routes:\n    - condition: state.amount > 1\n" + NEXT,
        "routes.0",
        "condition: state.amount",
        ("needs both 'condition' and 'target'",),
    ),
    # Routes.
    BadStep(
        "route-to-missing-step",
        "- name: broken\n  type: DECISION\n  routes:\n    - condition: state.amount > 1\n"
        "      target: nowhere\n" + NEXT,
        "routes[0].target",
        "target: nowhere",
        ("'nowhere'", "not a step of this workflow", "broken, next"),
    ),
    BadStep(
        "route-default-to-missing-step",
        "- name: broken\n  type: DECISION\n  routes:\n    - condition: state.amount > 1\n"
        "      target: next\n    - default: nowhere\n" + NEXT,
        "routes[1].default",
        "default: nowhere",
        ("route #2 targets 'nowhere'",),
    ),
    # Function paths.
    BadStep(
        "function-module-missing",
        "- name: broken\n  function: no_such_module_for_ruvon_tests.step\n",
        "function",
        "no_such_module_for_ruvon_tests",
        ("cannot import 'no_such_module_for_ruvon_tests.step'", "PYTHONPATH"),
        FunctionImportError,
    ),
    BadStep(
        "function-attribute-missing",
        f"- name: broken\n  function: {FIX}.missing_function\n",
        "function",
        "missing_function",
        (f"module '{FIX}' has no attribute 'missing_function'",),
        FunctionImportError,
    ),
    BadStep(
        "function-takes-one-arg",
        f"- name: broken\n  function: {FIX}.one_arg\n",
        "function",
        "one_arg",
        (f"'{FIX}.one_arg' has signature (state", "fn(state, context)"),
        FunctionImportError,
    ),
    BadStep(
        "function-needs-three-args",
        f"- name: broken\n  function: {FIX}.three_args\n",
        "function",
        "three_args",
        ("fn(state, context)", "positional-only parameter 'extra' is never passed"),
        FunctionImportError,
    ),
    BadStep(
        "function-not-callable",
        f"- name: broken\n  function: {FIX}.NOT_CALLABLE\n",
        "function",
        "NOT_CALLABLE",
        (f"'{FIX}.NOT_CALLABLE' is a int, not a function",),
        FunctionImportError,
    ),
    BadStep(
        "compensate-function-missing",
        f"- name: broken\n  type: COMPENSATABLE\n  function: {OK}\n"
        f"  compensate_function: {FIX}.undo_missing\n",
        "compensate_function",
        "undo_missing",
        ("cannot import", "'undo_missing'"),
        FunctionImportError,
    ),
    BadStep(
        "task-function-wrong-signature",
        f"- name: broken\n  type: PARALLEL\n  iterate_over: state.items\n"
        f"  task_function: {FIX}.one_arg\n",
        "task_function",
        "task_function",
        ("one_arg", "fn(state, context)"),
        FunctionImportError,
    ),
    BadStep(
        "static-task-function-missing",
        f"- name: broken\n  type: PARALLEL\n  tasks:\n    - name: t1\n"
        f"      function: {FIX}.task_missing\n",
        "tasks[0].function",
        "task_missing",
        ("'task_missing'",),
        FunctionImportError,
    ),
    BadStep(
        "merge-function-missing",
        f"- name: broken\n  type: PARALLEL\n  tasks:\n    - name: t1\n      function: {OK}\n"
        f"  merge_function_path: {FIX}.merge_missing\n",
        "merge_function_path",
        "merge_missing",
        ("'merge_missing'",),
        FunctionImportError,
    ),
    # Input models.
    BadStep(
        "input-model-not-importable",
        f"- name: broken\n  type: HUMAN_IN_LOOP\n  input_model: {FIX}.MissingModel\n",
        "input_model",
        "MissingModel",
        (f"cannot import input model '{FIX}.MissingModel'",),
    ),
    BadStep(
        "input-model-not-a-model",
        f"- name: broken\n  type: HUMAN_IN_LOOP\n  input_model: {FIX}.NotAModel\n",
        "input_model",
        "NotAModel",
        ("is not a pydantic BaseModel subclass",),
    ),
    # What each step type requires.
    BadStep(
        "standard-without-function",
        "- name: broken\n  type: STANDARD\n",
        "function",
        "name: broken",
        ("a STANDARD step needs 'function'",),
    ),
    BadStep(
        "compensatable-without-compensate-function",
        f"- name: broken\n  type: COMPENSATABLE\n  function: {OK}\n",
        "compensate_function",
        "name: broken",
        ("needs 'compensate_function'",),
    ),
    BadStep(
        "decision-without-routes-or-function",
        "- name: broken\n  type: DECISION\n" + NEXT,
        "routes",
        "name: broken",
        ("a DECISION step needs 'routes'",),
    ),
    BadStep(
        "parallel-without-tasks-or-iterate-over",
        "- name: broken\n  type: PARALLEL\n",
        "tasks",
        "name: broken",
        ("needs 'tasks' or 'iterate_over'",),
    ),
    BadStep(
        "loop-without-mode",
        f"- name: broken\n  type: LOOP\n  function: {OK}\n",
        "mode",
        "name: broken",
        ("a LOOP step needs 'mode'",),
    ),
    BadStep(
        "while-loop-without-max-iterations",
        f"- name: broken\n  type: LOOP\n  mode: WHILE\n  while_condition: state.n < 3\n"
        f"  function: {OK}\n",
        "max_iterations",
        "name: broken",
        ("a WHILE loop needs 'max_iterations'",),
    ),
    BadStep(
        "iterate-loop-without-iterate-over",
        f"- name: broken\n  type: LOOP\n  mode: ITERATE\n  function: {OK}\n",
        "iterate_over",
        "name: broken",
        ("an ITERATE loop needs 'iterate_over'",),
    ),
    BadStep(
        "http-without-http-config",
        "- name: broken\n  type: HTTP\n  output_key: response\n",
        "http_config",
        "name: broken",
        ("needs 'http_config'",),
    ),
    BadStep(
        "http-without-output-key",
        "- name: broken\n  type: HTTP\n  http_config:\n    url: https://example.invalid/\n",
        "output_key",
        "name: broken",
        ("needs 'output_key'",),
    ),
    BadStep(
        "wait-with-both",
        "- name: broken\n  type: WAIT\n  wait_seconds: 5\n  wait_until: '2030-01-01T00:00:00Z'\n",
        "wait_seconds",
        "wait_seconds: 5",
        ("exactly one of 'wait_seconds' or 'wait_until'",),
    ),
    BadStep(
        "wait-with-neither",
        "- name: broken\n  type: WAIT\n",
        "wait_seconds",
        "name: broken",
        ("exactly one of 'wait_seconds' or 'wait_until'",),
    ),
    BadStep(
        "cron-invalid",
        "- name: broken\n  type: CRON_SCHEDULE\n  target_workflow_type: Nightly\n"
        "  cron_expression: every tuesday\n",
        "cron_expression",
        "every tuesday",
        ("'every tuesday' is not a valid cron expression",),
    ),
    BadStep(
        "sub-workflow-without-target",
        "- name: broken\n  type: SUB_WORKFLOW\n",
        "target_workflow_type",
        "name: broken",
        ("a SUB_WORKFLOW step needs 'target_workflow_type'",),
    ),
]


@pytest.mark.parametrize("case", BAD_STEPS, ids=[case.id for case in BAD_STEPS])
def test_bad_step_names_file_step_field_and_line(tmp_path: Path, case: BadStep) -> None:
    path = write(tmp_path, workflow_with(case.steps))
    exc = load_error(path, case.error)
    assert_located(exc, path, step="broken", field=case.field, line=line_of(path, case.marker))
    for fragment in case.says:
        assert fragment in exc.reason, f"{fragment!r} not in {exc.reason!r}"


# ---------------------------------------------------------------------- route conditions


@pytest.mark.parametrize(
    ("condition", "cause", "says"),
    [
        ("state.amount >", ExpressionError, ("invalid expression 'state.amount >'",)),
        (
            "state.__class__ == 'x'",
            UnsafeExpressionError,
            ("private attribute '__class__'", "`state.__class__`"),
        ),
        (
            "len(state.items) > 1",
            UnsafeExpressionError,
            ("function calls not allowed", "`len(state.items)`"),
        ),
    ],
    ids=["syntax-error", "dunder-class", "function-call"],
)
def test_bad_route_condition_is_a_definition_error_quoting_the_fragment(
    tmp_path: Path, condition: str, cause: type[ExpressionError], says: tuple[str, ...]
) -> None:
    path = write(
        tmp_path,
        workflow_with(
            f"""
            - name: broken
              type: DECISION
              routes:
                - target: next
                  condition: "{condition}"
            - name: next
              function: {OK}
            """
        ),
    )
    exc = load_error(path, DefinitionError)
    # The loader wraps the expression error; the sandbox's verdict is the chained context.
    assert type(exc.__context__) is cause
    line = line_of(path, "condition:")
    assert_located(exc, path, step="broken", field="routes[0].condition", line=line)
    for fragment in says:
        assert fragment in exc.reason


# ---------------------------------------------------------------------- whole-workflow rules

CYCLE = """
- name: fetch
  function: {ok}{limit}
- name: check
  type: DECISION
  routes:
    - condition: state.done
      target: finish
    - default: fetch
- name: finish
  function: {ok}
"""


def test_route_cycle_without_max_iterations_names_the_cycle(tmp_path: Path) -> None:
    path = write(tmp_path, workflow_with(CYCLE.format(ok=OK, limit="")))
    exc = load_error(path)
    assert "fetch -> check -> fetch" in exc.reason
    assert "max_iterations" in exc.reason
    assert_located(exc, path, step="check", field="routes", line=line_of(path, "routes:"))


def test_same_cycle_with_max_iterations_loads(tmp_path: Path) -> None:
    limit = "\n  max_iterations: 5"
    definition = load_workflow_file(
        write(tmp_path, workflow_with(CYCLE.format(ok=OK, limit=limit))), rules=DEFAULT_HANDLERS
    )
    assert [step.name for step in definition.steps] == ["fetch", "check", "finish"]


def test_unset_environment_variable_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(UNSET_VAR, raising=False)
    path = write(
        tmp_path,
        workflow_with(
            f"""
            - name: first
              function: {OK}
            - name: broken
              function: {OK}
              queue: "${{{UNSET_VAR}}}"
            """
        ),
    )
    exc = load_error(path)
    assert f"environment variable '{UNSET_VAR}' is not set" in exc.reason
    assert_located(exc, path, step="broken", field="queue", line=line_of(path, UNSET_VAR))


@pytest.mark.parametrize(
    ("model", "says"),
    [
        (f"{FIX}.MissingState", f"cannot import state model '{FIX}.MissingState'"),
        ("no_such_module_for_ruvon_tests.State", "no module found"),
        (f"{FIX}.NotAModel", "is not a pydantic model class"),
        (f"{FIX}.ok_step", "is not a pydantic model class"),
    ],
    ids=["attribute-missing", "module-missing", "plain-class", "function"],
)
def test_bad_state_model(tmp_path: Path, model: str, says: str) -> None:
    path = write(
        tmp_path,
        workflow_with(f"- name: first\n  function: {OK}", f"initial_state_model: {model}\n"),
    )
    exc = load_error(path)
    assert says in exc.reason
    field = "initial_state_model_path"
    assert_located(exc, path, step=None, field=field, line=line_of(path, "initial_state_model"))


# ---------------------------------------------------------------------- registries


def test_registry_child_type_unknown_fails_validate_all(tmp_path: Path) -> None:
    parent = write(
        tmp_path,
        workflow_with(
            f"""
            - name: first
              function: {OK}
            - name: spawn
              type: SUB_WORKFLOW
              target_workflow_type: Ghost
            """
        ).replace("BadInput", "Parent"),
        "parent.yaml",
    )
    registry = write(
        tmp_path, "workflows:\n  - type: Parent\n    config_file: parent.yaml\n", "registry.yaml"
    )
    builder = WorkflowBuilder(workflow_registry=registry)
    with pytest.raises(DefinitionError) as info:
        builder.validate_all()
    exc = info.value
    assert type(exc) is DefinitionError
    assert_readable(exc)
    assert exc.file == str(parent)
    assert_located(exc, parent, step="spawn", field="target_workflow_type", line=None)
    assert "'Ghost'" in exc.reason
    assert "registered: Parent" in exc.reason


def registry_error(path: Path) -> DefinitionError:
    with pytest.raises(DefinitionError) as info:
        load_registry(path)
    exc = info.value
    assert type(exc) is DefinitionError
    assert exc.file == str(path)
    assert_readable(exc)
    return exc


def test_registry_listing_a_missing_file(tmp_path: Path) -> None:
    write(tmp_path, workflow_with(f"- name: first\n  function: {OK}"), "real.yaml")
    path = write(
        tmp_path,
        """
        workflows:
          - type: BadInput
            config_file: real.yaml
          - type: Lost
            config_file: lost.yaml
        """,
        "registry.yaml",
    )
    exc = registry_error(path)
    assert "workflow type 'Lost'" in exc.reason
    assert "'lost.yaml'" in exc.reason
    assert "does not exist" in exc.reason
    assert_located(exc, path, step=None, field="config_file", line=line_of(path, "lost.yaml"))
    # The builder reads the registry when it is constructed, so the error surfaces there.
    with pytest.raises(DefinitionError, match=r"lost\.yaml"):
        WorkflowBuilder(workflow_registry=path)


def test_registry_with_the_same_type_twice(tmp_path: Path) -> None:
    write(tmp_path, workflow_with(f"- name: first\n  function: {OK}"), "real.yaml")
    path = write(
        tmp_path,
        """
        workflows:
          - type: BadInput
            config_file: real.yaml
          - type: BadInput
            config_file: real.yaml
        """,
        "registry.yaml",
    )
    exc = registry_error(path)
    assert "workflow type 'BadInput' is registered twice" in exc.reason
    assert_located(exc, path, step=None, field="type", line=4)


def test_registry_typo_reports_the_unknown_key(tmp_path: Path) -> None:
    path = write(
        tmp_path, "workflows:\n  - type: BadInput\n    confg_file: real.yaml\n", "registry.yaml"
    )
    exc = registry_error(path)
    assert "unknown key 'confg_file'" in exc.reason
    assert exc.line == 3


def test_registry_that_is_malformed_yaml(tmp_path: Path) -> None:
    path = write(tmp_path, "workflows:\n  - type: 'BadInput\n    config_file: x.yaml\n", "r.yaml")
    exc = registry_error(path)
    assert "malformed YAML" in exc.reason
    assert exc.line == 2


# ---------------------------------------------------------------------- every problem at once
def test_a_file_with_several_problems_reports_them_all(tmp_path: Path) -> None:
    """The error raised is the first problem; ``problems`` has all, each located."""
    path = write(
        tmp_path,
        workflow_with(
            """
            - name: A
              function: tests.unit.test_definition_errors.nope
            - name: A
              function: tests.unit.test_definition_errors.write
            - name: Route
              type: DECISION
              routes:
                - default: Nowhere
            """
        ),
    )
    exc = load_error(path, FunctionImportError)
    assert_located(exc, path, step="A", field="function", line=4)
    assert str(exc).endswith("(and 2 more problems; `ruvon validate` lists them all)")
    assert exc.problems[0] is exc
    located = [(p.step, p.field, p.line) for p in exc.problems]
    assert located == [("A", "function", 4), ("A", "name", 5), ("Route", "routes[0].default", 10)]
    for problem in exc.problems:
        assert_readable(problem)
        assert problem.file == str(path)


def test_a_file_with_one_problem_keeps_its_message(tmp_path: Path) -> None:
    path = write(tmp_path, workflow_with("- name: A\n  function: tests.unit.nope.f\n"))
    exc = load_error(path, FunctionImportError)
    assert exc.problems == (exc,)
    assert "more problem" not in str(exc)


@pytest.mark.parametrize(
    ("block", "field", "needle", "says"),
    [
        ("concurrency: {key: c, limit: 2, limt: 3}", "concurrency.limt", "limt", "limt"),
        ("concurrency: {key: c, limit: -1}", "concurrency.limit", "limit", "greater than"),
        ("concurrency: {key: c, limit: '2'}", "concurrency.limit", "limit", "integer"),
        ("concurrency: {limit: 2}", "concurrency.key", "concurrency", "key"),
        ("concurrency: {key: '{{ state.x ', limit: 2}", "concurrency.key", "concurrency",
         "invalid template"),
        ("rate_limit: {key: api, per_second: 0}", "rate_limit.per_second", "rate_limit",
         "greater than 0"),
        ("rate_limit: {key: api, per_second: 5, burst: 0}", "rate_limit.burst", "rate_limit",
         "greater than or equal to 1"),
        ("rate_limit: {key: api, per_second: 5, brust: 2}", "rate_limit.brust", "rate_limit",
         "brust"),
    ],
    ids=["unknown-key", "negative-limit", "text-limit", "no-key", "bad-template", "zero-rate",
         "zero-burst", "rate-typo"],
)  # fmt: skip
def test_a_bad_flow_control_block_names_step_field_and_line(
    tmp_path: Path, block: str, field: str, needle: str, says: str
) -> None:
    path = write(tmp_path, workflow_with(f"- name: call\n  function: {OK}\n  {block}"))
    exc = load_error(path)
    assert says in str(exc), exc
    assert_located(exc, path, step="call", field=field, line=line_of(path, needle))


def test_flow_control_on_a_step_that_calls_no_function_is_refused(tmp_path: Path) -> None:
    steps = (f"- name: call\n  function: {OK}\n"
             "- name: pause\n  type: WAIT\n  wait_seconds: 1\n"
             "  rate_limit: {key: api, per_second: 5}")  # fmt: skip
    path = write(tmp_path, workflow_with(steps))
    exc = load_error(path)
    assert "WAIT step calls none" in str(exc) and "ASYNC" in str(exc)
    assert_located(exc, path, step="pause", field="rate_limit", line=line_of(path, "rate_limit"))


def test_a_workflow_concurrency_key_that_cannot_compile_is_refused(tmp_path: Path) -> None:
    header = "concurrency: {key: '{% if %}', limit: 1}\n"
    path = write(tmp_path, workflow_with(f"- name: first\n  function: {OK}", header))
    exc = load_error(path)
    assert "invalid template" in str(exc)
    assert_located(exc, path, step=None, field="concurrency.key", line=line_of(path, "concurrency"))
