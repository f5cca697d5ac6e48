"""The cached protocol checks answer as ``isinstance`` does, per provider type."""

from __future__ import annotations

from ruvon.implementations.execution.sync import SyncExecutionProvider
from ruvon.implementations.persistence.memory import MemoryPersistenceProvider
from ruvon.implementations.persistence.postgres.provider import PostgresPersistenceProvider
from ruvon.implementations.persistence.sqlite import SQLitePersistenceProvider
from ruvon.providers.conformance import dispatches_runs, has_flow_control, keeps_runs
from ruvon.providers.dispatch import RunDispatcher
from ruvon.providers.flow_control import FlowControl
from ruvon.providers.ledger import RunLedger


def test_each_check_agrees_with_isinstance_for_every_provider_and_repeats_it() -> None:
    postgres = PostgresPersistenceProvider.__new__(PostgresPersistenceProvider)
    providers = [MemoryPersistenceProvider(), SQLitePersistenceProvider(), postgres,
                 SyncExecutionProvider()]  # fmt: skip
    checks = [(dispatches_runs, RunDispatcher), (keeps_runs, RunLedger),
              (has_flow_control, FlowControl)]  # fmt: skip
    for provider in providers:
        for check, protocol in checks:
            expected = isinstance(provider, protocol)
            assert check(provider) is expected, (type(provider).__name__, protocol.__name__)
            assert check(provider) is expected  # the cached answer
    assert keeps_runs(postgres) and not keeps_runs(SQLitePersistenceProvider())
    assert not dispatches_runs(SyncExecutionProvider())
