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
from ruvon.definitions.definition import WorkflowDefinition
from ruvon.definitions.library import DefinitionLibrary
from ruvon.definitions.registry_file import load_queue_limits
from ruvon.definitions.schema import QueueLimits
from ruvon.engine.distribution import Continuing, Distribution
from ruvon.engine.runtime import StepRuntime
from ruvon.errors import ConfigurationError, InputValidationError
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
        self._initialized: set[int] = set()
        self._owned: list[Any] = []
        # The registry's `queues` section: limits over every step on a queue (admission).
        self.queue_limits: dict[str, QueueLimits] = {}
        self._library = self._open_library(workflow_registry, config_dir)

    def _open_library(
        self,
        workflow_registry: Mapping[str, Any] | str | Path | None,
        config_dir: str | Path | None,
    ) -> DefinitionLibrary:
        """The registry given, else the one found beside the configs or in settings, else the
        workflow files discovered in ``config_dir``; sets :attr:`queue_limits` from a file."""
        if isinstance(workflow_registry, Mapping):
            return DefinitionLibrary.from_mapping(
                workflow_registry, self.config_dir, DEFAULT_HANDLERS
            )
        registry_path = Path(workflow_registry) if workflow_registry is not None else None
        if registry_path is None:
            candidate = self.config_dir / "workflow_registry.yaml"
            if config_dir is None and not candidate.exists():
                candidate = self.settings.registry_file
            registry_path = candidate if candidate.exists() else None
        if registry_path is None:
            return DefinitionLibrary.discovered(self.config_dir, DEFAULT_HANDLERS)
        library = DefinitionLibrary.from_registry_file(registry_path, DEFAULT_HANDLERS)
        self.queue_limits = load_queue_limits(registry_path)
        return library

    # ------------------------------------------------------------------ definitions
    # (kept by ruvon.definitions.library; these are the documented names)
    @property
    def workflow_types(self) -> list[str]:
        """Every workflow type this builder knows."""
        return self._library.workflow_types

    def registry_schedules(self) -> list[tuple[str, str | dict[str, Any] | float]]:
        """``(workflow type, schedule)`` of every registry entry that has a ``schedule``."""
        return self._library.registry_schedules()

    def register_definition(self, definition: WorkflowDefinition) -> WorkflowDefinition:
        """Add an already-built definition beside the other versions of its type.

        One of the same type and ``workflow_version`` is replaced. Versions side by side must
        be semantic versions (see :mod:`ruvon.definitions.versions`): ``DefinitionError``.
        """
        return self._library.register(definition)

    def register_workflow_file(self, path: str | Path) -> WorkflowDefinition:
        """Load one workflow file directly (no registry entry needed)."""
        return self._library.register_file(path)

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
        return self._library.register_inline(
            workflow_type,
            steps,
            initial_state_model=initial_state_model,
            saga_mode=saga_mode,
            workflow_version=workflow_version,
            parameters=parameters,
            timeout=timeout,
        )

    def get_definition(
        self, workflow_type: str, workflow_version: str | None = None
    ) -> WorkflowDefinition:
        """The validated definition of ``workflow_type``: its latest version, or the one given.

        Every version of the type is loaded once, then cached. ``WorkflowTypeNotFound`` for an
        unknown type, ``WorkflowVersionNotFound`` (listing the known ones) for an unknown
        version.
        """
        shelf = self._library.versions_of(workflow_type)
        return shelf.latest() if workflow_version is None else shelf.get(workflow_version)

    def versions(self, workflow_type: str) -> list[str | None]:
        """Every version of ``workflow_type``, oldest first (``[None]``: one, unversioned)."""
        return self._library.versions_of(workflow_type).versions()

    def definitions_of(self, workflow_type: str) -> list[WorkflowDefinition]:
        """The definition of every version of ``workflow_type``, oldest first."""
        return self._library.versions_of(workflow_type).definitions()

    def get_workflow_config(self, workflow_type: str) -> dict[str, Any]:
        """The definition as plain data (what instances snapshot)."""
        return self.get_definition(workflow_type).snapshot()

    def validate_all(self) -> list[WorkflowDefinition]:
        """Load every registered type and check that child workflow types exist.

        Every file is checked: the DefinitionError raised carries the problems of all of them in
        ``problems``.
        """
        return self._library.validate_all()

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
