"""Heartbeat files, the ``ruvon health --worker-file`` probe, and ``ruvon health`` embedded."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from click.testing import CliRunner, Result

from ruvon.cli.main import cli
from ruvon.implementations.observability.health import Check, HealthReport, check_workers
from ruvon.implementations.observability.heartbeat_files import HeartbeatFiles, read_worker_files


def _ruvon(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def _age(path: Path, seconds: float) -> None:
    then = time.time() - seconds
    os.utime(path, (then, then))


def test_heartbeat_files_follow_the_worker_lifecycle(tmp_path: Path) -> None:
    files = HeartbeatFiles(tmp_path / "health", "w1@host", interval=0.05)
    files.start()
    try:
        assert files.alive_path.exists() and not files.ready_path.exists()
        _age(files.alive_path, 60)
        time.sleep(0.3)  # the thread rewrites it
        assert time.time() - files.alive_path.stat().st_mtime < 5
        files.mark_ready({"queues": ["default"]})
        assert files.ready_path.exists()
        (worker,) = read_worker_files(tmp_path / "health", max_age=5)
        assert (worker.node, worker.alive, worker.ready) == ("w1@host", True, True)
        assert worker.details["pid"] == os.getpid() and worker.details["queues"] == ["default"]
        files.mark_not_ready()
        assert not files.ready_path.exists() and files.alive_path.exists()
    finally:
        files.stop()
    assert not files.alive_path.exists() and not files.ready_path.exists()


def test_probe_exit_codes_for_fresh_stale_and_missing_files(tmp_path: Path) -> None:
    path = tmp_path / "w1@host.alive"
    missing = _ruvon("health", "--worker-file", str(path))
    assert missing.exit_code == 1 and "does not exist" in missing.output
    path.write_text("{}")
    fresh = _ruvon("health", "--worker-file", str(path), "--max-age", "10")
    assert fresh.exit_code == 0 and fresh.output.startswith("ok:")
    _age(path, 30)
    stale = _ruvon("health", "--worker-file", str(path), "--max-age", "10")
    assert stale.exit_code == 1 and "limit 10 s" in stale.output
    as_json = _ruvon("health", "--worker-file", str(path), "--max-age", "10", "--json")
    report = json.loads(as_json.stdout)
    assert as_json.exit_code == 1 and report["ok"] is False and report["age"] >= 29
    assert _ruvon("health", "--worker-file", str(path), "--max-age", "60").exit_code == 0


def test_stale_worker_files_make_the_workers_check_fail(tmp_path: Path) -> None:
    (tmp_path / "a@h.alive").write_text(json.dumps({"node": "a@h", "pid": 7}))
    (tmp_path / "a@h.ready").write_text("{}")
    (tmp_path / "b@h.alive").write_text("not json")
    _age(tmp_path / "b@h.alive", 100)
    check = check_workers(tmp_path, max_age=30)
    assert check.ok is True
    states = {w["node"]: (w["alive"], w["ready"], w["pid"]) for w in check.details["workers"]}
    assert states == {"a@h": (True, True, 7), "b@h": (False, False, None)}
    _age(tmp_path / "a@h.alive", 100)
    assert check_workers(tmp_path, max_age=30).ok is False
    assert check_workers(None, max_age=30).ok is None
    assert check_workers(None, max_age=30, pinged=["a@h"]).ok is True


def test_report_is_ok_unless_a_check_that_applies_failed() -> None:
    passing = HealthReport((Check("database", True, "up"), Check("broker", None, "n/a")))
    assert passing.ok and passing.as_dict()["broker"] == {"ok": None, "summary": "n/a"}
    assert not HealthReport((Check("database", True, "up"), Check("broker", False, "down"))).ok


def test_health_of_an_embedded_database(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ruvon.db'}"
    empty = _ruvon("--db", url, "health", "--json")
    report = json.loads(empty.stdout)
    assert empty.exit_code == 1
    assert report["migrations"] == {
        "ok": False,
        "summary": report["migrations"]["summary"],
        "current": None,
        "head": report["migrations"]["head"],
    }
    assert _ruvon("--db", url, "db", "upgrade").exit_code == 0
    ready = _ruvon("--db", url, "health", "--json")
    report = json.loads(ready.stdout)
    assert ready.exit_code == 0 and report["ok"] is True
    assert report["database"]["ok"] is True and report["database"]["latency_ms"] >= 0
    assert report["migrations"]["ok"] is True
    assert report["migrations"]["current"] == report["migrations"]["head"]
    assert report["broker"]["ok"] is None and report["workers"]["ok"] is None
    text = _ruvon("--db", url, "health")
    assert text.exit_code == 0 and "at head" in text.output
