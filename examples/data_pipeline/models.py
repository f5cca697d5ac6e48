"""State and record models of the SalesDataPipeline workflow (defaults: 12 records, 4 a batch)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


def _default_fx_rates() -> dict[str, float]:
    return {"USD": 1.0, "EUR": 1.08, "GBP": 1.27}


class SaleRecord(BaseModel):
    """One raw point-of-sale line, as exported."""

    record_id: str
    region: str
    sku: str
    quantity: int
    unit_price: int = Field(description="in minor units of `currency`")
    currency: str


class CleanSale(BaseModel):
    """A validated sale, converted to US cents."""

    record_id: str
    region: str
    sku: str
    quantity: int
    amount_usd_cents: int


class BatchReport(BaseModel):
    """What loading one batch into the warehouse produced."""

    batch_index: int
    rows: int
    amount_usd_cents: int
    first_record: str
    last_record: str


class PipelineState(BaseModel):
    """Pipeline parameters (first block) and the data and statistics the steps produce."""

    # --- input --------------------------------------------------------------------------
    source: str = "pos-export-2024-06-01"
    record_count: int = Field(default=12, ge=0, le=10_000)
    batch_size: int = Field(default=4, ge=1)
    fx_rates: dict[str, float] = Field(default_factory=_default_fx_rates)

    # --- written by the steps ---------------------------------------------------------
    records: list[SaleRecord] = Field(default_factory=list)
    clean_records: list[CleanSale] = Field(default_factory=list)
    rejected: list[dict[str, Any]] = Field(default_factory=list)
    valid_count: int = 0
    rejected_count: int = 0
    revenue_by_region: dict[str, int] = Field(default_factory=dict)
    total_revenue_usd_cents: int = 0
    batches: list[list[CleanSale]] = Field(default_factory=list)
    batches_validated: int = 0
    loaded_batches: list[BatchReport] = Field(default_factory=list)
    rows_loaded: int = 0
    summary: dict[str, Any] = Field(default_factory=dict)
