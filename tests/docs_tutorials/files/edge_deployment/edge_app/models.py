# Verbatim from KamikaziD/ruvon-docs docs/tutorials/edge-deployment.md @ e437d0b8e72e, code block 4.
# Do not edit below this header: the test runs the documented code unchanged.
"""
State models for edge payment terminal
"""

from pydantic import BaseModel
from typing import Optional
from datetime import datetime


class PaymentState(BaseModel):
    """State for offline payment processing"""

    # Transaction details
    transaction_id: str
    device_id: str
    merchant_id: str
    amount: float
    currency: str = "USD"

    # Card details (in real app: use encryption!)
    card_last_four: str
    card_type: Optional[str] = None

    # Processing
    authorization_code: Optional[str] = None
    approved: bool = False
    offline_approved: bool = False

    # Floor limits (offline approval thresholds)
    floor_limit: float = 100.00  # Approve offline if under $100

    # Sync status
    synced_to_cloud: bool = False
    sync_timestamp: Optional[datetime] = None

    # Metadata
    processed_at: datetime
    network_available: bool = True
