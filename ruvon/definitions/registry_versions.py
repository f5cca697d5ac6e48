"""A registry's entries grouped by workflow type, several versions of a type side by side.

A type listed once needs no version (its file is read when the type is first used). A type
listed several times has each entry's workflow file read at registry load: every one must
declare a ``workflow_version``, each a semantic version (:mod:`ruvon.definitions.versions`)
and no two the same; otherwise the ``DefinitionError`` names the registry line of each entry
involved and the file and line of each version.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ruvon.definitions.schema import RegistryEntry
from ruvon.definitions.versions import ordered_versions, version_key
from ruvon.definitions.yaml_loader import LineDict, read_yaml_mapping
from ruvon.errors import DefinitionError


@dataclass(frozen=True)
class ListedEntry:
    """One registry entry with where it is written (the registry file and its line)."""

    entry: RegistryEntry
    registry_file: str
    line: int | None


def _declared_version(config: Path) -> tuple[str | None, int | None]:
    """The ``workflow_version`` a workflow file declares (before validation), and its line."""
    raw = read_yaml_mapping(config)
    key = next((k for k in ("workflow_version", "version") if k in raw), None)
    if key is None:
        return None, raw.line
    value: Any = raw[key]
    text = str(value) if isinstance(value, str | int | float) else None
    return text, raw.line_of(key)


def _where(listed: ListedEntry) -> str:
    return f"{listed.registry_file}:{listed.line}" if listed.line else listed.registry_file


def order_versions(
    workflow_type: str, listed: list[ListedEntry]
) -> tuple[tuple[str | None, RegistryEntry], ...]:
    """``(version, entry)`` of every entry of one type, oldest first (the latest is last).

    A single entry is returned as is, its version unread (``None``).
    """
    if len(listed) == 1:
        return ((None, listed[0].entry),)
    by_key: dict[Any, tuple[str, ListedEntry, int | None]] = {}
    versions: dict[str, RegistryEntry] = {}
    for item in listed:
        config = item.entry.config_file
        version, line = _declared_version(Path(config))
        if version is None:
            raise DefinitionError(
                f"workflow type '{workflow_type}' is registered {len(listed)} times, so each of "
                f"its workflow files must declare its own 'workflow_version' (this one, listed "
                f"at {_where(item)}, declares none)",
                file=config,
                field="workflow_version",
                line=line,
            )
        key = version_key(version)
        if key is None:
            raise DefinitionError(
                f"workflow_version '{version}' of workflow type '{workflow_type}' (listed at "
                f"{_where(item)}) is not a semantic version such as 1.2.0; versions registered "
                "side by side are ordered by it, so the latest is the one a start gets",
                file=config,
                field="workflow_version",
                line=line,
            )
        if key in by_key:
            other, first, other_line = by_key[key]
            same = f"'{version}'" if other == version else f"'{version}' (the same as '{other}')"
            raise DefinitionError(
                f"workflow type '{workflow_type}' version {same} is registered twice: by the "
                f"entry at {_where(first)} ({first.entry.config_file}:{other_line}) and by the "
                f"entry at {_where(item)} ({config}:{line}); give each version its own number",
                file=item.registry_file,
                field="type",
                line=item.line,
            )
        by_key[key] = (version, item, line)
        versions[version] = item.entry
    _check_one_schedule(workflow_type, listed)
    return tuple((version, versions[version]) for version in ordered_versions(versions))


def _check_one_schedule(workflow_type: str, listed: list[ListedEntry]) -> None:
    """A schedule starts the type's latest version; two entries scheduling it would clash."""
    scheduled = [item for item in listed if item.entry.schedule is not None]
    if len(scheduled) > 1:
        raise DefinitionError(
            f"workflow type '{workflow_type}' has a 'schedule' on more than one of its versions "
            f"(entries at {', '.join(_where(item) for item in scheduled)}); a schedule starts "
            "the latest version, so keep it on one entry",
            file=scheduled[1].registry_file,
            field="schedule",
            line=scheduled[1].line,
        )


def entry_line(raw_item: Any) -> int | None:
    """The line of a registry entry as read (None when it was not read from YAML)."""
    return raw_item.line if isinstance(raw_item, LineDict) else None
