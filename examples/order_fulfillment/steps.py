"""Step functions of the OrderFulfillment saga.

Every function is deterministic: the "inventory", "payment gateway" and "carrier" are in-process
stand-ins whose behaviour depends only on the order. The demo knobs on the state
(``shipping_country``, ``payment_method``, ``simulate_gateway_timeouts``) make the failure paths
reproducible.
"""

from __future__ import annotations

import hashlib
from typing import Any

from examples.order_fulfillment.models import OrderState
from ruvon.models import StepContext

# Basis points of tax per destination country (unknown countries: no tax).
TAX_RATE_BP = {"US": 800, "CA": 500, "GB": 2000, "DE": 1900, "FR": 2000, "NL": 2100}
DOMESTIC_SHIPPING_CENTS = 599
INTERNATIONAL_SHIPPING_CENTS = 1999
FRAUD_THRESHOLD = 70
# What the warehouse holds; reserving more than this fails the step.
STOCK = {"MUG-BLUE": 40, "TEE-LOGO-M": 12, "TEE-LOGO-L": 0, "POSTER-A2": 5}
# Countries the carrier integration can create labels for, and the carrier used.
CARRIERS = {"US": "UPS", "CA": "Canada Post", "GB": "Royal Mail", "DE": "DHL", "FR": "La Poste"}
DISPOSABLE_EMAIL_DOMAINS = frozenset({"mailinator.com", "trashmail.com"})


class InvalidOrder(ValueError):
    """The order cannot be fulfilled as submitted."""


class FraudSuspected(Exception):
    """The fraud model scored the order above the threshold."""


class OutOfStock(Exception):
    """The warehouse cannot reserve the requested quantity."""


class PaymentGatewayTimeout(Exception):
    """The gateway did not answer in time; retrying is safe (the charge is idempotent)."""


class PaymentDeclined(Exception):
    """The issuer declined the card; retrying would not help."""


class UnsupportedDestination(Exception):
    """The carrier cannot deliver to the shipping country."""


def _digest(text: str, size: int = 10) -> str:
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()[:size].upper()


def _dollars(cents: int) -> str:
    return f"${cents / 100:,.2f}"


def validate_order(state: OrderState, context: StepContext) -> dict[str, Any]:
    """Check the order and price it: subtotal, shipping, tax, total (all in cents)."""
    country = state.shipping_country
    if len(country) != 2 or not country.isalpha() or not country.isupper():
        raise InvalidOrder(f"shipping_country must be an ISO 3166 alpha-2 code, got {country!r}")
    skus = [item.sku for item in state.items]
    if len(skus) != len(set(skus)):
        raise InvalidOrder(f"order {state.order_id} lists a SKU twice: {skus}")
    subtotal = sum(item.quantity * item.unit_price_cents for item in state.items)
    shipping = DOMESTIC_SHIPPING_CENTS if country == "US" else INTERNATIONAL_SHIPPING_CENTS
    # Round half up on the basis-point product, as the tax authority does.
    tax = (subtotal * TAX_RATE_BP.get(country, 0) + 5_000) // 10_000
    return {
        "order_status": "VALIDATED",
        "subtotal_cents": subtotal,
        "shipping_cents": shipping,
        "tax_cents": tax,
        "total_cents": subtotal + shipping + tax,
    }


def fraud_check(state: OrderState, context: StepContext) -> dict[str, Any]:
    """PARALLEL branch: a rule-based fraud score; fails the order at the threshold."""
    score = 5
    if state.total_cents > 50_000:
        score += 35
    if state.customer_email.rpartition("@")[2].lower() in DISPOSABLE_EMAIL_DOMAINS:
        score += 40
    if state.shipping_country != "US":
        score += 10
    if score >= FRAUD_THRESHOLD:
        raise FraudSuspected(f"order {state.order_id} scored {score} (threshold {FRAUD_THRESHOLD})")
    return {"fraud_score": score, "fraud_cleared": True}


def address_check(state: OrderState, context: StepContext) -> dict[str, Any]:
    """PARALLEL branch: the address is complete; returns its normalized one-line form.

    Whether a carrier serves the country is the carrier's call at label time (``ship_order``).
    """
    address = state.shipping_address
    missing = [
        f for f in ("name", "street", "city", "postal_code") if not getattr(address, f).strip()
    ]
    if missing:
        raise InvalidOrder(f"shipping address is missing {', '.join(missing)}")
    line = ", ".join(
        part.strip().upper()
        for part in (address.name, address.street, address.city, address.postal_code)
    )
    return {"address_verified": True, "normalized_address": f"{line}, {state.shipping_country}"}


def reserve_inventory(state: OrderState, context: StepContext) -> dict[str, Any]:
    """COMPENSATABLE: hold stock for every line (released by ``release_inventory``)."""
    for item in state.items:
        available = STOCK.get(item.sku, 0)
        if item.quantity > available:
            raise OutOfStock(f"{item.sku}: {item.quantity} requested, {available} available")
    return {
        "reservation_id": f"RSV-{state.order_id}",
        "reserved_skus": [item.sku for item in state.items],
        "inventory_status": "RESERVED",
        "order_status": "RESERVED",
    }


def release_inventory(state: OrderState, context: StepContext) -> dict[str, Any]:
    """Compensation of ``reserve_inventory``: give the held stock back."""
    return {"inventory_status": "RELEASED", "reserved_skus": [], "order_status": "CANCELLED"}


def charge_payment(state: OrderState, context: StepContext) -> dict[str, Any]:
    """COMPENSATABLE, retried on gateway timeouts: capture the order total.

    The payment id derives from ``context.idempotency_key``, which is the same on every attempt,
    so a retry after a timeout can never charge the customer twice.
    """
    if state.payment_method.startswith("card_declined"):
        raise PaymentDeclined(
            f"issuer declined {state.payment_method} for {_dollars(state.total_cents)}"
        )
    if context.attempt <= state.simulate_gateway_timeouts:
        raise PaymentGatewayTimeout(f"gateway did not answer (attempt {context.attempt})")
    return {
        "payment_id": f"PAY-{_digest(str(context.idempotency_key))}",
        "payment_status": "CAPTURED",
        "payment_attempts": context.attempt,
        "order_status": "PAID",
    }


def refund_payment(state: OrderState, context: StepContext) -> dict[str, Any]:
    """Compensation of ``charge_payment``: refund the captured amount in full."""
    return {"payment_status": "REFUNDED", "refund_id": f"RF-{state.payment_id}"}


def ship_order(state: OrderState, context: StepContext) -> dict[str, Any]:
    """Create the shipping label; fails for a country no carrier serves (e.g. ``XX``)."""
    carrier = CARRIERS.get(state.shipping_country)
    if carrier is None:
        raise UnsupportedDestination(
            f"no carrier ships to {state.shipping_country!r} "
            f"(supported: {', '.join(sorted(CARRIERS))})"
        )
    return {
        "carrier": carrier,
        "tracking_number": f"TRK-{_digest(state.order_id)}",
        "order_status": "SHIPPED",
    }


def send_confirmation(state: OrderState, context: StepContext) -> dict[str, Any]:
    """Tell the customer what was charged and how the parcel travels."""
    count = sum(item.quantity for item in state.items)
    message = (
        f"Order {state.order_id}: {count} item(s), {_dollars(state.total_cents)} charged, "
        f"shipped with {state.carrier} (tracking {state.tracking_number})."
    )
    return {"confirmation_sent": True, "confirmation_message": message, "order_status": "COMPLETED"}
