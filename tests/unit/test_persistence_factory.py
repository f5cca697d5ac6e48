"""persistence_from_url: each URL spelling a user may write picks the right provider and file."""

from __future__ import annotations

from pathlib import Path

import pytest

from ruvon.errors import ConfigurationError
from ruvon.implementations.persistence.factory import persistence_from_url
from ruvon.implementations.persistence.memory import MemoryPersistenceProvider
from ruvon.implementations.persistence.sqlite import SQLitePersistenceProvider


@pytest.mark.parametrize(
    ("url", "path"),
    [
        ("sqlite:///{dir}/a.sqlite3", "{dir}/a.sqlite3"),
        ("sqlite+aiosqlite:///{dir}/a.sqlite3", "{dir}/a.sqlite3"),  # SQLAlchemy's async spelling
        ("sqlite:///{dir}/a.sqlite3?cache=shared", "{dir}/a.sqlite3"),  # not part of the filename
        ("sqlite:///:memory:", ":memory:"),
        ("sqlite://", ":memory:"),
    ],
)
async def test_sqlite_urls_name_the_file_they_mean(tmp_path: Path, url: str, path: str) -> None:
    provider = persistence_from_url(url.format(dir=tmp_path))
    assert isinstance(provider, SQLitePersistenceProvider)
    assert provider.db_path == path.format(dir=tmp_path)
    await provider.initialize()
    try:
        assert await provider.list_workflows() == []
    finally:
        await provider.close()
    if provider.db_path != ":memory:":
        assert [p.name for p in tmp_path.iterdir() if p.suffix == ".sqlite3"] == ["a.sqlite3"]


def test_memory_url() -> None:
    assert isinstance(persistence_from_url("memory://"), MemoryPersistenceProvider)


def test_an_unknown_scheme_names_it_and_the_supported_ones() -> None:
    with pytest.raises(ConfigurationError, match=r"'mysql'.*sqlite:///FILE"):
        persistence_from_url("mysql://localhost/db")
