"""Priority: from the start, else the workflow file, else 0; a child runs at its parent's."""

from __future__ import annotations

from pathlib import Path

import pytest

from ruvon.errors import InputValidationError
from ruvon.models import WorkflowStatus
from ruvon.testing.providers import EngineUnderTest

STEPS = "tests.contract.executor_workflows.steps"


def _registry(directory: Path) -> Path:
    (directory / "parent.yaml").write_text(
        "workflow_type: PrioParent\npriority: 6\nsteps:\n"
        f"  - {{name: Prepare, function: {STEPS}.prepare}}\n"
        "  - name: Spawn\n    type: SUB_WORKFLOW\n    target_workflow_type: PrioChild\n"
        "    initial_data_template: {value: '{{ state.value }}'}\n"
        "  - name: Detach\n    type: FIRE_AND_FORGET\n    target_workflow_type: PrioChild\n"
        "    initial_data_template: {value: '{{ state.value }}'}\n    output_key: spawned_id\n",
        encoding="utf-8",
    )
    (directory / "child.yaml").write_text(
        "workflow_type: PrioChild\npriority: 1\nsteps:\n"
        f"  - {{name: Double, type: ASYNC, function: {STEPS}.double_value}}\n",
        encoding="utf-8",
    )
    (directory / "plain.yaml").write_text(
        f"workflow_type: PrioPlain\nsteps:\n  - {{name: Prepare, function: {STEPS}.prepare}}\n",
        encoding="utf-8",
    )
    path = directory / "priority_registry.yaml"
    path.write_text(
        "workflows:\n"
        "  - {type: PrioParent, config_file: parent.yaml}\n"
        "  - {type: PrioChild, config_file: child.yaml}\n"
        "  - {type: PrioPlain, config_file: plain.yaml}\n",
        encoding="utf-8",
    )
    return path


async def test_the_file_gives_the_default_and_a_child_runs_at_its_parents(
    engine: EngineUnderTest,
) -> None:
    builder = engine.new_builder(_registry(engine.scratch_dir))
    plain = await builder.create_workflow("PrioPlain", {})
    assert plain.record.priority == 0  # neither the start nor the file says
    parent = await builder.create_workflow("PrioParent", {"value": 2})
    assert parent.record.priority == 6  # the file's
    assert await parent.run() is WorkflowStatus.COMPLETED
    persistence = engine.persistence
    (child,) = await persistence.list_workflows(parent_execution_id=parent.id)
    assert child.priority == 6  # part of its parent's work
    detached = await persistence.load_workflow(parent.state["spawned_id"])
    assert detached.parent_execution_id is None and detached.priority == 1  # its own file's
    urgent = await builder.create_workflow("PrioParent", {"value": 2}, priority=9)
    assert (await persistence.load_workflow(urgent.id)).priority == 9  # the start's wins


@pytest.mark.parametrize("bad", [10, -1, True, "9", 2.5])
async def test_a_priority_out_of_range_is_refused_before_anything_is_written(
    engine: EngineUnderTest, bad: object
) -> None:
    builder = engine.new_builder(_registry(engine.scratch_dir))
    with pytest.raises(InputValidationError, match=r"start of 'PrioPlain': priority .*0.*9"):
        await builder.create_workflow("PrioPlain", {}, priority=bad)  # type: ignore[arg-type]
    assert await engine.persistence.list_workflows() == []
