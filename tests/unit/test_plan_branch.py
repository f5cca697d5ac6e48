"""``plan_branch``: one branch by name, the same as the one ``plan_branches`` builds for it.

A worker's branch run builds only its own branch (O(1) per run, not O(branches)); these tests
pin that it is the very branch (name, function, item, index, kwargs, timeout) the in-process
fan-out and the join would build, and how unknown names are answered.
"""

from __future__ import annotations

from typing import Any

import pytest

from ruvon.builder import WorkflowBuilder
from ruvon.implementations.execution.sync import SyncExecutionProvider
from ruvon.implementations.persistence.memory import MemoryPersistenceProvider
from ruvon.steps.parallel import plan_branch, plan_branches
from ruvon.workflow import Workflow
from tests.contract import steps_fixtures as fx

ITEMS = ["a", "b", "c", "d"]


async def _workflow(step: dict[str, Any], data: dict[str, Any]) -> Workflow:
    builder = WorkflowBuilder(
        persistence_provider=MemoryPersistenceProvider(),
        execution_provider=SyncExecutionProvider(),
    )
    builder.register_workflow_inline("Fan", [{"name": "Fan", "type": "PARALLEL", **step}])
    return await builder.create_workflow("Fan", data)


@pytest.fixture
async def dynamic() -> Workflow:
    step = {"iterate_over": "items", "task_function": fx.double_item, "item_var_name": "item"}
    return await _workflow(step, {"items": ITEMS})


@pytest.fixture
async def static() -> Workflow:
    tasks = [
        {"name": "T0", "function": fx.task_x},
        {"name": "T1", "function": fx.task_y, "timeout": 3},
    ]
    return await _workflow({"tasks": tasks}, {})


@pytest.mark.parametrize("which", ["dynamic", "static"])
async def test_each_branch_is_the_one_plan_branches_builds(
    which: str, dynamic: Workflow, static: Workflow
) -> None:
    wf = dynamic if which == "dynamic" else static
    step = wf.steps[0]
    every = plan_branches(wf, step)
    assert len(every) == (len(ITEMS) if which == "dynamic" else 2)
    for index, expected in enumerate(every):
        planned = plan_branch(wf, step, expected.name)
        assert planned.branch == expected
        assert (planned.index, planned.count) == (index, len(every))


async def test_dynamic_branch_carries_its_item(dynamic: Workflow) -> None:
    planned = plan_branch(dynamic, dynamic.steps[0], "Fan[2]")
    assert planned.branch is not None
    assert (planned.branch.item, planned.branch.kwargs) == ("c", {"item": "c"})


@pytest.mark.parametrize("name", ["Fan[4]", "Fan[-1]", "Fan[x]", "Other[0]", "Fan0", "T0"])
async def test_unknown_dynamic_names_have_no_branch_but_a_count(
    dynamic: Workflow, name: str
) -> None:
    planned = plan_branch(dynamic, dynamic.steps[0], name)
    assert planned.branch is None and planned.count == len(ITEMS)


async def test_unknown_static_name_has_no_branch_but_a_count(static: Workflow) -> None:
    planned = plan_branch(static, static.steps[0], "T2")
    assert planned.branch is None and planned.count == 2
