"""Definition problems, located: pydantic's errors and the checks' findings as
``DefinitionError``s naming the file, the step, the step-relative field and the line.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import ValidationError

from ruvon.definitions.yaml_loader import LineDict
from ruvon.errors import DefinitionError

__all__ = [
    "bundle_problems",
    "definition_error_from_validation",
    "definition_errors_from_validation",
    "located_error",
    "parse_field_path",
    "raw_at",
]

# The keys whose items are steps (the field of an error inside one is named relative to it).
_STEP_LISTS = ("steps", "loop_body", "steps_to_insert")


def raw_at(raw: Any, loc: Iterable[Any]) -> tuple[LineDict | None, str | None]:
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
    return located_error(message, raw=raw, file=file, loc=loc)


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


def located_error(
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
    mapping, key = raw_at(raw, loc)
    line = mapping.line_of(key) if mapping is not None else None
    return DefinitionError(message, file=file, step=_step_name_at(raw, loc), field=field, line=line)


def parse_field_path(path: str) -> tuple[Any, ...]:
    """``steps[0].queue`` -> ``("steps", 0, "queue")`` (the paths ``substitute_env`` reports)."""
    return tuple(
        int(index) if index else name for name, index in re.findall(r"([^.\[\]]+)|\[(\d+)\]", path)
    )
