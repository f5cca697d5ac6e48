"""Route conditions: what they can read, what they compute, and what the sandbox refuses."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel, ConfigDict, computed_field

from ruvon.errors import ExpressionError, UnsafeExpressionError
from ruvon.expressions import (
    MAX_DEPTH,
    MAX_EXPRESSION_LENGTH,
    CompiledExpression,
    compile_expression,
    evaluate_expression,
)


class Address(BaseModel):
    city: str
    zip: str | None = None


class Customer(BaseModel):
    name: str
    address: Address


class OrderState(BaseModel):
    amount: int = 0
    country: str = "US"
    risk_flags: list[str] = []
    error: str | None = None
    customer: Customer | None = None
    items: list[str] = []

    @computed_field  # type: ignore[prop-decorator]
    @property
    def is_large(self) -> bool:
        return self.amount > 1000


class LooseState(BaseModel):
    model_config = ConfigDict(extra="allow")

    declared: int = 1


def order(**fields: Any) -> OrderState:
    return OrderState(**fields)


def both(**fields: Any) -> list[Any]:
    """The same state as a pydantic model and as a dict: the rules must not differ."""
    model = order(**fields)
    return [model, model.model_dump()]


@pytest.mark.parametrize("state", both(amount=20000, country="US"))
def test_amount_and_country(state: Any) -> None:
    assert evaluate_expression("state.amount > 10000 and state.country == 'US'", state) is True
    assert evaluate_expression("state.amount > 10000 and state.country == 'FR'", state) is False


@pytest.mark.parametrize("state", both(risk_flags=["velocity", "fraud"]))
def test_membership_in_list(state: Any) -> None:
    assert evaluate_expression("'fraud' in state.risk_flags", state) is True
    assert evaluate_expression("'chargeback' not in state.risk_flags", state) is True


@pytest.mark.parametrize("state", both())
def test_error_is_not_none_when_unset(state: Any) -> None:
    assert evaluate_expression("state.error is not None", state) is False
    assert evaluate_expression("state.error is None", state) is True


@pytest.mark.parametrize("state", both(error="boom"))
def test_error_is_not_none_when_set(state: Any) -> None:
    assert evaluate_expression("state.error is not None", state) is True


@pytest.mark.parametrize("source", ["True", "true", "not false", "null is None"])
def test_boolean_literals_and_yaml_aliases(source: str) -> None:
    assert evaluate_expression(source, {}) is True


@pytest.mark.parametrize(
    "state", both(customer={"name": "Ada", "address": {"city": "London", "zip": "N1"}})
)
def test_nested_attribute_on_model_and_dict(state: Any) -> None:
    assert evaluate_expression("state.customer.address.city", state) == "London"
    assert evaluate_expression("state['customer']['address'].zip", state) == "N1"


@pytest.mark.parametrize("state", both(items=["first", "second"]))
def test_list_index_and_slice(state: Any) -> None:
    assert evaluate_expression("state.items[0]", state) == "first"
    assert evaluate_expression("state.items[-1]", state) == "second"
    assert evaluate_expression("state.items[1:]", state) == ["second"]


def test_items_on_dict_state_is_the_key_not_the_method() -> None:
    assert evaluate_expression("state.items[0]", {"items": ["x"]}) == "x"


@pytest.mark.parametrize("state", both())
@pytest.mark.parametrize(
    "source",
    [
        "state.missing",
        "state['missing']",
        "state.customer.address.zip",  # looking into None gives None
        "state.items[3]",  # out of range gives None
    ],
)
def test_missing_data_is_none(state: Any, source: str) -> None:
    assert evaluate_expression(source, state) is None


def test_model_computed_and_extra_fields_are_readable() -> None:
    assert evaluate_expression("state.is_large", order(amount=5000)) is True
    loose = LooseState.model_validate({"bonus": 7})
    assert evaluate_expression("state.bonus + state.declared", loose) == 8


@pytest.mark.parametrize("state", both())
def test_in_state_tests_for_a_field(state: Any) -> None:
    assert evaluate_expression("'amount' in state and 'nope' not in state", state) is True


def test_non_string_expression_is_rejected() -> None:
    with pytest.raises(ExpressionError, match="must be a string, got bool"):
        compile_expression(True)  # type: ignore[arg-type]


def test_model_methods_are_not_fields() -> None:
    assert evaluate_expression("state.model_dump", order()) is None


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("1 + 2 * 3 - 4", 3),
        ("7 // 2 + 7 % 2", 4),
        ("7 / 2", 3.5),
        ("-state.n + +1", -4),
        ("1 < state.n <= 5", True),
        ("1 < state.n < 3", False),
        ("'big' if state.n > 3 else 'small'", "big"),
        ("state.n or 9", 5),
        ("0 and state.n", 0),
        ("state.n in (1, 5) and state.n in [5] and state.n in {5}", True),
        ("{'a': state.n, 0: ''}", {"a": 5, 0: ""}),
        ("'ab' + 'cd'", "abcd"),
        ("extra_limit > state.n", True),
    ],
)
def test_operators(source: str, expected: Any) -> None:
    assert evaluate_expression(source, {"n": 5}, {"extra_limit": 10}) == expected


def test_whitespace_from_yaml_block_scalars_is_ignored() -> None:
    assert evaluate_expression("\n  state.n == 1\n", {"n": 1}) is True


def test_compiled_expression_is_reusable() -> None:
    compiled = compile_expression("state.amount > limit")
    assert isinstance(compiled, CompiledExpression)
    assert compiled.source == "state.amount > limit"
    assert compiled.evaluate({"amount": 5}, {"limit": 1}) is True
    assert compiled.evaluate({"amount": 5}, {"limit": 10}) is False


def test_unknown_name_is_named() -> None:
    with pytest.raises(ExpressionError, match="unknown name 'amount'") as info:
        evaluate_expression("amount > 5", {"amount": 6})
    assert type(info.value) is ExpressionError


@pytest.mark.parametrize("reserved", ["state", "true"])
def test_extra_cannot_shadow_reserved_names(reserved: str) -> None:
    with pytest.raises(ExpressionError, match=reserved):
        evaluate_expression("1", {}, {reserved: 1})


@pytest.mark.parametrize(
    ("source", "culprit"),
    [
        ("state.__class__", "__class__"),
        ("state.items.__len__()", "state.items.__len__()"),
        ("().__class__.__bases__", "__bases__"),
        ("open('x')", "open('x')"),
        ("__import__('os')", "__import__('os')"),
        ("[x for x in state.items]", "[x for x in state.items]"),
        ("{k: 1 for k in state}", "{k: 1 for k in state}"),
        ("any(x for x in state)", "any(x for x in state)"),
        ("lambda: 1", "lambda: 1"),
        ("(y := 1)", "y := 1"),
        ("f'{state}'", "f'{state}'"),
        ("[*state.items]", "*state.items"),
        ("{**state}", "{**state}"),
        ("state._private", "_private"),
        ("_hidden", "_hidden"),
        ("2 ** 64", "2 ** 64"),
        ("~state.n", "~state.n"),
        ("state.n << 3", "state.n << 3"),
        ("b'raw'", "b'raw'"),
        ("...", "..."),
    ],
)
def test_forbidden_syntax_is_rejected_at_compile_time(source: str, culprit: str) -> None:
    with pytest.raises(UnsafeExpressionError) as info:
        compile_expression(source)
    assert culprit in str(info.value)


def test_await_and_yield_are_rejected() -> None:
    # Outside a function these do not even parse; either way they never run.
    for source in ("await state", "(yield state)"):
        with pytest.raises(ExpressionError):
            compile_expression(source)


@pytest.mark.parametrize(
    ("source", "culprit"),
    [("'a' * 100000000", "repeating"), ("state.items * 3", "repeating"), ("'%s' % 1", "'%'")],
)
def test_dangerous_operands_are_rejected_at_run_time(source: str, culprit: str) -> None:
    with pytest.raises(UnsafeExpressionError, match=culprit):
        evaluate_expression(source, {"items": [1]})


def test_attributes_of_arbitrary_objects_are_unsafe() -> None:
    class Secretive:
        token = "x"

    with pytest.raises(UnsafeExpressionError, match="Secretive"):
        evaluate_expression("state.obj.token", {"obj": Secretive()})


def test_attributes_of_plain_values_are_errors() -> None:
    with pytest.raises(ExpressionError, match="'upper'") as info:
        evaluate_expression("state.name.upper", {"name": "ada"})
    assert type(info.value) is ExpressionError


def test_runtime_type_error_names_expression_and_cause() -> None:
    with pytest.raises(ExpressionError) as info:
        evaluate_expression("state.error > 5", {"error": None})
    message = str(info.value)
    assert "state.error > 5" in message
    assert "TypeError" in message
    assert isinstance(info.value.__cause__, TypeError)


def test_division_by_zero_is_an_expression_error() -> None:
    with pytest.raises(ExpressionError, match="ZeroDivisionError"):
        evaluate_expression("state.n / 0", {"n": 1})


@pytest.mark.parametrize("source", ["state.amount >", "(", "state.x = 1", "'\\d' == state"])
def test_syntax_errors(source: str) -> None:
    with pytest.raises(ExpressionError, match="invalid expression") as info:
        compile_expression(source)
    assert type(info.value) is ExpressionError


def test_length_limit() -> None:
    with pytest.raises(ExpressionError, match=str(MAX_EXPRESSION_LENGTH)):
        compile_expression("1 + " * MAX_EXPRESSION_LENGTH + "1")


def test_depth_limit() -> None:
    with pytest.raises(ExpressionError, match=f"deeper than {MAX_DEPTH}"):
        compile_expression("not " * (MAX_DEPTH + 5) + "1")


def test_evaluate_expression_caches_compilation() -> None:
    from ruvon import expressions

    expressions._compile_cached.cache_clear()
    for _ in range(3):
        evaluate_expression("state.n == 1", {"n": 1})
    assert expressions._compile_cached.cache_info().hits == 2
