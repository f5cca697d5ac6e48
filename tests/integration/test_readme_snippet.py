"""The README's "From Python" snippet runs as written and exits cleanly.

The snippet, the workflow file, its step module and the registry are all taken from README.md
(never copied into this test), so the documentation and the test cannot drift. Each run is a
fresh interpreter in an empty directory: exit status 0 and nothing at all on stderr (before,
aiosqlite's worker thread answered after the loop had closed and printed "Event loop is
closed" twice at exit).
"""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[2] / "README.md"
_FENCE = re.compile(r"^```(\w+)\n(.*?)^```$", re.MULTILINE | re.DOTALL)

# The snippet uses top-level ``await`` (``python -m asyncio``, a notebook): run it that way, with
# its names kept in ``__main__`` until the interpreter exits, and the way the README tells a
# script to (inside ``async def main()`` under ``asyncio.run``).
_TOP_LEVEL_AWAIT = """\
import ast, asyncio, sys
source = open(sys.argv[1]).read()
code = compile(source, sys.argv[1], "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
asyncio.run(eval(code, globals()))
"""


def _blocks() -> list[tuple[str, str]]:
    return [(m.group(1), m.group(2)) for m in _FENCE.finditer(README.read_text())]


def _named_block(name: str) -> str:
    """The fenced block whose first line is the comment ``# <name>``."""
    for _, body in _blocks():
        if body.startswith(f"# {name}\n"):
            return body
    raise AssertionError(f"README.md has no block starting '# {name}'")


def _python_snippet() -> str:
    """The first python block after the line 'From Python, ...' of "Writing a workflow"."""
    text = README.read_text()
    start = text.index("\nFrom Python, with a registry")
    match = _FENCE.search(text, start)
    while match is not None and match.group(1) != "python":
        match = _FENCE.search(text, match.end())
    assert match is not None, "no python block after 'From Python'"
    return match.group(2)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A directory laid out as the README describes: greet.yaml, greet_steps.py, config/."""
    (tmp_path / "greet.yaml").write_text(_named_block("greet.yaml"))
    (tmp_path / "greet_steps.py").write_text(_named_block("greet_steps.py"))
    (tmp_path / "config").mkdir()
    registry = _named_block("config/workflow_registry.yaml")
    (tmp_path / "config" / "workflow_registry.yaml").write_text(registry)
    snippet = _python_snippet()
    assert "await builder.create_workflow(" in snippet
    report = "\nprint(workflow.status, sorted(workflow.state))\n"
    (tmp_path / "top_level.py").write_text(_TOP_LEVEL_AWAIT)
    (tmp_path / "script.py").write_text(
        "import asyncio\n\n\nasync def main() -> None:\n"
        + textwrap.indent(snippet + report, "    ")
        + "\n\nasyncio.run(main())\n"
    )
    (tmp_path / "snippet.py").write_text(snippet + report)
    return tmp_path


@pytest.mark.slow
@pytest.mark.parametrize("form", ["top-level-await", "asyncio.run"])
def test_readme_python_snippet_exits_cleanly(project: Path, form: str) -> None:
    argv = ["top_level.py", "snippet.py"] if form == "top-level-await" else ["script.py"]
    done = subprocess.run(
        [sys.executable, *argv],
        cwd=project,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(project)},
        capture_output=True,
        text=True,
        timeout=45,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    # It really ran: Greet merged its result and the workflow waits for the approval.
    assert done.stdout.split("\n")[0] == ("WAITING_HUMAN ['greeting', 'name', 'tags']"), done.stdout
    assert (project / "ruvon.sqlite3").exists()
