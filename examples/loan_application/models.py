"""State and input models of the LoanApplication workflow and its CreditCheck child.

The defaults describe an applicant with a good score (705) asking for more than the
auto-approval limit (75,000 > 50,000), so a default run stops at the manual review.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class LoanApplicationState(BaseModel):
    """The application (first block) and what the workflow learns and decides about it."""

    # --- input --------------------------------------------------------------------------
    application_id: str = "APP-2024-0042"
    applicant_id: str = "CUST-1187"
    applicant_name: str = "Dana Whitfield"
    email: str = "dana.whitfield@example.com"
    amount: float = Field(default=75_000, gt=0)
    term_months: int = Field(default=60, ge=6, le=360)
    annual_income: float = Field(default=120_000, gt=0)
    existing_debt: float = Field(default=18_000, ge=0)
    years_employed: int = Field(default=6, ge=0)
    missed_payments: int = Field(default=0, ge=0)

    # --- written by the steps ---------------------------------------------------------
    application_status: str = "SUBMITTED"
    debt_to_income: float | None = None
    # Filled by the engine when the CreditCheck child completes: {child_id: {...}}.
    sub_workflow_results: dict[str, Any] = Field(default_factory=dict)
    credit_score: int | None = None
    credit_bureau: str | None = None
    risk_tier: str | None = None
    approved: bool | None = None
    approved_amount: float | None = None
    decision: str | None = None
    decided_by: str | None = None
    decision_reason: str | None = None
    interest_rate: float | None = None
    monthly_payment: float | None = None
    notifications: list[str] = Field(default_factory=list)


class ReviewDecision(BaseModel):
    """What an underwriter submits to resume ``Manual_Review``.

    Only ``approved`` is required, because a timed-out review is resolved with
    ``{approved: false, reason: ...}`` alone. ``approved_amount`` lets a reviewer approve less
    than was asked for.
    """

    approved: bool
    reason: str | None = None
    approver: str | None = None
    approved_amount: float | None = Field(default=None, gt=0)


class CreditCheckState(BaseModel):
    """The child workflow's state: the applicant data it was given and the bureau result."""

    applicant_id: str
    annual_income: float = Field(gt=0)
    existing_debt: float = Field(ge=0)
    years_employed: int = Field(ge=0)
    missed_payments: int = Field(ge=0)
    bureau: str = "Simulated Credit Bureau"
    report_id: str | None = None
    open_accounts: int | None = None
    debt_to_income: float | None = None
    credit_score: int | None = None
    score_factors: list[str] = Field(default_factory=list)
