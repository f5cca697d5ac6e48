"""The loaded definitions of one workflow type, by version; the latest is what a start gets."""

from __future__ import annotations

from ruvon.definitions.definition import WorkflowDefinition
from ruvon.definitions.versions import ordered_versions, version_key
from ruvon.errors import DefinitionError, WorkflowVersionNotFound


class TypeVersions:
    """Every version of one workflow type known to a builder (ordered as semantic versions)."""

    __slots__ = ("_by_version", "_latest", "workflow_type")

    def __init__(self, workflow_type: str) -> None:
        self.workflow_type = workflow_type
        self._by_version: dict[str | None, WorkflowDefinition] = {}
        self._latest: WorkflowDefinition | None = None

    def add(self, definition: WorkflowDefinition) -> None:
        """Add ``definition``; one of the same version is replaced.

        A second version of the type needs both to be semantic versions of different
        precedence, or "the latest" would mean nothing: otherwise a ``DefinitionError``.
        """
        version = definition.spec.workflow_version
        others = [v for v in self._by_version if v != version]
        if others:
            self._check_orderable(definition, version, others)
        self._by_version[version] = definition
        if len(self._by_version) == 1:
            self._latest = definition
        else:
            self._latest = self._by_version[self.versions()[-1]]

    def _check_orderable(
        self, definition: WorkflowDefinition, version: str | None, others: list[str | None]
    ) -> None:
        def problem(message: str) -> DefinitionError:
            return DefinitionError(
                f"workflow type '{self.workflow_type}' {message}",
                file=definition.source_file,
                field="workflow_version",
            )

        for candidate in (version, *others):
            if candidate is None:
                raise problem(
                    "has several versions, so each must declare its own 'workflow_version' "
                    f"(known: {self.describe_versions()}; this one declares "
                    f"{'none' if version is None else repr(version)})"
                )
            if version_key(candidate) is None:
                raise problem(
                    f"has several versions, and '{candidate}' is not a semantic version such "
                    "as 1.2.0 (versions side by side are ordered by it)"
                )
        key = version_key(version or "")
        same = next((o for o in others if o is not None and version_key(o) == key), None)
        if same is not None:
            raise problem(f"version '{version}' is the same version as '{same}'")

    def latest(self) -> WorkflowDefinition:
        """The definition a start without a version gets."""
        assert self._latest is not None, "a TypeVersions is never empty once built"
        return self._latest

    def get(self, version: str) -> WorkflowDefinition:
        """The definition of ``version`` (``WorkflowVersionNotFound`` listing the known ones)."""
        definition = self._by_version.get(version)
        if definition is None:
            raise WorkflowVersionNotFound(self.workflow_type, version, self.versions())
        return definition

    def versions(self) -> list[str | None]:
        """Every version, oldest first (a lone unversioned definition is ``[None]``)."""
        if len(self._by_version) == 1:
            return list(self._by_version)
        return list(ordered_versions(v for v in self._by_version if v is not None))

    def definitions(self) -> list[WorkflowDefinition]:
        """Every version's definition, oldest first."""
        return [self._by_version[v] for v in self.versions()]

    def describe_versions(self) -> str:
        return ", ".join(v or "(unversioned)" for v in self.versions())
