"""Merging step results into workflow state: every strategy, every conflict behaviour."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ruvon.errors import MergeConflictError
from ruvon.merge import MergeConflictBehavior, MergeStrategy, merge_many, merge_results

S = MergeStrategy
C = MergeConflictBehavior

EXISTING: dict[str, Any] = {"a": 1, "keep": "k", "nested": {"x": 1, "y": 2}, "tags": ["t1"]}
NEW: dict[str, Any] = {"a": 2, "added": True, "nested": {"x": 10, "z": 3}, "tags": ["t2"]}

_NEW_WINS_SHALLOW = {**EXISTING, **NEW}
_OLD_WINS_SHALLOW = {**EXISTING, "added": True}
_NEW_WINS_DEEP = {**_NEW_WINS_SHALLOW, "nested": {"x": 10, "y": 2, "z": 3}}
_OLD_WINS_DEEP = {**_OLD_WINS_SHALLOW, "nested": {"x": 1, "y": 2, "z": 3}}

EXPECTED: dict[tuple[MergeStrategy, MergeConflictBehavior], dict[str, Any] | str] = {
    (S.SHALLOW, C.PREFER_NEW): _NEW_WINS_SHALLOW,
    (S.SHALLOW, C.PREFER_EXISTING): _OLD_WINS_SHALLOW,
    (S.SHALLOW, C.RAISE_ERROR): "'a'",
    (S.DEEP, C.PREFER_NEW): _NEW_WINS_DEEP,
    (S.DEEP, C.PREFER_EXISTING): _OLD_WINS_DEEP,
    (S.DEEP, C.RAISE_ERROR): "'a'",
    (S.APPEND, C.PREFER_NEW): {**_NEW_WINS_SHALLOW, "tags": ["t1", "t2"]},
    (S.APPEND, C.PREFER_EXISTING): {**_OLD_WINS_SHALLOW, "tags": ["t1", "t2"]},
    (S.APPEND, C.RAISE_ERROR): "'a'",
    # The last three ignore the conflict behaviour altogether.
    **{(S.REPLACE, c): _NEW_WINS_SHALLOW for c in C},
    **{(S.OVERWRITE_EXISTING, c): _NEW_WINS_DEEP for c in C},
    **{(S.PRESERVE_EXISTING, c): _OLD_WINS_DEEP for c in C},
}


def test_table_covers_every_combination() -> None:
    assert set(EXPECTED) == {(s, c) for s in S for c in C}


@pytest.mark.parametrize(("strategy", "conflict"), sorted(EXPECTED))
def test_strategy_by_conflict_behaviour(
    strategy: MergeStrategy, conflict: MergeConflictBehavior
) -> None:
    expected = EXPECTED[(strategy, conflict)]
    existing, new = copy.deepcopy(EXISTING), copy.deepcopy(NEW)
    if isinstance(expected, str):
        with pytest.raises(MergeConflictError, match=expected):
            merge_results(existing, new, strategy, conflict)
    else:
        assert merge_results(existing, new, strategy, conflict) == expected
    assert (existing, new) == (EXISTING, NEW)


def test_default_is_shallow_prefer_new() -> None:
    assert merge_results(EXISTING, NEW) == _NEW_WINS_SHALLOW


def test_deep_conflict_names_the_dotted_path_and_context() -> None:
    existing = {"customer": {"address": {"zip": "N1", "city": "London"}}}
    new = {"customer": {"address": {"zip": "E2"}}}
    with pytest.raises(MergeConflictError) as info:
        merge_results(existing, new, "deep", "raise_error", context="step 'geocode'")
    message = str(info.value)
    assert "'customer.address.zip'" in message
    assert "step 'geocode'" in message
    assert "'N1'" in message
    assert "'E2'" in message


def test_dict_replaced_by_scalar_is_a_conflict_at_that_path() -> None:
    with pytest.raises(MergeConflictError, match=r"'customer\.address'"):
        merge_results(
            {"customer": {"address": {"zip": 1}}},
            {"customer": {"address": None}},
            S.DEEP,
            C.RAISE_ERROR,
        )


@pytest.mark.parametrize("strategy", [S.SHALLOW, S.DEEP, S.APPEND])
def test_equal_values_are_not_conflicts(strategy: MergeStrategy) -> None:
    existing = {"a": 1, "nested": {"x": [1]}, "tags": "same"}
    new = {"a": 1, "nested": {"x": [1]}, "tags": "same", "b": 2}
    assert merge_results(existing, new, strategy, C.RAISE_ERROR) == {**existing, "b": 2}


def test_append_sets_missing_list_and_raises_on_non_list_conflict() -> None:
    assert merge_results({}, {"log": ["x"]}, S.APPEND) == {"log": ["x"]}
    with pytest.raises(MergeConflictError, match="'log'"):
        merge_results({"log": ["x"]}, {"log": "y"}, S.APPEND, C.RAISE_ERROR)


def test_replace_swaps_nested_dicts_wholesale() -> None:
    result = merge_results({"cfg": {"a": 1, "b": 2}}, {"cfg": {"a": 3}}, S.REPLACE, C.RAISE_ERROR)
    assert result == {"cfg": {"a": 3}}


def test_values_given_as_strings_are_accepted() -> None:
    assert merge_results({"a": 1}, {"a": 2}, "preserve_existing", "raise_error") == {"a": 1}


def test_unknown_strategy_is_rejected() -> None:
    with pytest.raises(ValueError, match="'sideways'"):
        merge_results({}, {}, "sideways")


def test_enum_values_are_strings() -> None:
    assert isinstance(S.DEEP, str)
    assert f"{S.DEEP}/{C.RAISE_ERROR}" == "deep/raise_error"


@pytest.mark.parametrize("strategy", list(S))
def test_result_shares_no_containers_with_inputs(strategy: MergeStrategy) -> None:
    existing = {"old": {"inner": [1]}, "both": {"inner": [1]}}
    new = {"fresh": {"inner": [2]}, "both": {"inner": [1], "more": [3]}}
    snapshot = copy.deepcopy((existing, new))
    result = merge_results(existing, new, strategy, C.PREFER_NEW)
    for value in result.values():
        value["inner"].append("mutated")
    assert (existing, new) == snapshot


def test_merge_many_appends_parallel_branches_in_order() -> None:
    branches = [{"hits": ["a"], "a_done": True}, {"hits": ["b"], "b_done": True}]
    result = merge_many({"hits": ["start"]}, branches, S.APPEND, C.RAISE_ERROR)
    assert result == {"hits": ["start", "a", "b"], "a_done": True, "b_done": True}


def test_merge_many_conflict_between_branches_names_the_branch() -> None:
    branches = [{"score": 1}, {"score": 2}]
    with pytest.raises(MergeConflictError) as info:
        merge_many({}, branches, S.SHALLOW, C.RAISE_ERROR, context="step 'fan_out'")
    assert "'score'" in str(info.value)
    assert "step 'fan_out', result 2 of 2" in str(info.value)


@pytest.mark.parametrize(("conflict", "winner"), [(C.PREFER_NEW, 2), (C.PREFER_EXISTING, 1)])
def test_merge_many_conflict_behaviour_between_branches(
    conflict: MergeConflictBehavior, winner: int
) -> None:
    assert merge_many({}, [{"score": 1}, {"score": 2}], S.DEEP, conflict) == {"score": winner}


def test_merge_many_without_results_copies_existing() -> None:
    existing = {"a": [1]}
    result = merge_many(existing, [])
    assert result == existing
    assert result["a"] is not existing["a"]


_keys = st.sampled_from(["a", "b", "c", "d"])
_leaves = st.none() | st.booleans() | st.integers(-3, 3) | st.text(max_size=3)
_values = st.recursive(
    _leaves,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(_keys, children, max_size=3),
    max_leaves=8,
)
_states = st.dictionaries(_keys, _values, max_size=4)


@settings(database=None, max_examples=200, deadline=None)
@given(
    existing=_states,
    new=_states,
    strategy=st.sampled_from(list(S)),
    conflict=st.sampled_from(list(C)),
)
def test_merge_never_mutates_inputs_and_keeps_every_key(
    existing: dict[str, Any],
    new: dict[str, Any],
    strategy: MergeStrategy,
    conflict: MergeConflictBehavior,
) -> None:
    snapshot = copy.deepcopy((existing, new))
    try:
        result = merge_results(existing, new, strategy, conflict)
    except MergeConflictError:
        assert conflict is C.RAISE_ERROR
    else:
        assert set(result) == set(existing) | set(new)
    assert (existing, new) == snapshot
