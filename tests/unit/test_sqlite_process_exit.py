"""A script that fails after opening a SQLite provider exits: nothing Ruvon started keeps it alive.

The getting-started tutorial's first failure is exactly this (a typo in a step, an exception
after ``initialize()``): with a non-daemon connection thread the interpreter waited for it
forever, so the user saw their traceback and then a terminal that never came back.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

OPEN_THEN_RAISE = """
import asyncio
from ruvon.implementations.persistence.sqlite import SQLitePersistenceProvider

async def main():
    provider = SQLitePersistenceProvider(db_path="ruvon.sqlite3")
    await provider.initialize()
    {work}
    raise RuntimeError("the user's own bug")

asyncio.run(main())
"""

WRITE_SOMETHING = "await provider.list_workflows()"


@pytest.mark.parametrize("work", ["pass", WRITE_SOMETHING], ids=["opened", "used"])
def test_a_script_that_raises_after_initialize_exits(tmp_path: Path, work: str) -> None:
    script = tmp_path / "script.py"
    script.write_text(textwrap.dedent(OPEN_THEN_RAISE.format(work=work)))
    try:
        done = subprocess.run(
            [sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=30
        )
    except subprocess.TimeoutExpired:
        pytest.fail("the script raised but its interpreter did not exit within 30 s")
    assert done.returncode == 1
    assert "RuntimeError: the user's own bug" in done.stderr
