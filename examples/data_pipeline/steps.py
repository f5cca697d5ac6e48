"""Step functions of the SalesDataPipeline workflow.

The "export" is generated deterministically from the record index, so a run is reproducible:
every fifth record (index 0, 5, 10, …) has quantity 0 and is rejected by the transform.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from examples.data_pipeline.models import BatchReport, CleanSale, PipelineState, SaleRecord
from ruvon.models import StepContext

REGIONS = ("north", "south", "east", "west")
SKUS = ("WIDGET", "GADGET", "GIZMO")
CURRENCIES = ("USD", "EUR", "GBP")


class BatchRejected(ValueError):
    """A batch failed validation before it reached the warehouse."""


def load_records(state: PipelineState, context: StepContext) -> dict[str, Any]:
    """Read the point-of-sale export (generated: same count, same records, every time)."""
    records = [
        SaleRecord(
            record_id=f"{state.source}-{i:05d}",
            region=REGIONS[i % len(REGIONS)],
            sku=SKUS[i % len(SKUS)],
            quantity=(i * 7) % 5,
            unit_price=500 + (i * 137) % 1_000,
            currency=CURRENCIES[(i // 2) % len(CURRENCIES)],
        ).model_dump()
        for i in range(state.record_count)
    ]
    return {"records": records}


def transform_record(
    state: PipelineState, context: StepContext, record: Any = None
) -> dict[str, Any]:
    """PARALLEL branch (one per record): validate and convert to USD cents.

    The engine passes the item as ``record=`` (the step's ``item_var_name``); it has a default
    only because definitions are checked by calling shape ``fn(state, context)``.
    A bad record is not an error of the pipeline: it is returned as a rejection, so one branch
    never fails the whole fan-out.
    """
    sale = SaleRecord.model_validate(record)
    problems = []
    if sale.quantity <= 0:
        problems.append(f"quantity {sale.quantity} is not positive")
    if sale.currency not in state.fx_rates:
        problems.append(f"no exchange rate for {sale.currency}")
    if problems:
        return {"rejected": {"record_id": sale.record_id, "reasons": problems}}
    amount = round(sale.quantity * sale.unit_price * state.fx_rates[sale.currency])
    clean = CleanSale(
        record_id=sale.record_id,
        region=sale.region,
        sku=sale.sku,
        quantity=sale.quantity,
        amount_usd_cents=amount,
    )
    return {"clean": clean.model_dump()}


def aggregate_sales(state: PipelineState, results: list[dict[str, Any]]) -> dict[str, Any]:
    """merge_function_path of Transform_Records: fold the branch results, in record order."""
    clean = [r["clean"] for r in results if "clean" in r]
    rejected = [r["rejected"] for r in results if "rejected" in r]
    by_region: Counter[str] = Counter()
    for sale in clean:
        by_region[sale["region"]] += sale["amount_usd_cents"]
    return {
        "clean_records": clean,
        "rejected": rejected,
        "valid_count": len(clean),
        "rejected_count": len(rejected),
        "revenue_by_region": dict(sorted(by_region.items())),
        "total_revenue_usd_cents": sum(by_region.values()),
    }


def build_batches(state: PipelineState, context: StepContext) -> dict[str, Any]:
    """Split the clean records into warehouse batches of ``batch_size``."""
    rows = [sale.model_dump() for sale in state.clean_records]
    size = state.batch_size
    return {"batches": [rows[start : start + size] for start in range(0, len(rows), size)]}


def _sales(batch: Any) -> list[CleanSale]:
    """The current batch (``context.loop_item``) as models, whatever form it arrived in."""
    return [CleanSale.model_validate(row) for row in batch or ()]


def validate_batch(state: PipelineState, context: StepContext) -> dict[str, Any]:
    """LOOP body, first step: refuse an empty batch, duplicates or non-positive amounts."""
    sales = _sales(context.loop_item)
    ids = [sale.record_id for sale in sales]
    if not sales or len(ids) != len(set(ids)):
        raise BatchRejected(f"batch {context.loop_index} is empty or repeats a record id")
    if any(sale.amount_usd_cents <= 0 for sale in sales):
        raise BatchRejected(f"batch {context.loop_index} has a non-positive amount")
    return {"batches_validated": state.batches_validated + 1}


def write_batch(state: PipelineState, context: StepContext) -> dict[str, Any]:
    """LOOP body, second step: load the batch (simulated) and report it.

    The step's merge strategy is ``append``, so the one-item ``loaded_batches`` list returned
    here is added to the reports of earlier batches.
    """
    sales = _sales(context.loop_item)
    report = BatchReport(
        batch_index=int(context.loop_index or 0),
        rows=len(sales),
        amount_usd_cents=sum(sale.amount_usd_cents for sale in sales),
        first_record=sales[0].record_id,
        last_record=sales[-1].record_id,
    )
    return {"loaded_batches": [report.model_dump()], "rows_loaded": state.rows_loaded + len(sales)}


def summarize(state: PipelineState, context: StepContext) -> dict[str, Any]:
    """Cross-check the counts and write the run summary."""
    loaded_cents = sum(report.amount_usd_cents for report in state.loaded_batches)
    if state.rows_loaded != state.valid_count or loaded_cents != state.total_revenue_usd_cents:
        raise BatchRejected(
            f"loaded {state.rows_loaded} rows / {loaded_cents} cents, expected "
            f"{state.valid_count} rows / {state.total_revenue_usd_cents} cents"
        )
    top_region = max(state.revenue_by_region, key=state.revenue_by_region.__getitem__, default=None)
    return {
        "summary": {
            "source": state.source,
            "records_read": len(state.records),
            "records_loaded": state.rows_loaded,
            "records_rejected": state.rejected_count,
            "batches_loaded": len(state.loaded_batches),
            "total_revenue_usd": f"{state.total_revenue_usd_cents / 100:,.2f}",
            "top_region": top_region,
        }
    }
