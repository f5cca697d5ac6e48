"""Celery task shims: each takes ids, reaches ``ruvon`` through the process's bridge, returns JSON.

Tasks are named explicitly (``ruvon.<area>.<action>``) because senders address them by name:
the SDK never imports this package, so a rename here would silently strand messages.
"""

from __future__ import annotations

import os
from typing import Any

from ruvon.bridge import get_process_bridge
from worker.app import app, process_persistence

__all__ = ["check_database"]

# A liveness query should answer quickly or count as a failure, not hang a pool slot.
_HEALTH_QUERY_TIMEOUT = 10.0


@app.task(name="ruvon.health.check_database")
def check_database() -> dict[str, Any]:
    """Run a trivial query through this process's provider; report which process answered."""
    provider = process_persistence()
    get_process_bridge().run(provider.list_workflows(limit=1), timeout=_HEALTH_QUERY_TIMEOUT)
    return {"pid": os.getpid(), "ok": True}
