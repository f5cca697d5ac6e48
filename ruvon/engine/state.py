"""Workflow state: the pydantic model (or dict) a workflow carries, merged and re-validated.

State is validated against its model on start and after every merge, so a step can never leave
a workflow holding data its model rejects.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ValidationError

from ruvon.errors import StateValidationError
from ruvon.merge import MergeConflictBehavior, MergeStrategy, merge_results

if TYPE_CHECKING:
    from ruvon.definitions.schema import StepDefinition


def _describe(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in err['loc']) or '<root>'}: {err['msg']}"
        for err in exc.errors()[:5]
    )


class StateKeeper:
    """Holds one workflow's live state and applies step results to it."""

    __slots__ = ("model", "value", "workflow_id")

    def __init__(self, model: type[Any], data: dict[str, Any], *, workflow_id: str) -> None:
        self.model = model
        self.workflow_id = workflow_id
        self.value: Any = self.validate(data, step=None)

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready copy (includes changes a step made to the state in place)."""
        if isinstance(self.value, BaseModel):
            return self.value.model_dump(mode="json")
        return dict(self.value)

    def plain(self) -> dict[str, Any]:
        """State as a dict for merging and saving; for dict state, the live dict (no copy)."""
        if isinstance(self.value, BaseModel):
            return self.value.model_dump(mode="json")
        return self.value  # type: ignore[no-any-return]

    def validate(
        self, data: dict[str, Any], *, step: StepDefinition | None, fresh: bool = False
    ) -> Any:
        """``data`` as the state model (a dict for free-form state); StateValidationError if not.

        ``fresh`` says ``data`` is a new dict nobody else holds, so free-form state can keep it.
        """
        if not issubclass(self.model, BaseModel):
            return data if fresh else dict(data)
        try:
            return self.model.model_validate(data)
        except ValidationError as exc:
            where = f"after step '{step.name}'" if step else "as stored"
            raise StateValidationError(
                f"state of workflow '{self.workflow_id}' fails {self.model.__name__} {where}: "
                f"{_describe(exc)}"
            ) from exc

    def apply(
        self, result: dict[str, Any], step: StepDefinition | None, *, soft: bool = False
    ) -> None:
        """Merge a step result with the step's strategy, then re-validate.

        ``soft`` drops keys the model does not declare (engine-written keys such as
        ``sub_workflow_results``) instead of rejecting them.
        """
        if not result:
            # Still re-validate: a step may have changed the state in place.
            if isinstance(self.value, BaseModel):
                self.value = self.validate(self.as_dict(), step=step)
            return
        result = self._declared(result, step, soft=soft)
        strategy = step.merge_strategy if step else MergeStrategy.SHALLOW
        conflict = step.merge_conflict_behavior if step else MergeConflictBehavior.PREFER_NEW
        current = self.plain()
        if strategy is MergeStrategy.SHALLOW and conflict is MergeConflictBehavior.PREFER_NEW:
            # The default, on the hot path: the merged dict is new, and persistence serializes
            # it on save, so nothing can alias stored state.
            merged = {**current, **result}
        else:
            context = f"step '{step.name}'" if step else ""
            merged = merge_results(current, result, strategy, conflict, context=context)
        self.value = self.validate(merged, step=step, fresh=True)

    def _declared(
        self, result: dict[str, Any], step: StepDefinition | None, *, soft: bool
    ) -> dict[str, Any]:
        model = self.model
        if not issubclass(model, BaseModel) or model.model_config.get("extra") == "allow":
            return result
        fields = model.model_fields
        unknown = [key for key in result if key not in fields]
        if not unknown:
            return result
        if soft:
            return {key: value for key, value in result.items() if key in fields}
        raise StateValidationError(
            f"step '{step.name if step else '?'}' returned key(s) {', '.join(unknown)} "
            f"that state model {model.__name__} does not declare; add the field(s) to "
            "the model (or set model_config extra='allow')"
        )
