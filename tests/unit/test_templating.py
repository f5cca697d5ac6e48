"""Environment substitution in definition files and sandboxed Jinja rendering."""

from __future__ import annotations

from typing import Any

import pytest

from ruvon import templating
from ruvon.errors import DefinitionError, ExpressionError, UnsafeExpressionError
from ruvon.templating import MAX_REPEAT, render_template, render_value, substitute_env

ENV = {"HOST": "db.internal", "PORT": "5432", "EMPTY": ""}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("${HOST}", "db.internal"),
        ("postgres://${HOST}:${PORT}/app", "postgres://db.internal:5432/app"),
        ("${HOST:-localhost}", "db.internal"),
        ("${MISSING:-localhost}", "localhost"),
        ("${MISSING:-}", ""),
        ("${EMPTY:-fallback}", "fallback"),  # shell semantics: empty counts as unset
        ("${EMPTY}", ""),
        ("$${HOST}", "${HOST}"),
        ("$${MISSING} and ${PORT}", "${MISSING} and 5432"),
        ("$HOST and {HOST} stay", "$HOST and {HOST} stay"),
    ],
)
def test_substitute_env_strings(text: str, expected: str) -> None:
    assert substitute_env(text, environ=ENV) == expected


def test_substitute_env_recurses_and_leaves_other_values_alone() -> None:
    value = {"db": {"url": "${HOST}", "port": 5432}, "hosts": ["${HOST}", ("${PORT}",)], "${K}": 1}
    assert substitute_env(value, environ=ENV) == {
        "db": {"url": "db.internal", "port": 5432},
        "hosts": ["db.internal", ("5432",)],
        "${K}": 1,  # keys are never substituted
    }


def test_substitute_env_does_not_mutate_input() -> None:
    value = {"a": ["${HOST}"]}
    substitute_env(value, environ=ENV)
    assert value == {"a": ["${HOST}"]}


def test_missing_variable_names_variable_file_and_field() -> None:
    value = {"steps": [{"name": "fetch"}, {"http": {"url": "https://${API_HOST}/v1"}}]}
    with pytest.raises(DefinitionError) as info:
        substitute_env(value, environ=ENV, file="workflows/order.yaml")
    error = info.value
    assert "'API_HOST'" in str(error)
    assert error.file == "workflows/order.yaml"
    assert error.field == "steps[1].http.url"
    assert str(error).startswith("workflows/order.yaml, field 'steps[1].http.url'")


@pytest.mark.parametrize("text", ["${HOST-x}", "${HOST", "${}", "${1ABC}"])
def test_malformed_reference_is_a_definition_error(text: str) -> None:
    with pytest.raises(DefinitionError, match="malformed environment reference"):
        substitute_env({"v": text}, environ=ENV)


def test_substitute_env_defaults_to_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUVON_TEST_TEMPLATING", "from-os")
    assert substitute_env("${RUVON_TEST_TEMPLATING}") == "from-os"


def test_render_template() -> None:
    variables = {"state": {"name": "Ada", "items": [1, 2]}, "limit": 3}
    rendered = render_template("{{ state.name }} has {{ state['items'] | length }}", variables)
    assert rendered == "Ada has 2"
    assert render_template("{% if limit > 2 %}big{% endif %}", variables) == "big"


def test_undefined_variable_is_an_expression_error() -> None:
    with pytest.raises(ExpressionError) as info:
        render_template("Hello {{ nmae }}", {"name": "Ada"})
    assert type(info.value) is ExpressionError
    assert "Hello {{ nmae }}" in str(info.value)
    assert "'nmae' is undefined" in str(info.value)
    assert info.value.__cause__ is not None


@pytest.mark.parametrize(
    "template",
    [
        "{{ ''.__class__.__mro__ }}",
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ cycler.__init__.__globals__.os }}",
        "{{ self.__init__.__globals__ }}",
        "{{ items.append(4) }}",
        "{{ config.update({'a': 1}) }}",
        "{{ 'x' * 100000000 }}",
        "{{ 2 ** 100000 }}",
    ],
)
def test_sandbox_refuses_escapes_and_resource_bombs(template: str) -> None:
    variables: dict[str, Any] = {"items": [1, 2], "config": {"a": 0}}
    with pytest.raises(UnsafeExpressionError) as info:
        render_template(template, variables)
    assert template in str(info.value)
    assert variables == {"items": [1, 2], "config": {"a": 0}}


def test_small_repetition_and_powers_are_fine() -> None:
    assert render_template("{{ '-' * 3 }}{{ 2 ** 10 }}", {}) == "---1024"
    assert render_template(f"{{{{ ('ab' * {MAX_REPEAT}) | length }}}}", {}) == str(2 * MAX_REPEAT)


def test_syntax_error_is_a_definition_error() -> None:
    with pytest.raises(DefinitionError, match="invalid template"):
        render_template("{% if %}", {})


def test_other_render_failures_are_expression_errors() -> None:
    with pytest.raises(ExpressionError, match="ZeroDivisionError"):
        render_template("{{ 1 / n }}", {"n": 0})


def test_render_value_renders_nested_strings_only() -> None:
    value = {
        "url": "https://api/{{ state.id }}",
        "body": {"tags": ["{{ state.tag }}", 3, None], "pair": ("{# note #}x", "plain {x}")},
        "literal": "no template here",
    }
    rendered = render_value(value, {"state": {"id": 7, "tag": "vip"}})
    assert rendered == {
        "url": "https://api/7",
        "body": {"tags": ["vip", 3, None], "pair": ("x", "plain {x}")},
        "literal": "no template here",
    }


def test_plain_strings_skip_jinja(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(template: str) -> None:
        raise AssertionError(f"compiled {template!r}")

    monkeypatch.setattr(templating, "_compile", fail)
    assert render_value(["a {b} c", "$x"], {}) == ["a {b} c", "$x"]


def test_each_template_is_compiled_once() -> None:
    templating._compile.cache_clear()
    for n in range(3):
        assert render_template("n={{ n }}", {"n": n}) == f"n={n}"
    assert templating._compile.cache_info().misses == 1
