"""Whether a provider implements an optional protocol, decided once per provider type.

``isinstance`` against a ``runtime_checkable`` protocol looks up every member of the protocol
on the object each time: 9-18 µs for the ledger and flow-control protocols here, paid on every
workflow a client starts and every run a worker claims. Providers declare their methods on
their class, so the answer for one type holds for all its instances and is kept.
"""

from __future__ import annotations

from typing import TypeGuard

from ruvon.providers.dispatch import RunDispatcher
from ruvon.providers.flow_control import FlowControl
from ruvon.providers.ledger import RunLedger

__all__ = ["dispatches_runs", "has_flow_control", "keeps_runs"]

_KNOWN: dict[tuple[type, object], bool] = {}


def _implements(value: object, protocol: object) -> bool:
    key = (type(value), protocol)
    known = _KNOWN.get(key)
    if known is None:
        known = _KNOWN[key] = isinstance(value, protocol)  # type: ignore[arg-type]
    return known


def dispatches_runs(execution: object) -> TypeGuard[RunDispatcher]:
    """Whether ``execution`` sends runs to workers (:class:`RunDispatcher`)."""
    return _implements(execution, RunDispatcher)


def keeps_runs(persistence: object) -> TypeGuard[RunLedger]:
    """Whether ``persistence`` keeps the step-run ledger (:class:`RunLedger`)."""
    return _implements(persistence, RunLedger)


def has_flow_control(persistence: object) -> TypeGuard[FlowControl]:
    """Whether ``persistence`` keeps concurrency slots and rate limits (:class:`FlowControl`)."""
    return _implements(persistence, FlowControl)
