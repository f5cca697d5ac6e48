"""A new version registered beside a running one: the running workflow keeps its own.

Two builders over the same providers stand for two deployments: the first knows 1.0.0 only,
the second 1.0.0 and 2.0.0. What the second builder does with a workflow the first started is
decided by that workflow's snapshot, never by the registry.
"""

from __future__ import annotations

from pathlib import Path

from ruvon.models import WorkflowStatus
from ruvon.testing.providers import EngineUnderTest

STEP = "tests.contract.executor_workflows.steps.mark_done"


def _version_file(directory: Path, version: str, last_step: str) -> str:
    name = f"order_{version.replace('.', '_')}.yaml"
    (directory / name).write_text(
        f"workflow_type: VersionedOrder\nworkflow_version: '{version}'\nsteps:\n"
        f"  - {{name: Take, function: {STEP}}}\n"
        f"  - {{name: {last_step}, function: {STEP}}}\n",
        encoding="utf-8",
    )
    return name


def _registry(directory: Path, name: str, *files: str) -> Path:
    path = directory / name
    entries = "".join(f"  - {{type: VersionedOrder, config_file: {f}}}\n" for f in files)
    path.write_text(f"workflows:\n{entries}", encoding="utf-8")
    return path


async def test_a_workflow_started_on_v1_finishes_on_v1_after_v2_is_registered(
    engine: EngineUnderTest,
) -> None:
    scratch = engine.scratch_dir
    v1 = _version_file(scratch, "1.0.0", "Ship_v1")
    first_deploy = engine.new_builder(_registry(scratch, "first.yaml", v1))
    started = await first_deploy.create_workflow("VersionedOrder", {})
    await started.run(max_transitions=1)  # in flight: Take done, Ship_v1 to come
    assert (started.workflow_version, started.current_step) == ("1.0.0", "Ship_v1")

    v2 = _version_file(scratch, "2.0.0", "Ship_v2")
    second_deploy = engine.new_builder(_registry(scratch, "second.yaml", v1, v2))
    resumed = await second_deploy.load_workflow(started.id)
    assert await resumed.run() is WorkflowStatus.COMPLETED
    assert resumed.state["trail"] == ["Take", "Ship_v1"]
    stored = await engine.persistence.load_workflow(started.id)
    assert stored.workflow_version == "1.0.0"

    newer = await second_deploy.create_workflow("VersionedOrder", {})
    assert await newer.run() is WorkflowStatus.COMPLETED
    assert (newer.workflow_version, newer.state["trail"]) == ("2.0.0", ["Take", "Ship_v2"])
    pinned = await second_deploy.create_workflow("VersionedOrder", {}, workflow_version="1.0.0")
    assert await pinned.run() is WorkflowStatus.COMPLETED
    assert pinned.state["trail"] == ["Take", "Ship_v1"]

    on_v1 = await engine.persistence.list_workflows(workflow_version="1.0.0")
    assert {record.id for record in on_v1} == {started.id, pinned.id}
