"""Step functions of LoanApplication and of its CreditCheck child workflow.

The "credit bureau" is a deterministic formula, so every outcome is reproducible:

    score = 600 + 15 per year employed (max 10 years) + 1 per 2,000 of income (max 75)
            - 80 per missed payment - 3 per percentage point of debt-to-income,
    clamped to 300..850.
"""

from __future__ import annotations

from typing import Any

from examples.loan_application.models import CreditCheckState, LoanApplicationState, ReviewDecision
from ruvon.models import StepContext

MAX_LOAN_AMOUNT = 1_000_000
# Lowest score of each tier, best first, with the annual rate (percent) it is offered.
RISK_TIERS = (("A", 760, 6.25), ("B", 700, 7.5), ("C", 620, 9.75), ("D", 500, 13.5), ("E", 0, 18.0))
AUTO_UNDERWRITER = "auto-underwriter"


class ApplicationRejected(ValueError):
    """The application is incomplete or outside the product's limits."""


class CreditReportMissing(LookupError):
    """Score_Application ran without a completed CreditCheck child."""


# --------------------------------------------------------------------------- CreditCheck child
def pull_credit_report(state: CreditCheckState, context: StepContext) -> dict[str, Any]:
    """Fetch the bureau report (simulated from the applicant data)."""
    return {
        "report_id": f"CR-{state.applicant_id}",
        "open_accounts": 2 + state.years_employed // 2,
        "debt_to_income": round(state.existing_debt / state.annual_income, 4),
    }


def compute_credit_score(state: CreditCheckState, context: StepContext) -> dict[str, Any]:
    """Turn the report into a score and the factors that moved it."""
    dti_points = round((state.debt_to_income or 0.0) * 100)
    factors = {
        "employment history": 15 * min(state.years_employed, 10),
        "income": min(75, int(state.annual_income // 2_000)),
        "missed payments": -80 * state.missed_payments,
        "debt-to-income": -3 * dti_points,
    }
    score = max(300, min(850, 600 + sum(factors.values())))
    described = [f"{name} {points:+d}" for name, points in factors.items() if points]
    return {"credit_score": score, "score_factors": described}


# --------------------------------------------------------------------------- LoanApplication
def collect_application(state: LoanApplicationState, context: StepContext) -> dict[str, Any]:
    """Check the application is complete and within limits; derive debt-to-income."""
    if "@" not in state.email:
        raise ApplicationRejected(
            f"application {state.application_id}: invalid email {state.email!r}"
        )
    if state.amount > MAX_LOAN_AMOUNT:
        raise ApplicationRejected(
            f"application {state.application_id}: {state.amount:,.0f} exceeds the product "
            f"limit of {MAX_LOAN_AMOUNT:,}"
        )
    return {
        "application_status": "RECEIVED",
        "debt_to_income": round(state.existing_debt / state.annual_income, 4),
    }


def _risk_tier(score: int) -> tuple[str, float]:
    return next((tier, rate) for tier, floor, rate in RISK_TIERS if score >= floor)


def score_application(state: LoanApplicationState, context: StepContext) -> dict[str, Any]:
    """Read the CreditCheck child's result from ``sub_workflow_results`` and grade the risk."""
    reports = [
        result["state"]
        for result in state.sub_workflow_results.values()
        if result.get("workflow_type") == "CreditCheck" and result.get("status") == "COMPLETED"
    ]
    if not reports:
        raise CreditReportMissing(
            f"application {state.application_id}: no completed CreditCheck in sub_workflow_results"
        )
    report = reports[-1]
    score = int(report["credit_score"])
    tier, _ = _risk_tier(score)
    return {
        "credit_score": score,
        "credit_bureau": report["bureau"],
        "risk_tier": tier,
        "application_status": "SCORED",
    }


def record_review_decision(state: LoanApplicationState, context: StepContext) -> dict[str, Any]:
    """Store the underwriter's decision (validated as ``ReviewDecision``) on the application."""
    decision = context.validated_input
    assert isinstance(decision, ReviewDecision)  # the step's input_model guarantees it
    result: dict[str, Any] = {
        "approved": decision.approved,
        "decided_by": decision.approver or "unattributed reviewer",
        "decision_reason": decision.reason,
        "application_status": "REVIEWED",
    }
    if decision.approved_amount is not None:
        result["approved_amount"] = decision.approved_amount
    return result


def _monthly_payment(principal: float, annual_rate_percent: float, months: int) -> float:
    rate = annual_rate_percent / 100 / 12
    return round(principal * rate / (1 - (1 + rate) ** -months), 2)


def approve_loan(state: LoanApplicationState, context: StepContext) -> dict[str, Any]:
    """Price the approved loan from the risk tier (automatic or after review)."""
    _, rate = _risk_tier(int(state.credit_score or 0))
    principal = state.approved_amount or state.amount
    return {
        "approved": True,
        "decision": "APPROVED",
        "approved_amount": principal,
        "decided_by": state.decided_by or AUTO_UNDERWRITER,
        "decision_reason": state.decision_reason or "credit score >= 700 and amount <= 50,000",
        "interest_rate": rate,
        "monthly_payment": _monthly_payment(principal, rate, state.term_months),
        "application_status": "APPROVED",
    }


def reject_loan(state: LoanApplicationState, context: StepContext) -> dict[str, Any]:
    """Record a rejection (automatic for a score below 500, or a reviewer's / timeout's)."""
    if state.decided_by is None:
        reason = f"credit score {state.credit_score} is below 500"
    else:
        reason = state.decision_reason or "rejected at manual review"
    return {
        "approved": False,
        "decision": "REJECTED",
        "decided_by": state.decided_by or AUTO_UNDERWRITER,
        "decision_reason": reason,
        "application_status": "REJECTED",
    }


def notify_applicant(state: LoanApplicationState, context: StepContext) -> dict[str, Any]:
    """Email the applicant the decision (recorded in ``notifications``)."""
    if state.decision == "APPROVED":
        body = (
            f"approved: {state.approved_amount:,.2f} over {state.term_months} months at "
            f"{state.interest_rate}% ({state.monthly_payment:,.2f}/month)"
        )
    else:
        body = f"declined: {state.decision_reason}"
    message = f"to {state.email}: application {state.application_id} {body}"
    return {"notifications": [*state.notifications, message]}


def notify_underwriting(state: LoanApplicationState, context: StepContext) -> dict[str, Any]:
    """Post the outcome to the underwriting team's queue (recorded in ``notifications``)."""
    message = (
        f"to underwriting: {state.application_id} {state.decision} by {state.decided_by} "
        f"(score {state.credit_score}, tier {state.risk_tier})"
    )
    return {"notifications": [*state.notifications, message]}
