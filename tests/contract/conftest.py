"""The contract suite: every test runs once per persistence x execution combination."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from ruvon.testing.providers import (
    EXECUTION_FACTORIES,
    PERSISTENCE_FACTORIES,
    EngineUnderTest,
    open_engine,
)
from tests.contract import steps_fixtures

COMBINATIONS = [
    pytest.param((persistence, execution), id=f"{persistence}-{execution}")
    for persistence in PERSISTENCE_FACTORIES
    for execution in EXECUTION_FACTORIES
]


@pytest.fixture(params=COMBINATIONS)
async def engine(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[EngineUnderTest]:
    """A fresh builder plus providers for one combination; everything is closed afterwards."""
    persistence_name, execution_name = request.param
    async with open_engine(persistence_name, execution_name, tmp_path) as bundle:
        yield bundle


@pytest.fixture(autouse=True)
def _fresh_step_fixtures() -> Iterator[None]:
    """Step functions record calls in module globals: start every test from zero."""
    steps_fixtures.reset()
    yield
    steps_fixtures.RELEASE.set()  # let any step still sleeping in a thread finish now
