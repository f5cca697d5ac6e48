"""``ruvon list`` paging and time filters, ``steps`` and ``run/resume --json`` on SQLite.

The real command in a subprocess, in a scratch project (see test_cli_process.py); the cluster
side of the same commands is in test_cli_cluster.py.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.integration.test_cli_process import ruvon, write_project


@pytest.fixture
def project(tmp_path: Path) -> Path:
    write_project(tmp_path, wait=0.05)
    return tmp_path


def _run_json(project: Path) -> dict[str, object]:
    result = ruvon(project, "run", "review.yaml", "--input", '{"order_id": 7}', "--json")
    assert result.returncode == 0, result.stderr
    data: dict[str, object] = json.loads(result.stdout)  # stdout is nothing but the result
    return data


def test_run_and_resume_json_print_only_the_result_on_stdout(project: Path) -> None:
    result = ruvon(project, "run", "review.yaml", "--input", '{"order_id": 7}', "--json")
    assert result.returncode == 0, result.stderr
    waiting = json.loads(result.stdout)
    assert waiting["status"] == "WAITING_HUMAN" and waiting["current_step"] == "Approve"
    assert waiting["state"] == {"order_id": 7, "prepared": True}
    assert waiting["waiting_for_input"] == waiting["id"] and waiting["error"] is None
    assert "Prepare completed" in result.stderr  # the progress lines, for people

    resumed = ruvon(
        project, "resume", str(waiting["id"]), "--input", '{"approved": true}', "--json"
    )
    assert resumed.returncode == 0, resumed.stderr
    done = json.loads(resumed.stdout)
    assert (done["id"], done["status"], done["current_step"]) == (
        waiting["id"],
        "COMPLETED",
        None,
    )
    assert done["state"]["finished"] is True and done["waiting_for_input"] is None
    assert "Finish completed" in resumed.stderr


def test_list_pages_with_a_cursor_and_filters_by_time(project: Path) -> None:
    ids = [str(_run_json(project)["id"]) for _ in range(3)]
    newest_first = ids[::-1]

    first = ruvon(project, "list", "-n", "2", "--output", "jsonl")
    assert first.returncode == 0, first.stderr
    page = [json.loads(line) for line in first.stdout.splitlines()]
    assert [row["id"] for row in page] == newest_first[:2]
    _run_json(project)  # a newer one arrives between the pages: it does not shift them
    second = ruvon(project, "list", "-n", "2", "-o", "jsonl", "--cursor", page[-1]["cursor"])
    assert [json.loads(line)["id"] for line in second.stdout.splitlines()] == newest_first[2:]

    table = ruvon(project, "list", "-n", "2")
    next_line = table.stdout.splitlines()[-1]
    assert next_line.startswith("Next page: ruvon list --limit 2 --cursor "), table.stdout
    cursor = next_line.rsplit(" ", 1)[1]
    last = ruvon(project, "list", "-n", "2", "--cursor", cursor)
    assert "Next page" not in last.stdout  # the last page says so by having none
    assert sum(id_ in last.stdout for id_ in newest_first[1:]) == 2

    assert len(json.loads(ruvon(project, "list", "--since", "1h", "--json").stdout)) == 4
    assert json.loads(ruvon(project, "list", "--until", "1h", "--json").stdout) == []
    future = (datetime.now(UTC) + timedelta(minutes=5)).isoformat()
    assert json.loads(ruvon(project, "list", "--since", future, "--json").stdout) == []
    assert len(json.loads(ruvon(project, "list", "--until", future, "--json").stdout)) == 4


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (("--since", "yesterday-ish"), "'--since'"),
        (("--until", "2024-13-45"), "'--until'"),
        (("--cursor", "not-a-cursor"), "'--cursor'"),
        (("--cursor", "WyJ4Il0"), "'--cursor'"),  # base64 JSON, but not a position
        (("--json", "--output", "jsonl"), "--json and --output jsonl"),
        (("--since", "1h", "--until", "2h"), "--since"),
    ],
)
def test_bad_list_options_name_the_option_and_exit_2(
    project: Path, args: tuple[str, ...], named: str
) -> None:
    _run_json(project)
    result = ruvon(project, "list", *args)
    assert result.returncode == 2, result.stdout + result.stderr
    assert named in result.stderr and "Traceback" not in result.stderr
    assert result.stdout == ""


def test_steps_of_an_embedded_run_says_there_are_none(project: Path) -> None:
    workflow_id = str(_run_json(project)["id"])
    table = ruvon(project, "steps", workflow_id)
    assert table.returncode == 0, table.stderr
    assert f"No step runs for workflow {workflow_id}" in table.stdout
    assert json.loads(ruvon(project, "steps", workflow_id, "--json").stdout) == []
    missing = ruvon(project, "steps", "no-such-id")
    assert missing.returncode == 4 and missing.stderr.startswith("error: workflow 'no-such-id'")
