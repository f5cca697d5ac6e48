"""What every command needs: settings, providers, import paths and an event loop."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import shlex
import sys
from collections.abc import AsyncIterator, Coroutine, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from ruvon.builder import WorkflowBuilder
from ruvon.config import Settings
from ruvon.definitions.loader import load_workflow_file
from ruvon.definitions.registry_file import load_registry
from ruvon.definitions.yaml_loader import read_yaml_mapping
from ruvon.errors import DefinitionError, WorkflowNotFound
from ruvon.implementations.execution.sync import SyncExecutionProvider
from ruvon.implementations.observability.tracing_setup import with_tracing
from ruvon.implementations.persistence.factory import persistence_from_url
from ruvon.models import StepType
from ruvon.providers.observer import BaseObserver, WorkflowObserver
from ruvon.providers.persistence import PersistenceProvider
from ruvon.records import WorkflowRecord
from ruvon.steps.registry import DEFAULT_HANDLERS
from ruvon.workflow import Workflow

T = TypeVar("T")

REGISTRY_FILE_NAME = "workflow_registry.yaml"
# Step kinds that start another workflow type while the workflow runs.
_CHILD_STEP_TYPES = (StepType.SUB_WORKFLOW, StepType.FIRE_AND_FORGET)


def normalize_db_url(value: str) -> str:
    """``--db`` takes a URL, or a bare file path meaning a SQLite database."""
    if "://" in value or value == "memory":
        return value
    return f"sqlite:///{value}"


@dataclass(frozen=True)
class CliConfig:
    """The global options of one ``ruvon`` invocation."""

    db_url: str | None = None

    def settings(self, env: Mapping[str, str] | None = None) -> Settings:
        """Settings from the environment, with ``--db`` taking precedence."""
        values = dict(os.environ if env is None else env)
        if self.db_url:
            values["RUVON_DATABASE_URL"] = normalize_db_url(self.db_url)
        elif not values.get("RUVON_DATABASE_URL") and values.get("RUVON_DB_URL"):
            # RUVON_DB_URL is the name the Ruvon CLI documentation uses.
            values["RUVON_DATABASE_URL"] = values["RUVON_DB_URL"]
        return Settings.from_env(values)

    def command(self, *args: str) -> list[str]:
        """argv of a follow-up ``ruvon`` command that reaches the same database."""
        return ["ruvon", *(["--db", self.db_url] if self.db_url else []), *args]

    def command_line(self, *args: str) -> str:
        """:meth:`command` as shell-quoted text, ready to copy."""
        return shlex.join(self.command(*args))


def missing_sqlite_file(settings: Settings) -> Path | None:
    """The SQLite file the settings point at, when it does not exist yet (else None)."""
    url = settings.database_url
    if not url.startswith("sqlite://"):
        return None
    path = url.removeprefix("sqlite:///").removeprefix("sqlite://")
    if not path or path == ":memory:":
        return None
    return None if Path(path).exists() else Path(path)


def add_import_paths(*directories: Path | str | None) -> None:
    """Make step modules importable: the current directory, each directory and its parent.

    ``steps.charge`` then resolves next to the YAML file, and ``pkg.steps.charge`` from the
    directory above it, as well as anything relative to where ``ruvon`` was started.
    """
    wanted = [Path.cwd()]
    for directory in directories:
        if directory is not None:
            resolved = Path(directory).resolve()
            wanted += [resolved, resolved.parent]
    fresh: list[str] = []
    for path in wanted:
        text = str(path)
        if text not in sys.path and text not in fresh:
            fresh.append(text)
    sys.path[:0] = fresh


def source_directory(record: WorkflowRecord) -> Path | None:
    """Directory of the YAML file a stored workflow was created from (if it was a file)."""
    source = record.definition_snapshot.get("source_file")
    if not source or str(source).startswith("<"):
        return None
    return Path(str(source)).resolve().parent


def run_async(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run one command's coroutine to completion on a fresh event loop."""
    return asyncio.run(coroutine)


@dataclass
class Engine:
    """The providers one command works with; builders share them."""

    settings: Settings
    persistence: PersistenceProvider
    execution: SyncExecutionProvider
    observer: WorkflowObserver

    def builder(
        self, *, registry: Path | None = None, config_dir: Path | None = None
    ) -> WorkflowBuilder:
        """A builder over these providers; ``config_dir`` picks up its workflow_registry.yaml."""
        return WorkflowBuilder(
            registry,
            config_dir=config_dir,
            persistence_provider=self.persistence,
            execution_provider=self.execution,
            observer=self.observer,
            settings=self.settings,
        )

    async def load_record(self, workflow_id: str) -> WorkflowRecord:
        """The stored record (``WorkflowNotFound`` when the database does not even exist)."""
        return await self.persistence.load_workflow(workflow_id)

    async def builder_for(
        self, workflow_id: str, *, config_dir: Path | None = None
    ) -> WorkflowBuilder:
        """A builder for a stored workflow: its YAML directory importable, its registry known."""
        record = await self.load_record(workflow_id)
        source = source_directory(record)
        add_import_paths(source)
        if config_dir is None and source is not None and (source / REGISTRY_FILE_NAME).exists():
            config_dir = source
        return self.builder(config_dir=config_dir)

    async def open_workflow(self, workflow_id: str, *, config_dir: Path | None = None) -> Workflow:
        """Load a workflow, with its YAML directory importable and its registry available."""
        builder = await self.builder_for(workflow_id, config_dir=config_dir)
        return await builder.load_workflow(workflow_id)


@contextlib.asynccontextmanager
async def open_engine(
    settings: Settings, observer: WorkflowObserver | None = None, *, read_only: bool = False
) -> AsyncIterator[Engine]:
    """Open the configured database for the duration of a command.

    ``read_only`` commands do not create a SQLite file that does not exist yet: there is
    nothing to read in it, so they get an empty in-memory database instead.
    """
    if not read_only:
        observer = with_tracing(observer)  # RUVON_OTEL: the command's steps are traced too
    url = settings.database_url
    if read_only and missing_sqlite_file(settings) is not None:
        url = "memory://"
    persistence = persistence_from_url(url, max_state_bytes=settings.max_state_bytes)
    execution = SyncExecutionProvider()
    try:
        await persistence.initialize()
    except BaseException:
        with contextlib.suppress(Exception):
            await persistence.close()
        raise
    try:
        yield Engine(settings, persistence, execution, observer or BaseObserver())
    finally:
        await persistence.close()
        execution.close()


def sibling_registry(path: Path) -> Path | None:
    """``workflow_registry.yaml`` next to a workflow file, if there is one."""
    candidate = path.parent / REGISTRY_FILE_NAME
    return candidate if candidate.is_file() and candidate.resolve() != path.resolve() else None


def is_registry_file(path: Path) -> bool:
    """A registry file has a top-level ``workflows:`` key (a workflow file has ``steps:``)."""
    return "workflows" in read_yaml_mapping(path)


def load_file_into(builder: WorkflowBuilder, path: Path) -> str:
    """Validate the workflow file at ``path``, register it, and return its workflow type.

    A state model named only in the sibling registry entry is honoured.
    """
    if is_registry_file(path):
        raise DefinitionError(
            "is a workflow registry; give a workflow file, or use `ruvon start TYPE` "
            "with --registry",
            file=path,
        )
    definition = load_workflow_file(path, rules=DEFAULT_HANDLERS)
    registry = sibling_registry(path)
    if registry is not None and definition.spec.initial_state_model_path is None:
        entry = load_registry(registry).get(definition.workflow_type)
        if entry is not None and entry.initial_state_model_path:
            definition = load_workflow_file(
                path, rules=DEFAULT_HANDLERS, state_model_path=entry.initial_state_model_path
            )
    # Errors above name the path as typed; the snapshot keeps it absolute, so a later
    # `ruvon resume` from another directory still finds the step modules next to it.
    definition = dataclasses.replace(definition, source_file=str(path.resolve()))
    builder.register_definition(definition)
    return definition.workflow_type


def check_child_types(
    builder: WorkflowBuilder, workflow_type: str, version: str | None = None
) -> None:
    """Refuse to start a workflow whose SUB_WORKFLOW / FIRE_AND_FORGET targets are unknown."""
    definition = builder.get_definition(workflow_type, version)
    known = set(builder.workflow_types)
    for step in definition.steps:
        target = step.target_workflow_type
        if step.type in _CHILD_STEP_TYPES and target not in known:
            raise DefinitionError(
                f"targets workflow type '{target}', which is not registered (add it to a "
                f"{REGISTRY_FILE_NAME} next to the workflow file)",
                file=definition.source_file,
                step=step.name,
                field="target_workflow_type",
            )


def require_database(workflow_id: str, settings: Settings) -> None:
    """A precise ``WorkflowNotFound`` for an id looked up in a SQLite file that is not there."""
    missing = missing_sqlite_file(settings)
    if missing is None:
        return
    error = WorkflowNotFound(workflow_id)
    error.args = (
        f"workflow '{workflow_id}' not found: database {missing} does not exist "
        "(run ruvon from the directory that holds it, or pass --db)",
    )
    raise error
