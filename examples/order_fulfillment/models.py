"""State of the OrderFulfillment workflow; the defaults are a valid, happy-path order.

Money is kept in integer cents so totals, charges and refunds add up exactly.
"""

from __future__ import annotations

from pydantic import BaseModel, Field


class OrderItem(BaseModel):
    """One order line."""

    sku: str = Field(min_length=1)
    quantity: int = Field(gt=0)
    unit_price_cents: int = Field(ge=0)


class ShippingAddress(BaseModel):
    """Where the parcel goes (the country lives on the order: ``shipping_country``)."""

    name: str = "Ada Lovelace"
    street: str = "12 Analytical Way"
    city: str = "Portland"
    postal_code: str = "97201"


def _default_items() -> list[OrderItem]:
    return [
        OrderItem(sku="MUG-BLUE", quantity=2, unit_price_cents=1250),
        OrderItem(sku="TEE-LOGO-M", quantity=1, unit_price_cents=2200),
    ]


class OrderState(BaseModel):
    """Order input (the first block) and everything the steps record about it."""

    # --- input --------------------------------------------------------------------------
    order_id: str = "ORD-1001"
    customer_id: str = "CUST-7"
    customer_email: str = "ada@example.com"
    items: list[OrderItem] = Field(default_factory=_default_items, min_length=1)
    shipping_country: str = "US"
    shipping_address: ShippingAddress = Field(default_factory=ShippingAddress)
    payment_method: str = "card_visa_4242"
    # Demo knob: the payment gateway times out this many times before it answers.
    simulate_gateway_timeouts: int = Field(default=0, ge=0)

    # --- written by the steps ---------------------------------------------------------
    order_status: str = "RECEIVED"
    subtotal_cents: int = 0
    shipping_cents: int = 0
    tax_cents: int = 0
    total_cents: int = 0
    fraud_score: int | None = None
    fraud_cleared: bool | None = None
    address_verified: bool | None = None
    normalized_address: str | None = None
    reservation_id: str | None = None
    reserved_skus: list[str] = Field(default_factory=list)
    inventory_status: str | None = None
    payment_id: str | None = None
    payment_status: str | None = None
    payment_attempts: int = 0
    refund_id: str | None = None
    carrier: str | None = None
    tracking_number: str | None = None
    confirmation_sent: bool = False
    confirmation_message: str | None = None
