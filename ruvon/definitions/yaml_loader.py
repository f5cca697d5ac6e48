"""YAML reading that remembers line numbers, so definition errors can point at them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from ruvon.errors import DefinitionError


class LineDict(dict[str, Any]):
    """A mapping from YAML that knows its own line and the line of each key (1-based)."""

    line: int | None = None
    key_lines: dict[str, int]

    def line_of(self, key: str | None) -> int | None:
        """Line of ``key`` if known, else the line of the mapping itself."""
        if key is not None and key in getattr(self, "key_lines", {}):
            return self.key_lines[key]
        return self.line


class _LineLoader(yaml.SafeLoader):
    """SafeLoader whose mappings are LineDicts (never constructs arbitrary Python objects)."""


def _construct_mapping(loader: _LineLoader, node: yaml.MappingNode) -> LineDict:
    loader.flatten_mapping(node)
    mapping = LineDict()
    mapping.line = node.start_mark.line + 1
    mapping.key_lines = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if not isinstance(key, str | int | float | bool) and key is not None:
            raise DefinitionError(
                f"mapping keys must be scalars, got {type(key).__name__}",
                line=key_node.start_mark.line + 1,
            )
        key = str(key)
        if key in mapping:
            raise DefinitionError(
                f"duplicate key '{key}'", field=key, line=key_node.start_mark.line + 1
            )
        mapping[key] = loader.construct_object(value_node, deep=True)
        mapping.key_lines[key] = key_node.start_mark.line + 1
    return mapping


_LineLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,
    _construct_mapping,
)


def parse_yaml(text: str, *, file: str | Path) -> Any:
    """Parse YAML text; syntax errors become ``DefinitionError`` with file and line."""
    try:
        return yaml.load(text, Loader=_LineLoader)
    except DefinitionError as exc:
        raise DefinitionError(exc.reason, file=file, field=exc.field, line=exc.line) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        context = exc.context_mark
        problem = exc.problem or str(exc)
        if exc.context and context is not None:
            problem = f"{problem} ({exc.context} from line {context.line + 1})"
            # An unclosed quote or bracket is only noticed at the end of the file; the line
            # worth showing is where it was opened.
            if mark is None or mark.index >= len(text):
                mark = context
        line = mark.line + 1 if mark is not None else None
        raise DefinitionError(f"malformed YAML: {problem}", file=file, line=line) from exc
    except yaml.YAMLError as exc:
        raise DefinitionError(f"malformed YAML: {exc}", file=file) from exc


def read_yaml_mapping(path: Path) -> LineDict:
    """Read a YAML file that must contain a mapping at the top level."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DefinitionError("file not found", file=path) from None
    except OSError as exc:
        raise DefinitionError(f"cannot read file: {exc}", file=path) from exc
    data = parse_yaml(text, file=path)
    if not isinstance(data, LineDict):
        kind = "empty" if data is None else f"a {type(data).__name__}"
        raise DefinitionError(f"expected a mapping at the top level, found {kind}", file=path)
    return data
