"""The workflows in ``examples/`` run end to end, on every embedded persistence provider.

Each test drives an example through the public Python API (``WorkflowBuilder`` →
``create_workflow`` → ``run`` / ``resume``) and checks the final status and the state values
the README promises, so the examples cannot drift from their documentation.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from ruvon.builder import WorkflowBuilder
from ruvon.clock import utc_now
from ruvon.definitions.definition import WorkflowDefinition
from ruvon.errors import InputValidationError
from ruvon.implementations.execution.sync import SyncExecutionProvider
from ruvon.implementations.execution.thread_pool import ThreadPoolExecutionProvider
from ruvon.implementations.persistence.memory import MemoryPersistenceProvider
from ruvon.implementations.persistence.sqlite import SQLitePersistenceProvider
from ruvon.models import WorkflowStatus
from ruvon.providers.execution import ExecutionProvider
from ruvon.providers.persistence import PersistenceProvider
from ruvon.workflow import Workflow

REPO_ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ("order_fulfillment", "loan_application", "data_pipeline")


def registry_of(example: str) -> Path:
    return REPO_ROOT / "examples" / example / "workflow_registry.yaml"


@pytest.fixture(params=["memory", "sqlite"])
async def persistence(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[PersistenceProvider]:
    provider: PersistenceProvider
    if request.param == "memory":
        provider = MemoryPersistenceProvider()
    else:
        provider = SQLitePersistenceProvider(str(tmp_path / "examples.sqlite3"))
    await provider.initialize()
    try:
        yield provider
    finally:
        await provider.close()


async def start(
    example: str,
    workflow_type: str,
    persistence: PersistenceProvider,
    data: dict[str, Any] | None = None,
    *,
    builder: WorkflowBuilder | None = None,
    execution: ExecutionProvider | None = None,
) -> Workflow:
    """Create a workflow of ``example`` and run it as far as it goes."""
    builder = builder or WorkflowBuilder(workflow_registry=registry_of(example))
    workflow = await builder.create_workflow(
        workflow_type,
        data or {},
        persistence_provider=persistence,
        execution_provider=execution,
    )
    await workflow.run()
    return workflow


async def audit_events(
    persistence: PersistenceProvider, workflow_id: str
) -> list[tuple[str, str | None]]:
    return [(e.event_type, e.step_name) for e in await persistence.get_audit_log(workflow_id)]


# ------------------------------------------------------------------------------ definitions


@pytest.mark.parametrize("example", EXAMPLES)
def test_registry_validates_from_the_repo_root(
    example: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The documented invocation: a relative registry path, CWD = repository root.
    monkeypatch.chdir(REPO_ROOT)
    builder = WorkflowBuilder(workflow_registry=f"examples/{example}/workflow_registry.yaml")
    definitions = builder.validate_all()
    assert definitions
    for definition in definitions:
        assert definition.state_is_model
        assert definition.state_model.__module__ == f"examples.{example}.models"


# ------------------------------------------------------------------------ order fulfilment


async def test_order_default_input_completes(persistence: PersistenceProvider) -> None:
    wf = await start("order_fulfillment", "OrderFulfillment", persistence)

    assert wf.status is WorkflowStatus.COMPLETED, wf.error
    state = wf.state
    assert (state.subtotal_cents, state.shipping_cents, state.tax_cents) == (4700, 599, 376)
    assert state.total_cents == 5675
    assert state.fraud_cleared is True
    assert state.fraud_score == 5
    assert state.address_verified is True
    assert state.normalized_address == "ADA LOVELACE, 12 ANALYTICAL WAY, PORTLAND, 97201, US"
    assert state.reservation_id == "RSV-ORD-1001"
    assert state.inventory_status == "RESERVED"
    assert state.payment_status == "CAPTURED"
    assert state.payment_attempts == 1
    assert state.payment_id is not None and state.payment_id.startswith("PAY-")
    assert state.carrier == "UPS"
    assert state.tracking_number is not None and state.tracking_number.startswith("TRK-")
    assert state.confirmation_sent is True
    assert state.confirmation_message.startswith("Order ORD-1001: 3 item(s), $56.75 charged")
    assert state.order_status == "COMPLETED"
    assert await persistence.get_compensation_log(wf.id) == []

    stored = await persistence.load_workflow(wf.id)
    assert stored.status is WorkflowStatus.COMPLETED
    assert stored.state["total_cents"] == 5675
    assert stored.state["tracking_number"] == state.tracking_number


async def test_order_to_unsupported_destination_rolls_back_in_reverse(
    persistence: PersistenceProvider,
) -> None:
    wf = await start(
        "order_fulfillment", "OrderFulfillment", persistence, {"shipping_country": "XX"}
    )

    assert wf.status is WorkflowStatus.FAILED_ROLLED_BACK
    assert wf.error is not None and wf.error.startswith("UnsupportedDestination: ")
    assert "'XX'" in wf.error

    compensations = await persistence.get_compensation_log(wf.id)
    assert [c.step_name for c in compensations] == ["Charge_Payment", "Reserve_Inventory"]
    assert [c.function.rsplit(".", 1)[1] for c in compensations] == [
        "refund_payment",
        "release_inventory",
    ]
    assert all(c.succeeded and c.error is None for c in compensations)
    # Each compensation saw the state left by the one before it.
    assert compensations[0].state_before["payment_status"] == "CAPTURED"
    assert compensations[1].state_before["payment_status"] == "REFUNDED"

    state = wf.state
    assert state.total_cents == 4700 + 1999  # international shipping, no tax table for XX
    assert state.payment_status == "REFUNDED"
    assert state.refund_id == f"RF-{state.payment_id}"
    assert state.inventory_status == "RELEASED"
    assert state.reserved_skus == []
    assert state.order_status == "CANCELLED"
    assert state.tracking_number is None
    assert state.confirmation_sent is False

    events = await audit_events(persistence, wf.id)
    tail = events[events.index(("STEP_FAILED", "Ship_Order")) :]
    assert tail == [
        ("STEP_FAILED", "Ship_Order"),
        ("COMPENSATION_EXECUTED", "Charge_Payment"),
        ("COMPENSATION_EXECUTED", "Reserve_Inventory"),
        ("WORKFLOW_FAILED", "Ship_Order"),
    ]
    stored = await persistence.load_workflow(wf.id)
    assert stored.status is WorkflowStatus.FAILED_ROLLED_BACK
    assert stored.state["payment_status"] == "REFUNDED"


async def test_order_gateway_timeouts_are_retried(persistence: PersistenceProvider) -> None:
    wf = await start(
        "order_fulfillment", "OrderFulfillment", persistence, {"simulate_gateway_timeouts": 2}
    )

    assert wf.status is WorkflowStatus.COMPLETED, wf.error
    assert wf.state.payment_attempts == 3
    assert wf.state.payment_status == "CAPTURED"
    events = await audit_events(persistence, wf.id)
    assert events.count(("STEP_RETRY", "Charge_Payment")) == 2


@pytest.mark.parametrize(
    ("data", "error", "retries"),
    [
        ({"simulate_gateway_timeouts": 3}, "PaymentGatewayTimeout", 2),  # retries exhausted
        ({"payment_method": "card_declined_0002"}, "PaymentDeclined", 0),  # non-retryable
    ],
    ids=["retries-exhausted", "declined"],
)
async def test_order_payment_failure_releases_only_the_inventory(
    persistence: PersistenceProvider, data: dict[str, Any], error: str, retries: int
) -> None:
    wf = await start("order_fulfillment", "OrderFulfillment", persistence, data)

    assert wf.status is WorkflowStatus.FAILED_ROLLED_BACK
    assert wf.error is not None and wf.error.startswith(f"{error}: ")
    compensations = await persistence.get_compensation_log(wf.id)
    assert [c.step_name for c in compensations] == ["Reserve_Inventory"]
    assert wf.state.inventory_status == "RELEASED"
    assert wf.state.payment_id is None
    assert wf.state.refund_id is None
    events = await audit_events(persistence, wf.id)
    assert events.count(("STEP_RETRY", "Charge_Payment")) == retries


# ------------------------------------------------------------------------ loan application


def loan_builder(*, approval_timeout: float | None = None) -> WorkflowBuilder:
    """The loan registry; optionally with Manual_Review's deadline shortened (tests only)."""
    builder = WorkflowBuilder(workflow_registry=registry_of("loan_application"))
    if approval_timeout is not None:
        definition = builder.get_definition("LoanApplication")
        steps = tuple(
            step.model_copy(update={"approval_timeout": approval_timeout})
            if step.name == "Manual_Review"
            else step
            for step in definition.steps
        )
        builder.register_definition(
            WorkflowDefinition.build(
                definition.spec.model_copy(update={"steps": steps}),
                state_model=definition.state_model,
                source_file=definition.source_file,
            )
        )
    return builder


async def test_loan_default_input_pauses_at_manual_review(persistence: PersistenceProvider) -> None:
    wf = await start("loan_application", "LoanApplication", persistence, builder=loan_builder())

    assert wf.status is WorkflowStatus.WAITING_HUMAN
    assert wf.current_step == "Manual_Review"
    state = wf.state
    assert state.debt_to_income == 0.15
    assert state.credit_score == 705
    assert state.risk_tier == "B"
    assert state.application_status == "SCORED"
    assert state.decision is None

    # The CreditCheck child ran to completion and its result is in sub_workflow_results.
    assert len(state.sub_workflow_results) == 1
    child_id, result = next(iter(state.sub_workflow_results.items()))
    assert result["workflow_type"] == "CreditCheck"
    assert result["status"] == "COMPLETED"
    assert result["state"]["credit_score"] == 705
    assert result["state"]["report_id"] == "CR-CUST-1187"
    assert result["state"]["score_factors"] == [
        "employment history +90",
        "income +60",
        "debt-to-income -45",
    ]
    child = await persistence.load_workflow(child_id)
    assert child.workflow_type == "CreditCheck"
    assert child.status is WorkflowStatus.COMPLETED
    assert child.parent_execution_id == wf.id
    children = await persistence.list_workflows(parent_execution_id=wf.id)
    assert [c.id for c in children] == [child_id]

    # The 48-hour review deadline is stored with the workflow.
    stored = await persistence.load_workflow(wf.id)
    assert stored.status is WorkflowStatus.WAITING_HUMAN
    assert stored.run_at is not None
    remaining = (stored.run_at - utc_now()).total_seconds()
    assert 172_000 < remaining <= 172_800


async def test_loan_manual_approval_resumes_to_completion(persistence: PersistenceProvider) -> None:
    wf = await start("loan_application", "LoanApplication", persistence, builder=loan_builder())
    assert wf.status is WorkflowStatus.WAITING_HUMAN

    # Resume as another process would: a fresh builder loading the stored workflow.
    reloaded = await loan_builder().load_workflow(wf.id, persistence_provider=persistence)
    assert reloaded.status is WorkflowStatus.WAITING_HUMAN

    # Input that fails ReviewDecision is refused and the application keeps waiting.
    with pytest.raises(InputValidationError, match="approved"):
        await reloaded.resume({"approver": "j.smith"})
    assert reloaded.status is WorkflowStatus.WAITING_HUMAN
    assert (await persistence.load_workflow(wf.id)).status is WorkflowStatus.WAITING_HUMAN

    await reloaded.resume(
        {
            "approved": True,
            "approver": "j.smith",
            "reason": "income verified",
            "approved_amount": 60_000,
        }
    )

    assert reloaded.status is WorkflowStatus.COMPLETED, reloaded.error
    state = reloaded.state
    assert state.decision == "APPROVED"
    assert state.approved is True
    assert state.decided_by == "j.smith"
    assert state.decision_reason == "income verified"
    assert state.approved_amount == 60_000
    assert state.interest_rate == 7.5
    assert state.monthly_payment == 1202.28
    assert state.application_status == "APPROVED"
    assert state.notifications == [
        "to dana.whitfield@example.com: application APP-2024-0042 approved: 60,000.00 over "
        "60 months at 7.5% (1,202.28/month)",
        "to underwriting: APP-2024-0042 APPROVED by j.smith (score 705, tier B)",
    ]
    stored = await persistence.load_workflow(wf.id)
    assert stored.status is WorkflowStatus.COMPLETED
    assert stored.state["monthly_payment"] == 1202.28


async def test_loan_manual_rejection(persistence: PersistenceProvider) -> None:
    wf = await start("loan_application", "LoanApplication", persistence, builder=loan_builder())
    await wf.resume({"approved": False, "approver": "r.ng", "reason": "employment not verified"})

    assert wf.status is WorkflowStatus.COMPLETED, wf.error
    assert wf.state.decision == "REJECTED"
    assert wf.state.decided_by == "r.ng"
    assert wf.state.decision_reason == "employment not verified"
    assert wf.state.monthly_payment is None
    assert wf.state.notifications[0].endswith("declined: employment not verified")


async def test_loan_review_timeout_auto_rejects(persistence: PersistenceProvider) -> None:
    builder = loan_builder(approval_timeout=0.1)
    wf = await start("loan_application", "LoanApplication", persistence, builder=builder)
    assert wf.status is WorkflowStatus.WAITING_HUMAN
    assert await persistence.list_due_timers(utc_now()) == []

    await asyncio.sleep(0.15)
    # What the timer sweep does: find the overdue review and run the workflow on.
    assert await persistence.list_due_timers(utc_now()) == [wf.id]
    overdue = await builder.load_workflow(wf.id, persistence_provider=persistence)
    await overdue.run()

    assert overdue.status is WorkflowStatus.COMPLETED, overdue.error
    state = overdue.state
    assert state.approved is False
    assert state.decision == "REJECTED"
    assert state.decision_reason == "auto_reject after timeout"
    assert state.application_status == "REJECTED"
    events = await audit_events(persistence, wf.id)
    assert ("APPROVAL_TIMED_OUT", "Manual_Review") in events


@pytest.mark.parametrize(
    ("data", "decision", "score", "reason"),
    [
        ({"amount": 20_000}, "APPROVED", 705, "credit score >= 700 and amount <= 50,000"),
        ({"missed_payments": 3}, "REJECTED", 465, "credit score 465 is below 500"),
    ],
    ids=["auto-approve", "auto-reject"],
)
async def test_loan_automatic_routes_never_pause(
    persistence: PersistenceProvider,
    data: dict[str, Any],
    decision: str,
    score: int,
    reason: str,
) -> None:
    wf = await start(
        "loan_application", "LoanApplication", persistence, data, builder=loan_builder()
    )

    assert wf.status is WorkflowStatus.COMPLETED, wf.error
    assert wf.state.credit_score == score
    assert wf.state.decision == decision
    assert wf.state.decided_by == "auto-underwriter"
    assert wf.state.decision_reason == reason
    events = await audit_events(persistence, wf.id)
    assert not any(step == "Manual_Review" for _, step in events)
    if decision == "APPROVED":
        assert wf.state.monthly_payment == 400.76


# --------------------------------------------------------------------------- data pipeline


def expected_sales(record_count: int) -> tuple[int, int]:
    """(valid records, revenue in USD cents), computed independently of the step module."""
    fx = {"USD": 1.0, "EUR": 1.08, "GBP": 1.27}
    currencies = ("USD", "EUR", "GBP")
    valid = revenue = 0
    for i in range(record_count):
        quantity = (i * 7) % 5
        if quantity:
            valid += 1
            price = 500 + (i * 137) % 1_000
            revenue += round(quantity * price * fx[currencies[(i // 2) % 3]])
    return valid, revenue


@pytest.fixture(params=["sync", "thread_pool"])
def execution(request: pytest.FixtureRequest) -> Iterator[ExecutionProvider]:
    provider: ExecutionProvider = (
        SyncExecutionProvider() if request.param == "sync" else ThreadPoolExecutionProvider(4)
    )
    try:
        yield provider
    finally:
        provider.close()


async def test_pipeline_default_input_completes(
    persistence: PersistenceProvider, execution: ExecutionProvider
) -> None:
    wf = await start("data_pipeline", "SalesDataPipeline", persistence, execution=execution)

    assert wf.status is WorkflowStatus.COMPLETED, wf.error
    state = wf.state
    assert len(state.records) == 12
    assert expected_sales(12) == (9, 23652)
    assert (state.valid_count, state.rejected_count) == (9, 3)
    assert [r["record_id"][-5:] for r in state.rejected] == ["00000", "00005", "00010"]
    # Branch results are merged in record order, however the branches were scheduled.
    assert [s.record_id[-5:] for s in state.clean_records] == [
        f"{i:05d}" for i in range(12) if i % 5
    ]
    assert state.total_revenue_usd_cents == 23652
    assert state.revenue_by_region == {"east": 5988, "north": 4637, "south": 3649, "west": 9378}
    assert sum(state.revenue_by_region.values()) == state.total_revenue_usd_cents

    assert [len(batch) for batch in state.batches] == [4, 4, 1]
    assert state.batches_validated == 3
    assert [r.batch_index for r in state.loaded_batches] == [0, 1, 2]
    assert [r.rows for r in state.loaded_batches] == [4, 4, 1]
    assert sum(r.amount_usd_cents for r in state.loaded_batches) == 23652
    assert state.rows_loaded == 9
    assert state.summary == {
        "source": "pos-export-2024-06-01",
        "records_read": 12,
        "records_loaded": 9,
        "records_rejected": 3,
        "batches_loaded": 3,
        "total_revenue_usd": "236.52",
        "top_region": "west",
    }

    events = await audit_events(persistence, wf.id)
    assert [e for e in events if e[0] == "LOOP_ITERATION"] == [
        ("LOOP_ITERATION", "Load_Batches")
    ] * 3
    stored = await persistence.load_workflow(wf.id)
    assert stored.status is WorkflowStatus.COMPLETED
    assert stored.state["summary"]["records_loaded"] == 9


@pytest.mark.parametrize(("record_count", "batch_size"), [(0, 4), (53, 10)])
async def test_pipeline_other_sizes(
    persistence: PersistenceProvider, record_count: int, batch_size: int
) -> None:
    data = {"record_count": record_count, "batch_size": batch_size}
    wf = await start("data_pipeline", "SalesDataPipeline", persistence, data)

    assert wf.status is WorkflowStatus.COMPLETED, wf.error
    valid, revenue = expected_sales(record_count)
    state = wf.state
    assert state.valid_count == state.rows_loaded == valid
    assert state.rejected_count == record_count - valid
    assert state.total_revenue_usd_cents == revenue
    assert len(state.loaded_batches) == -(-valid // batch_size)
    assert state.summary["batches_loaded"] == len(state.loaded_batches)
