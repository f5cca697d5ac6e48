"""``ruvon concurrency``: holders and waiters of each key, from a real SQLite file."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from click.testing import CliRunner, Result

from ruvon.cli.main import cli
from ruvon.implementations.persistence.sqlite import SQLitePersistenceProvider
from ruvon.models import WorkflowStatus
from ruvon.providers.flow_control import SlotRequest, owner_here
from ruvon.records import WorkflowRecord


def _invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), env={"NO_COLOR": "1", "COLUMNS": "200"})


async def _fill(db: Path) -> None:
    store = SQLitePersistenceProvider(db)
    await store.initialize()
    try:
        for workflow_id in ("wf-holder", "wf-second", "wf-third"):
            await store.create_workflow(
                WorkflowRecord(
                    id=workflow_id,
                    workflow_type="Calls",
                    status=WorkflowStatus.ACTIVE,
                    state={},
                    definition_snapshot={},
                )
            )
        for workflow_id in ("wf-holder", "wf-second", "wf-third"):
            await store.acquire_slot(
                SlotRequest(
                    key="customer-7",
                    limit=1,
                    holder=f"{workflow_id}/Call",
                    workflow_id=workflow_id,
                    step_name="Call",
                    owner=owner_here(),
                    lease_seconds=60,
                )
            )
    finally:
        await store.close()


def test_it_lists_the_holder_and_the_line_in_serving_order(tmp_path: Path) -> None:
    db = tmp_path / "ruvon.db"
    asyncio.run(_fill(db))
    table = _invoke("--db", str(db), "concurrency")
    assert table.exit_code == 0, table.output
    lines = [line for line in table.output.splitlines() if "customer-7" in line]
    assert len(lines) == 3
    assert "holding (limit 1)" in lines[0] and "wf-holder" in lines[0]
    assert "waiting #1" in lines[1] and "wf-second" in lines[1]
    assert "waiting #2" in lines[2] and "wf-third" in lines[2]
    data = json.loads(_invoke("--db", str(db), "concurrency", "--json").output)
    assert [(d["workflow_id"], d["state"], d["position"]) for d in data] == [
        ("wf-holder", "HOLDING", None), ("wf-second", "WAITING", 1), ("wf-third", "WAITING", 2)
    ]  # fmt: skip
    assert data[0]["step_name"] == "Call" and data[0]["owner"] == owner_here()
    mine = json.loads(_invoke("--db", str(db), "concurrency", "--workflow", "wf-third",
                              "--json").output)  # fmt: skip
    assert [d["position"] for d in mine] == [2]


def test_an_unknown_key_says_nothing_is_held(tmp_path: Path) -> None:
    db = tmp_path / "ruvon.db"
    asyncio.run(_fill(db))
    result = _invoke("--db", str(db), "concurrency", "nobody")
    assert result.exit_code == 0
    assert "No slot of 'nobody' is held or waited for." in result.output


def test_show_says_which_slot_a_workflow_holds_or_waits_for(tmp_path: Path) -> None:
    db = tmp_path / "ruvon.db"
    asyncio.run(_fill(db))
    shown = _invoke("--db", str(db), "show", "wf-third")
    assert shown.exit_code == 0, shown.output
    assert "waits for a slot of customer-7 for step Call: #2 in line" in shown.output
    holder = _invoke("--db", str(db), "show", "wf-holder")
    assert "holds a slot of customer-7 (limit 1) for step Call" in holder.output
    data = json.loads(_invoke("--db", str(db), "show", "wf-second", "--json").output)
    assert [(s["key"], s["state"], s["position"]) for s in data["concurrency"]] == [
        ("customer-7", "WAITING", 1)
    ]
