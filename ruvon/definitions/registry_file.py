"""Registry files: ``workflow_registry.yaml`` (its workflow types, their versions, its queue
limits), and the workflow files of a directory when there is no registry.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import ValidationError

from ruvon.definitions.problems import definition_error_from_validation
from ruvon.definitions.registry_versions import ListedEntry, entry_line, order_versions
from ruvon.definitions.schema import QueueLimits, RegistryEntry, RegistryFile
from ruvon.definitions.yaml_loader import LineDict, read_yaml_mapping
from ruvon.errors import DefinitionError

__all__ = [
    "RegistryEntries",
    "discover_workflow_files",
    "load_queue_limits",
    "load_registry",
    "load_registry_versions",
]


#: type -> ((version, entry), ...), oldest first; a type listed once has its version unread.
RegistryEntries = dict[str, tuple[tuple[str | None, RegistryEntry], ...]]


def load_registry_versions(path: str | Path) -> RegistryEntries:
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
