# Verbatim from KamikaziD/ruvon-docs docs/tutorials/edge-deployment.md @ e437d0b8e72e, code block 5.
# Do not edit below this header: the test runs the documented code unchanged.
"""
Edge payment workflow steps
"""

import uuid
from datetime import datetime
from edge_app.models import PaymentState
from ruvon.models import StepContext


def check_network(state: PaymentState, context: StepContext, **kwargs) -> dict:
    """
    Check if network is available
    """
    print(f"\n🌐 Checking network connectivity...")

    # Simulate network check
    # In production: ping cloud server, check DNS, etc.
    import random
    network_available = random.choice([True, True, False])  # 66% online

    state.network_available = network_available

    status = "ONLINE" if network_available else "OFFLINE"
    print(f"   Network Status: {status}")

    return {
        "network_available": network_available
    }


def validate_transaction(state: PaymentState, context: StepContext, **kwargs) -> dict:
    """
    Validate transaction details
    """
    print(f"\n✅ Validating transaction...")
    print(f"   Device: {state.device_id}")
    print(f"   Merchant: {state.merchant_id}")
    print(f"   Amount: ${state.amount:.2f}")
    print(f"   Card: **** {state.card_last_four}")

    # Basic validation
    valid = (
        state.amount > 0 and
        state.amount < 100000 and
        len(state.card_last_four) == 4
    )

    if not valid:
        raise ValueError("Transaction validation failed")

    print(f"   ✓ Transaction valid")

    return {"validated": True}


def authorize_payment(state: PaymentState, context: StepContext, **kwargs) -> dict:
    """
    Authorize payment (online or offline)
    """
    print(f"\n💳 Authorizing payment: ${state.amount:.2f}")

    if state.network_available:
        # ONLINE: Contact payment gateway
        print(f"   Mode: ONLINE")
        print(f"   Contacting payment gateway...")

        # Simulate online authorization
        auth_code = f"AUTH-{uuid.uuid4().hex[:8].upper()}"
        approved = True

        print(f"   ✓ Authorization Code: {auth_code}")
        print(f"   Status: APPROVED")

        return {
            "approved": True,
            "offline_approved": False,
            "authorization_code": auth_code
        }

    else:
        # OFFLINE: Use floor limits
        print(f"   Mode: OFFLINE")
        print(f"   Floor Limit: ${state.floor_limit:.2f}")

        if state.amount <= state.floor_limit:
            # Approve offline if under floor limit
            auth_code = f"OFFLINE-{uuid.uuid4().hex[:8].upper()}"
            print(f"   ✓ APPROVED (under floor limit)")
            print(f"   Offline Auth Code: {auth_code}")

            return {
                "approved": True,
                "offline_approved": True,
                "authorization_code": auth_code
            }
        else:
            # Decline if over floor limit
            print(f"   ✗ DECLINED (exceeds floor limit)")
            print(f"   Network required for amounts over ${state.floor_limit:.2f}")

            return {
                "approved": False,
                "offline_approved": False,
                "authorization_code": None
            }


def record_transaction(state: PaymentState, context: StepContext, **kwargs) -> dict:
    """
    Record transaction to local database
    """
    print(f"\n💾 Recording transaction to local storage...")

    # In production: write to SQLite with encryption
    print(f"   Transaction ID: {state.transaction_id}")
    print(f"   Auth Code: {state.authorization_code}")
    print(f"   Offline: {state.offline_approved}")
    print(f"   ✓ Transaction recorded")

    return {
        "recorded": True,
        "processed_at": datetime.utcnow()
    }


def print_receipt(state: PaymentState, context: StepContext, **kwargs) -> dict:
    """
    Print receipt for customer
    """
    print(f"\n🧾 Printing receipt...")
    print(f"")
    print(f"   ================================")
    print(f"          PAYMENT RECEIPT")
    print(f"   ================================")
    print(f"   Merchant: {state.merchant_id}")
    print(f"   Device: {state.device_id}")
    print(f"   ")
    print(f"   Amount: ${state.amount:.2f} {state.currency}")
    print(f"   Card: **** {state.card_last_four}")
    print(f"   ")
    print(f"   Auth Code: {state.authorization_code}")
    print(f"   Status: {'APPROVED' if state.approved else 'DECLINED'}")

    if state.offline_approved:
        print(f"   Mode: OFFLINE APPROVAL")
        print(f"   (Will sync when online)")

    print(f"   ")
    print(f"   Date: {state.processed_at.strftime('%Y-%m-%d %H:%M:%S')}")
    print(f"   Transaction: {state.transaction_id}")
    print(f"   ================================")
    print(f"")

    return {"receipt_printed": True}
