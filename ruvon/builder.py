"""WorkflowBuilder: the registry of workflow types, and the factory of Workflow instances.

It loads ``workflow_registry.yaml`` (or an equivalent dict), validates each workflow file once
(cached), and creates or loads :class:`~ruvon.workflow.Workflow` objects wired to providers.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any
from uuid import uuid4

from pydantic import BaseModel, ValidationError

from ruvon.config import Settings
from ruvon.definitions import imports
from ruvon.definitions.catalog import TypeVersions
from ruvon.definitions.definition import WorkflowDefinition
from ruvon.definitions.imports import callable_path
from ruvon.definitions.loader import (
    bundle_problems,
    discover_workflow_files,
    load_definition_data,
    load_queue_limits,
    load_registry_versions,
    load_workflow_file,
)
from ruvon.definitions.schema import QueueLimits, RegistryEntry
from ruvon.engine.distribution import Continuing, Distribution
from ruvon.engine.runtime import StepRuntime
from ruvon.errors import (
    ConfigurationError,
    DefinitionError,
    InputValidationError,
    WorkflowTypeNotFound,
)
from ruvon.implementations.expression_evaluator.simple import SimpleExpressionEvaluator
from ruvon.implementations.templating.jinja2 import Jinja2TemplateEngine
from ruvon.models import StepType, WorkflowStatus
from ruvon.priority import DEFAULT_PRIORITY, checked_priority
from ruvon.providers.execution import ExecutionProvider
from ruvon.providers.observer import BaseObserver, WorkflowObserver
from ruvon.providers.persistence import PersistenceProvider
from ruvon.providers.runs import Claim
from ruvon.records import OPERATOR_ACTION, AuditEntry, WorkflowRecord
from ruvon.steps.registry import DEFAULT_HANDLERS
from ruvon.workflow import Workflow

_CHILD_TYPES = (StepType.SUB_WORKFLOW, StepType.FIRE_AND_FORGET, StepType.CRON_SCHEDULE)

# The classes the Ruvon documentation passes as ``expression_evaluator_cls`` /
# ``template_engine_cls``: they are what Ruvon uses anyway, so passing them is not a mistake.
_DOCUMENTED_ENGINES = {
    "expression_evaluator_cls": SimpleExpressionEvaluator,
    "template_engine_cls": Jinja2TemplateEngine,
}


def _warn_ignored_engines(stacklevel: int, **given: Any) -> None:
    """Warn about an evaluator / template engine class other than Ruvon's: it is not used."""
    for name, value in given.items():
        if value is not None and value is not _DOCUMENTED_ENGINES[name]:
            warnings.warn(
                f"{name}={getattr(value, '__qualname__', value)!r} has no effect: Ruvon "
                "evaluates conditions with its own sandboxed evaluator "
                "(SimpleExpressionEvaluator) and renders templates with Jinja "
                "(Jinja2TemplateEngine); drop the argument",
                DeprecationWarning,
                stacklevel=stacklevel + 1,
            )


def _inline_steps(steps: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Step dicts whose function fields may be callables: turn those into importable paths."""
    converted: list[dict[str, Any]] = []
    for step in steps:
        item = dict(step)
        for key in ("function", "compensate_function", "task_function", "merge_function_path"):
            if callable(item.get(key)):
                item[key] = callable_path(item[key])
        if "tasks" in item:
            item["tasks"] = [
                {**t, "function": callable_path(t["function"])}
                if callable(t.get("function"))
                else t
                for t in item["tasks"]
            ]
        if "loop_body" in item:
            item["loop_body"] = _inline_steps(item["loop_body"])
        injection = item.get("dynamic_injection")
        if isinstance(injection, Mapping) and isinstance(injection.get("rules"), Sequence):
            item["dynamic_injection"] = {
                **injection,
                "rules": [
                    {**rule, "steps_to_insert": _inline_steps(rule["steps_to_insert"])}
                    if isinstance(rule, Mapping) and isinstance(rule.get("steps_to_insert"), list)
                    else rule
                    for rule in injection["rules"]
                ],
            }
        converted.append(item)
    return converted


class _Children:
    """A builder as the engine's :class:`~ruvon.engine.runtime.ChildFactory`: workflows made on
    the providers of the workflow asking for them."""

    __slots__ = ("builder",)

    def __init__(self, builder: WorkflowBuilder) -> None:
        self.builder = builder

    async def create_child(
        self,
        asking: StepRuntime,
        workflow_type: str,
        initial_data: dict[str, Any],
        *,
        parent_execution_id: str | None,
        owner_id: str | None,
        data_region: str | None,
        priority: int | None = None,
    ) -> Workflow:
        return await self.builder.create_workflow(
            workflow_type,
            initial_data,
            persistence_provider=asking.persistence,
            execution_provider=asking.execution,
            workflow_observer=asking.events.observer,
            parent_execution_id=parent_execution_id,
            owner_id=owner_id,
            data_region=data_region,
            priority=priority,
            metadata={"spawned_by": asking.id},
            automate_start=False,
            announce=False,
        )

    async def load_related(self, asking: StepRuntime, workflow_id: str) -> Workflow:
        return await self.builder.load_workflow(
            workflow_id,
            persistence_provider=asking.persistence,
            execution_provider=asking.execution,
            workflow_observer=asking.events.observer,
        )


class WorkflowBuilder:
    """Loads workflow definitions and creates workflows.

    ``workflow_registry`` is a registry dict (``{type: {config_file, initial_state_model_path}}``)
    or the path of a ``workflow_registry.yaml``. Without it, ``config_dir/workflow_registry.yaml``
    is used when it exists (``WORKFLOW_CONFIG_DIR`` / ``WORKFLOW_REGISTRY_FILE`` otherwise);
    with no registry file at all, every workflow file in ``config_dir`` (default ``./config``)
    is registered under its ``workflow_type``, as the Ruvon tutorials lay projects out.
    Providers given here are the defaults for every workflow this builder creates; without
    them a workflow uses the SQLite file from settings, runs steps inline, and logs nothing.
    ``expression_evaluator_cls`` and ``template_engine_cls`` are accepted as the Ruvon
    documentation passes them (``SimpleExpressionEvaluator``, ``Jinja2TemplateEngine``, which
    are Ruvon's own); any other class warns, since conditions always use Ruvon's sandboxed
    evaluator and templates Jinja.
    """

    _import_cache = imports._cache

    def __init__(
        self,
        workflow_registry: Mapping[str, Any] | str | Path | None = None,
        expression_evaluator_cls: Any = None,
        template_engine_cls: Any = None,
        config_dir: str | Path | None = None,
        *,
        persistence_provider: PersistenceProvider | None = None,
        execution_provider: ExecutionProvider | None = None,
        observer: WorkflowObserver | None = None,
        workflow_observer: WorkflowObserver | None = None,
        settings: Settings | None = None,
    ) -> None:
        self.settings = settings or Settings.from_env()
        self.config_dir = Path(config_dir) if config_dir is not None else self.settings.config_dir
        self.persistence_provider = persistence_provider
        self.execution_provider = execution_provider
        self.observer = observer or workflow_observer
        _warn_ignored_engines(
            2,
            expression_evaluator_cls=expression_evaluator_cls,
            template_engine_cls=template_engine_cls,
        )
        self._children = _Children(self)
        # type -> (version, entry), oldest first; a type listed once has its version unread.
        self._entries: dict[str, tuple[tuple[str | None, RegistryEntry], ...]] = {}
        self._definitions: dict[str, TypeVersions] = {}
        self._initialized: set[int] = set()
        self._owned: list[Any] = []
        # The registry's `queues` section: limits over every step on a queue (admission).
        self.queue_limits: dict[str, QueueLimits] = {}
        if isinstance(workflow_registry, Mapping):
            self._entries = self._entries_from_dict(workflow_registry)
        else:
            registry_path = Path(workflow_registry) if workflow_registry is not None else None
            if registry_path is None:
                candidate = self.config_dir / "workflow_registry.yaml"
                if config_dir is None and not candidate.exists():
                    candidate = self.settings.registry_file
                registry_path = candidate if candidate.exists() else None
            if registry_path is not None:
                self._entries = load_registry_versions(registry_path)
                self.queue_limits = load_queue_limits(registry_path)
            else:
                discovered = discover_workflow_files(self.config_dir)
                self._entries = {t: ((None, e),) for t, e in discovered.items()}

    def _entries_from_dict(
        self, registry: Mapping[str, Any]
    ) -> dict[str, tuple[tuple[str | None, RegistryEntry], ...]]:
        entries: dict[str, tuple[tuple[str | None, RegistryEntry], ...]] = {}
        for workflow_type, entry in registry.items():
            data = {"type": workflow_type, **dict(entry)}
            config = Path(str(data["config_file"]))
            data["config_file"] = str(config if config.is_absolute() else self.config_dir / config)
            try:
                entries[workflow_type] = ((None, RegistryEntry.model_validate(data)),)
            except ValidationError as exc:
                raise DefinitionError(
                    f"registry entry is invalid: {exc.errors()[0]['msg']}", step=workflow_type
                ) from None
        return entries

    # ------------------------------------------------------------------ definitions
    @property
    def workflow_types(self) -> list[str]:
        """Every workflow type this builder knows."""
        return sorted({*self._entries, *self._definitions})

    def registry_schedules(self) -> list[tuple[str, str | dict[str, Any] | float]]:
        """``(workflow type, schedule)`` of every registry entry that has a ``schedule``."""
        return [
            (workflow_type, entry.schedule)
            for workflow_type, versions in sorted(self._entries.items())
            for _, entry in versions
            if entry.schedule is not None
        ]

    def register_definition(self, definition: WorkflowDefinition) -> WorkflowDefinition:
        """Add an already-built definition beside the other versions of its type.

        One of the same type and ``workflow_version`` is replaced. Versions side by side must
        be semantic versions (see :mod:`ruvon.definitions.versions`): ``DefinitionError``.
        """
        shelf = self._definitions.get(definition.workflow_type)
        if shelf is None:
            shelf = self._definitions[definition.workflow_type] = TypeVersions(
                definition.workflow_type
            )
        shelf.add(definition)
        return definition

    def register_workflow_file(self, path: str | Path) -> WorkflowDefinition:
        """Load one workflow file directly (no registry entry needed)."""
        return self.register_definition(load_workflow_file(path, rules=DEFAULT_HANDLERS))

    def register_workflow_inline(
        self,
        workflow_type: str,
        steps: Sequence[Mapping[str, Any]],
        *,
        initial_state_model: type[Any] | str = dict,
        saga_mode: bool = False,
        workflow_version: str | None = None,
        parameters: Mapping[str, Any] | None = None,
        timeout: float | None = None,
    ) -> WorkflowDefinition:
        """Define a workflow in Python; ``function`` fields may be callables."""
        model = initial_state_model
        model_path = (
            model
            if isinstance(model, str)
            else ("builtins.dict" if model is dict else callable_path(model))
        )
        data: dict[str, Any] = {
            "workflow_type": workflow_type,
            "workflow_version": workflow_version,
            "initial_state_model_path": model_path,
            "saga_mode": saga_mode,
            "parameters": dict(parameters or {}),
            "steps": _inline_steps(steps),
        }
        if timeout is not None:
            data["timeout"] = timeout
        definition = load_definition_data(
            data, file=f"<inline {workflow_type}>", rules=DEFAULT_HANDLERS
        )
        return self.register_definition(definition)

    def get_definition(
        self, workflow_type: str, workflow_version: str | None = None
    ) -> WorkflowDefinition:
        """The validated definition of ``workflow_type``: its latest version, or the one given.

        Every version of the type is loaded once, then cached. ``WorkflowTypeNotFound`` for an
        unknown type, ``WorkflowVersionNotFound`` (listing the known ones) for an unknown
        version.
        """
        shelf = self._versions_of(workflow_type)
        return shelf.latest() if workflow_version is None else shelf.get(workflow_version)

    def versions(self, workflow_type: str) -> list[str | None]:
        """Every version of ``workflow_type``, oldest first (``[None]``: one, unversioned)."""
        return self._versions_of(workflow_type).versions()

    def definitions_of(self, workflow_type: str) -> list[WorkflowDefinition]:
        """The definition of every version of ``workflow_type``, oldest first."""
        return self._versions_of(workflow_type).definitions()

    def _versions_of(self, workflow_type: str) -> TypeVersions:
        shelf = self._definitions.get(workflow_type)
        if shelf is not None:
            return shelf
        entries = self._entries.get(workflow_type)
        if entries is None:
            known = ", ".join(self.workflow_types) or "none registered"
            raise WorkflowTypeNotFound(
                f"unknown workflow type '{workflow_type}' (known: {known}); register it in "
                "workflow_registry.yaml"
            )
        loaded = TypeVersions(workflow_type)
        for _, entry in entries:
            definition = load_workflow_file(
                entry.config_file,
                rules=DEFAULT_HANDLERS,
                state_model_path=entry.initial_state_model_path,
            )
            if definition.workflow_type != workflow_type:
                raise DefinitionError(
                    f"declares workflow_type '{definition.workflow_type}' but the registry "
                    f"lists it as '{workflow_type}'",
                    file=entry.config_file,
                    field="workflow_type",
                )
            loaded.add(definition)
        # Stored only once every version loaded, so a bad file leaves nothing half-registered.
        self._definitions[workflow_type] = loaded
        return loaded

    def get_workflow_config(self, workflow_type: str) -> dict[str, Any]:
        """The definition as plain data (what instances snapshot)."""
        return self.get_definition(workflow_type).snapshot()

    def validate_all(self) -> list[WorkflowDefinition]:
        """Load every registered type and check that child workflow types exist.

        Every file is checked: the DefinitionError raised carries the problems of all of them in
        ``problems``.
        """
        definitions: list[WorkflowDefinition] = []
        problems: list[DefinitionError] = []
        for workflow_type in self.workflow_types:
            try:
                definitions.extend(self.definitions_of(workflow_type))
            except DefinitionError as exc:
                problems.extend(exc.problems)
        for definition in definitions:
            for step in definition.steps:
                target = step.target_workflow_type
                if step.type in _CHILD_TYPES and target not in self.workflow_types:
                    problems.append(
                        DefinitionError(
                            f"targets workflow type '{target}', which is not registered "
                            f"(registered: {', '.join(self.workflow_types)})",
                            file=definition.source_file,
                            step=step.name,
                            field="target_workflow_type",
                        )
                    )
        if problems:
            raise bundle_problems(problems)
        return definitions

    # ------------------------------------------------------------------ providers
    async def _providers(
        self,
        persistence: PersistenceProvider | None,
        execution: ExecutionProvider | None,
        observer: WorkflowObserver | None,
    ) -> tuple[PersistenceProvider, ExecutionProvider, WorkflowObserver]:
        if persistence is None:
            if self.persistence_provider is None:
                from ruvon.implementations.persistence.factory import persistence_from_url

                self.persistence_provider = persistence_from_url(
                    self.settings.database_url, max_state_bytes=self.settings.max_state_bytes
                )
                self._owned.append(self.persistence_provider)
            persistence = self.persistence_provider
        if execution is None:
            if self.execution_provider is None:
                from ruvon.implementations.execution.sync import SyncExecutionProvider

                self.execution_provider = SyncExecutionProvider()
            execution = self.execution_provider
        observer = observer or self.observer or BaseObserver()
        if id(persistence) not in self._initialized:
            await persistence.initialize()
            self._initialized.add(id(persistence))
        return persistence, execution, observer

    async def close(self) -> None:
        """Close the providers this builder created itself."""
        for provider in self._owned:
            await provider.close()
        self._owned.clear()

    # ------------------------------------------------------------------ instances
    def _initial_state(
        self, definition: WorkflowDefinition, data: Mapping[str, Any] | BaseModel | None
    ) -> dict[str, Any]:
        if isinstance(data, BaseModel):
            data = data.model_dump(mode="json")
        data = dict(data or {})
        model = definition.state_model
        if not issubclass(model, BaseModel):
            return data
        try:
            return model.model_validate(data).model_dump(mode="json")
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or '<root>'}: {e['msg']}"
                for e in exc.errors()[:5]
            )
            raise InputValidationError(
                f"initial data for workflow type '{definition.workflow_type}' does not match "
                f"{model.__name__}: {problems}"
            ) from None

    async def create_workflow(
        self,
        workflow_type: str,
        initial_data: Mapping[str, Any] | BaseModel | None = None,
        *,
        persistence_provider: PersistenceProvider | None = None,
        execution_provider: ExecutionProvider | None = None,
        workflow_observer: WorkflowObserver | None = None,
        owner_id: str | None = None,
        org_id: str | None = None,
        data_region: str | None = None,
        priority: int | None = None,
        idempotency_key: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        parent_execution_id: str | None = None,
        automate_start: bool | None = None,
        workflow_id: str | None = None,
        announce: bool = True,
        actor: str | None = None,
        workflow_builder: WorkflowBuilder | None = None,
        expression_evaluator_cls: Any = None,
        template_engine_cls: Any = None,
        workflow_version: str | None = None,
    ) -> Workflow:
        """Validate the initial data, persist a new ACTIVE workflow, and return it.

        The workflow runs the latest version of ``workflow_type`` unless ``workflow_version``
        names one (``WorkflowVersionNotFound`` when the type has no such version); it keeps
        that version's snapshot however the registry changes later.

        With an ``idempotency_key`` already used, the existing workflow is returned instead and
        nothing new is written. With a dispatching execution provider (Celery), the workflow is
        stored with its start run and the workers run it (``automate_start`` does not apply);
        ``announce=False`` leaves sending that run's message to the caller (it is deferred on
        ``workflow.distribution``). ``actor`` (who asked) is audited as an ``OPERATOR_ACTION``
        with the creation.

        ``workflow_builder`` (this builder), ``expression_evaluator_cls`` and
        ``template_engine_cls`` are accepted as the Ruvon documentation passes them.
        """
        if workflow_builder is not None and workflow_builder is not self:
            raise ConfigurationError(
                f"create_workflow('{workflow_type}', workflow_builder=...) was given another "
                "builder; a workflow's sub-workflows are built by the builder that creates it, "
                "so pass this builder itself or leave the argument out"
            )
        _warn_ignored_engines(
            2,
            expression_evaluator_cls=expression_evaluator_cls,
            template_engine_cls=template_engine_cls,
        )
        definition = self.get_definition(workflow_type, workflow_version)
        persistence, execution, observer = await self._providers(
            persistence_provider, execution_provider, workflow_observer
        )
        if idempotency_key is not None:
            existing = await persistence.find_by_idempotency_key(idempotency_key)
            if existing is not None:
                return self._wrap(existing, persistence, execution, observer)
        record = WorkflowRecord(
            id=workflow_id or str(uuid4()),
            workflow_type=workflow_type,
            status=WorkflowStatus.ACTIVE,
            state=self._initial_state(definition, initial_data),
            definition_snapshot=definition.snapshot(),
            workflow_version=definition.spec.workflow_version,
            parent_execution_id=parent_execution_id,
            idempotency_key=idempotency_key,
            saga_mode=definition.spec.saga_mode,
            metadata=dict(metadata or {}),
            data_region=data_region,
            priority=checked_priority(
                priority if priority is not None else definition.spec.priority or DEFAULT_PRIORITY,
                workflow_type,
            ),
            owner_id=owner_id,
            org_id=org_id,
        )
        if definition.spec.timeout is not None:
            record.deadline_at = record.created_at + timedelta(seconds=definition.spec.timeout)
        created_audit = [
            AuditEntry(
                record.id,
                "WORKFLOW_CREATED",
                new_status=str(WorkflowStatus.ACTIVE),
                details={
                    "workflow_type": workflow_type,
                    "parent_execution_id": parent_execution_id,
                },
            )
        ]
        if actor is not None:
            created_audit.append(
                AuditEntry(record.id, OPERATOR_ACTION, details={"action": "start", "by": actor})
            )
        distribution = Distribution.for_providers(execution, persistence)
        if distribution is not None:
            return await self._create_distributed(
                record, created_audit, persistence, execution, observer, distribution, announce
            )
        stored, created = await persistence.create_workflow(record, audit=created_audit)
        workflow = self._wrap(stored, persistence, execution, observer)
        if not created:
            return workflow
        workflow.events.started(stored.state, parent_execution_id)
        start = definition.spec.automate_start if automate_start is None else automate_start
        if start:
            await workflow.run(max_transitions=1)
        return workflow

    async def _create_distributed(
        self,
        record: WorkflowRecord,
        audit: list[AuditEntry],
        persistence: PersistenceProvider,
        execution: ExecutionProvider,
        observer: WorkflowObserver,
        distribution: Distribution,
        announce: bool,
    ) -> Workflow:
        """Store the workflow with its first runs in one transaction; announce them."""
        record.runtime["cluster"] = True  # tools that act on it later use the cluster too
        workflow = self._wrap(record, persistence, execution, observer, distribution)
        distribution.start()
        work = distribution.writes(settles=False)
        entries = [*audit, *workflow.take_pending_audit()]
        stored, created = await persistence.create_workflow(record, audit=entries, work=work)
        if not created:
            return self._wrap(stored, persistence, execution, observer)
        workflow.events.started(stored.state, record.parent_execution_id, on_cluster=True)
        distribution.committed(work, announce=announce)
        return workflow

    async def load_workflow(
        self,
        workflow_id: str,
        *,
        persistence_provider: PersistenceProvider | None = None,
        execution_provider: ExecutionProvider | None = None,
        workflow_observer: WorkflowObserver | None = None,
    ) -> Workflow:
        """Load a stored workflow with the definition snapshot it started with."""
        persistence, execution, observer = await self._providers(
            persistence_provider, execution_provider, workflow_observer
        )
        record = await persistence.load_workflow(workflow_id)
        return self._wrap(record, persistence, execution, observer)

    def workflow_from_record(
        self,
        record: WorkflowRecord,
        *,
        persistence_provider: PersistenceProvider,
        execution_provider: ExecutionProvider,
        workflow_observer: WorkflowObserver | None = None,
        claim: Claim | None = None,
        continuing: Continuing | None = None,
    ) -> Workflow:
        """The workflow object of a record already read (a worker's claim returns the row).

        ``claim``: the run a worker claimed; every save of this object is fenced by it.
        ``continuing``: the worker's policy for taking the next run itself (see
        :mod:`ruvon.engine.distribution`).
        """
        observer = workflow_observer or self.observer or BaseObserver()
        distribution = Distribution.for_providers(
            execution_provider, persistence_provider, claim, continuing
        )
        return self._wrap(record, persistence_provider, execution_provider, observer, distribution)

    def _wrap(
        self,
        record: WorkflowRecord,
        persistence: PersistenceProvider,
        execution: ExecutionProvider,
        observer: WorkflowObserver,
        distribution: Distribution | None = None,
    ) -> Workflow:
        if distribution is None:
            distribution = Distribution.for_providers(execution, persistence)
        definition = WorkflowDefinition.from_snapshot(record.definition_snapshot)
        return Workflow(
            record,
            definition,
            persistence=persistence,
            execution=execution,
            observer=observer,
            children=self._children,
            distribution=distribution,
            queue_limits=self.queue_limits,
        )

    @classmethod
    def _import_from_string(cls, import_path: str) -> Any:
        """Import ``module.attr`` (cached); kept for code written against Ruvon."""
        return imports.import_object(import_path)
