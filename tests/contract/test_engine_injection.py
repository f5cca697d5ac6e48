"""dynamic_injection on every persistence: the rule's decision outlives the process that made it.

A workflow waits inside steps a rule inserted; another builder (a restarted process) loads it
from storage and carries on with exactly those steps, whatever the registry says by then.
"""

from __future__ import annotations

from ruvon.models import WorkflowStatus
from ruvon.testing.providers import EngineUnderTest
from tests.contract import steps_fixtures as fx
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


async def test_an_inline_definition_may_insert_steps_given_as_callables(
    engine: EngineUnderTest,
) -> None:
    rule = {
        "condition_key": "a",
        "value_match": True,
        "action": "INSERT_AFTER_CURRENT",
        "steps_to_insert": [{"name": "B", "function": fx.mark_b, "automate_next": True}],
    }
    engine.builder.register_workflow_inline(
        "InlineInjection",
        [
            {
                "name": "A",
                "function": fx.mark_a,
                "automate_next": True,
                "dynamic_injection": {"rules": [rule]},
            },
            {"name": "C", "function": fx.mark_c},
        ],
    )
    workflow = await engine.create("InlineInjection", {})
    assert await workflow.run() is WorkflowStatus.COMPLETED
    assert workflow.state == {"a": True, "b": True, "c": True}
