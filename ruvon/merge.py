"""Merging a step's result dict into the workflow state dict.

Both functions return a new dict that shares no mutable container with either input (values are
deep-copied), so neither input is ever changed and the result can be mutated freely.

A *conflict* is a key present in both dicts whose values differ (``!=``); equal values are never
a conflict, and neither is an existing ``None`` (an unset optional field of a state model is
not a value to defend). Where a strategy consults the :class:`MergeConflictBehavior`,
``prefer_new`` keeps the new value, ``prefer_existing`` keeps the existing one and
``raise_error`` raises :class:`~ruvon.errors.MergeConflictError` naming the dotted key path
(``customer.address.zip``).

Strategies:

``shallow``
    Top-level keys of ``new`` are set into ``existing``; conflicts go to the conflict behaviour.
``deep``
    Like ``shallow``, but where both values are dicts they are merged recursively, so conflicts
    are only ever between leaves.
``replace``
    Top-level keys of ``new`` replace existing ones wholesale (a nested dict is swapped, not
    merged); the conflict behaviour is ignored. Keys only in ``existing`` are kept.
``append``
    Where both values are lists the result is ``existing + new``; other conflicting values go to
    the conflict behaviour. Top level only.
``overwrite_existing``
    Deep merge in which the new value always wins at the leaves; conflict behaviour is ignored.
    Unlike ``replace``, keys found only in an existing nested dict survive.
``preserve_existing``
    Deep merge in which the existing value always wins; only missing keys (at any depth) are
    added. Conflict behaviour is ignored.

:func:`merge_many` folds several results (the branches of a PARALLEL step) into ``existing``
left to right, so a key two branches set differently is a conflict just like one a branch sets
differently from the state.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from enum import StrEnum
from typing import Any

from ruvon.errors import MergeConflictError

__all__ = ["MergeConflictBehavior", "MergeStrategy", "merge_many", "merge_results"]

_MAX_REPR = 80


class MergeStrategy(StrEnum):
    """How a step's result is combined with the workflow state (see the module docstring)."""

    SHALLOW = "shallow"
    DEEP = "deep"
    REPLACE = "replace"
    APPEND = "append"
    OVERWRITE_EXISTING = "overwrite_existing"
    PRESERVE_EXISTING = "preserve_existing"


class MergeConflictBehavior(StrEnum):
    """What ``shallow``, ``deep`` and ``append`` do with a key both sides set differently."""

    RAISE_ERROR = "raise_error"
    PREFER_NEW = "prefer_new"
    PREFER_EXISTING = "prefer_existing"


def merge_results(
    existing: Mapping[str, Any],
    new: Mapping[str, Any],
    strategy: MergeStrategy | str = MergeStrategy.SHALLOW,
    conflict: MergeConflictBehavior | str = MergeConflictBehavior.PREFER_NEW,
    *,
    context: str = "",
) -> dict[str, Any]:
    """Return a new dict: ``new`` merged into ``existing`` by ``strategy``.

    ``context`` (e.g. ``"workflow 'abc', step 'score'"``) is quoted in a conflict error.
    """
    strategy = MergeStrategy(strategy)
    conflict = MergeConflictBehavior(conflict)
    merger = _Merger(conflict, context)
    if strategy is MergeStrategy.SHALLOW:
        return merger.shallow(existing, new)
    if strategy is MergeStrategy.DEEP:
        return merger.deep(existing, new, "")
    if strategy is MergeStrategy.APPEND:
        return merger.append(existing, new)
    if strategy is MergeStrategy.REPLACE:
        return {**copy.deepcopy(dict(existing)), **copy.deepcopy(dict(new))}
    if strategy is MergeStrategy.OVERWRITE_EXISTING:
        return _Merger(MergeConflictBehavior.PREFER_NEW, context).deep(existing, new, "")
    return _Merger(MergeConflictBehavior.PREFER_EXISTING, context).deep(existing, new, "")


def merge_many(
    existing: Mapping[str, Any],
    results: Sequence[Mapping[str, Any]],
    strategy: MergeStrategy | str = MergeStrategy.SHALLOW,
    conflict: MergeConflictBehavior | str = MergeConflictBehavior.PREFER_NEW,
    *,
    context: str = "",
) -> dict[str, Any]:
    """Fold ``results`` into ``existing`` left to right; conflicts between results count too."""
    merged = copy.deepcopy(dict(existing))
    for index, result in enumerate(results, start=1):
        where = f"result {index} of {len(results)}"
        merged = merge_results(
            merged, result, strategy, conflict, context=f"{context}, {where}" if context else where
        )
    return merged


class _Merger:
    """The merge algorithms, parametrised by one conflict behaviour and an error context."""

    __slots__ = ("conflict", "context")

    def __init__(self, conflict: MergeConflictBehavior, context: str) -> None:
        self.conflict = conflict
        self.context = context

    def shallow(self, existing: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
        result = copy.deepcopy(dict(existing))
        for key, value in new.items():
            result[key] = self.resolve(result, key, value, str(key))
        return result

    def deep(
        self, existing: Mapping[str, Any], new: Mapping[str, Any], prefix: str
    ) -> dict[str, Any]:
        result = copy.deepcopy(dict(existing))
        for key, value in new.items():
            path = f"{prefix}{key}"
            current = result.get(key)
            if isinstance(current, Mapping) and isinstance(value, Mapping):
                result[key] = self.deep(current, value, f"{path}.")
            else:
                result[key] = self.resolve(result, key, value, path)
        return result

    def append(self, existing: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
        result = copy.deepcopy(dict(existing))
        for key, value in new.items():
            current = result.get(key)
            if isinstance(current, list) and isinstance(value, list):
                result[key] = current + copy.deepcopy(value)
            else:
                result[key] = self.resolve(result, key, value, str(key))
        return result

    def resolve(self, target: Mapping[str, Any], key: str, value: Any, path: str) -> Any:
        """The value ``target[key]`` should hold once ``value`` (at dotted ``path``) is merged."""
        current = target.get(key)
        if current is None:
            return copy.deepcopy(value)
        if current == value or self.conflict is MergeConflictBehavior.PREFER_NEW:
            return copy.deepcopy(value)
        if self.conflict is MergeConflictBehavior.PREFER_EXISTING:
            return current
        where = f" ({self.context})" if self.context else ""
        raise MergeConflictError(
            f"merge conflict at '{path}'{where}: existing value {_short(current)} differs from "
            f"new value {_short(value)}; use merge_conflict_behavior prefer_new or "
            "prefer_existing, or have the steps write different keys"
        )


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= _MAX_REPR else f"{text[: _MAX_REPR - 3]}..."
