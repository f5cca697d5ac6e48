"""dynamic_injection on every persistence: the rule's decision outlives the process that made it.

A workflow waits inside steps a rule inserted; another builder (a restarted process) loads it
from storage and carries on with exactly those steps, whatever the registry says by then.
"""

from __future__ import annotations

from ruvon.models import WorkflowStatus
from ruvon.testing.providers import EngineUnderTest
from tests.contract.executors import REGISTRY


async def test_a_reloaded_workflow_keeps_the_steps_its_rules_inserted(
    engine: EngineUnderTest,
) -> None:
    first = engine.new_builder(REGISTRY)
    data = {"risk": {"level": "high"}, "region": "EU"}
    workflow = await first.create_workflow("ExecInjection", data)
    assert await workflow.run() is WorkflowStatus.WAITING_HUMAN
    assert workflow.current_step == "Manual_Review"

    restarted = engine.new_builder({})  # knows no workflow type: only the snapshot counts
    reloaded = await restarted.load_workflow(workflow.id)
    assert [s.name for s in reloaded.steps] == [
        "Evaluate_Risk", "Manual_Review", "Record_Review", "Export_Check", "Ship",
    ]  # fmt: skip
    await reloaded.resume({"approved": True, "approver": "ann"})
    assert await reloaded.run() is WorkflowStatus.COMPLETED
    stored = await engine.persistence.load_workflow(workflow.id)
    assert stored.state["trail"] == ["Evaluate_Risk", "Record_Review", "Ship"]
    assert stored.state["approver"] == "ann"
