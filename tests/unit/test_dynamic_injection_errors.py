"""Bad ``dynamic_injection`` blocks: each is a DefinitionError naming file, line, step, field."""

from __future__ import annotations

from pathlib import Path

from ruvon.definitions.loader import load_workflow_file
from ruvon.errors import FunctionImportError
from ruvon.steps.registry import DEFAULT_HANDLERS
from tests.unit.test_definition_errors import (
    OK,
    assert_located,
    line_of,
    load_error,
    workflow_with,
    write,
)


def rule(body: str) -> str:
    """A workflow whose step 'judge' carries one rule (``body``: the rule's keys)."""
    indented = "\n".join(f"        {line}" for line in body.strip("\n").splitlines())
    return workflow_with(
        f"- name: judge\n  function: {OK}\n  dynamic_injection:\n    rules:\n      -\n{indented}\n"
        f"- name: ship\n  function: {OK}"
    )


def test_a_valid_rule_lays_its_steps_out_after_the_step(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        rule(
            f"condition_key: risk.level\nvalue_match: high\naction: INSERT_AFTER_CURRENT\n"
            f"steps_to_insert:\n  - name: review\n    function: {OK}"
        ),
    )
    definition = load_workflow_file(path, rules=DEFAULT_HANDLERS)
    assert [s.name for s in definition.steps] == ["judge", "review", "ship"]
    assert definition.steps[1].injected_by is not None
    assert definition.steps[1].injected_by.key == "judge#0"
    snapshot_steps = definition.snapshot()["steps"]
    assert [s["name"] for s in snapshot_steps] == ["judge", "review", "ship"]


def test_a_rule_needs_exactly_one_test(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        rule(
            f"condition_key: risk\naction: INSERT_AFTER_CURRENT\n"
            f"steps_to_insert:\n  - name: review\n    function: {OK}"
        ),
    )
    exc = load_error(path)
    assert "exactly one of 'value_match' and 'value_is_not'" in exc.reason
    assert_located(
        exc,
        path,
        step="judge",
        field="dynamic_injection.rules.0",
        line=line_of(path, "condition_key"),
    )


def test_an_unknown_action_names_the_field(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        rule(
            f"condition_key: risk\nvalue_match: high\naction: INSERT_BEFORE\n"
            f"steps_to_insert:\n  - name: review\n    function: {OK}"
        ),
    )
    exc = load_error(path)
    assert "INSERT_AFTER_CURRENT" in exc.reason
    assert_located(
        exc,
        path,
        step="judge",
        field="dynamic_injection.rules.0.action",
        line=line_of(path, "action"),
    )


def test_an_inserted_step_is_checked_like_any_step(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        rule(
            "condition_key: risk\nvalue_match: high\naction: INSERT_AFTER_CURRENT\n"
            "steps_to_insert:\n  - name: review\n    function: no.such.module.fn"
        ),
    )
    exc = load_error(path, expected=FunctionImportError)
    assert_located(exc, path, step="review", field="function", line=line_of(path, "no.such"))


def test_an_inserted_step_may_not_take_a_name_in_use(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        rule(
            "condition_key: risk\nvalue_match: high\naction: INSERT_AFTER_CURRENT\n"
            f"steps_to_insert:\n  - name: ship\n    function: {OK}"
        ),
    )
    exc = load_error(path)
    assert "'ship' is already taken by step #2" in exc.reason
    assert_located(
        exc,
        path,
        step="judge",
        field="dynamic_injection.rules[0].steps_to_insert[0].name",
        line=line_of(path, "- name: ship"),
    )


def test_injection_inside_inserted_steps_is_refused(tmp_path: Path) -> None:
    nested = (
        "    dynamic_injection:\n      rules:\n        - condition_key: again\n"
        "          value_match: 1\n          action: INSERT_AFTER_CURRENT\n"
        f"          steps_to_insert:\n            - name: deeper\n              function: {OK}"
    )
    path = write(
        tmp_path,
        rule(
            "condition_key: risk\nvalue_match: high\naction: INSERT_AFTER_CURRENT\n"
            f"steps_to_insert:\n  - name: review\n    function: {OK}\n{nested}"
        ),
    )
    exc = load_error(path)
    assert "not inside a loop_body or steps_to_insert" in exc.reason
    lines = path.read_text().splitlines()
    line = [n for n, text in enumerate(lines, 1) if "dynamic_injection" in text][1]  # the inner
    assert_located(exc, path, step="review", field="dynamic_injection", line=line)
