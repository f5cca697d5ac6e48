"""Smoke test of ``python -m loadtests.bench all --quick --plot``: every suite and study, briefly.

It runs the harness's own command line (tiny counts, one run) against the real PostgreSQL,
Redis and prefork workers (Ruvon's and a default-configuration Celery worker), then reads what
it wrote: the JSON holds every suite's figures and every study's series at every x, all
positive and finite, and the distributed suite's rows against both Celery baselines; the
Markdown names each study and every target row; each PNG is a real PNG. The figures themselves
are not judged (that is the benchmark's job): the point is that no benchmark can rot unnoticed.
``bench server --quick`` (not part of ``all``) is smoke-run the same way, on its own.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from loadtests.bench import main
from loadtests.bench_all import Sizes
from loadtests.bench_server import LIST_QUERY_NAMES as SERVER_LIST_QUERIES
from loadtests.bench_server import ServerSizes

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path]:
    out = tmp_path_factory.mktemp("bench-all")
    assert main(["all", "--quick", "--plot", "--out", str(out)]) == 0
    return json.loads((out / "results.json").read_text()), out


def finite_positive(value: float) -> bool:
    return math.isfinite(value) and value > 0


def test_every_suite_reports_its_figures(results: tuple[dict[str, Any], Path]) -> None:
    data, _ = results
    assert set(data["suites"]) == {"embedded", "postgres", "distributed"}
    for name, figures in data["suites"].items():
        assert figures, name
        for figure in figures:
            assert figure["low"] <= figure["median"] <= figure["high"], figure
            if not figure["name"].lstrip().startswith("of which queue wait"):
                assert finite_positive(figure["median"]), figure
    targets = [figure["target"] for figure in data["targets"]]
    # embedded 3 (with the ratio to raw sqlite3), postgres 1, distributed 5 (marked met or not;
    # the distributed suite's secondary and informative ratios have no target)
    assert len(targets) == 9
    assert sum(target.endswith((": met", ": NOT met")) for target in targets) == 5


def test_distributed_rows_against_both_baselines(results: tuple[dict[str, Any], Path]) -> None:
    data, out = results
    figures = {figure["name"]: figure for figure in data["suites"]["distributed"]}
    widths = Sizes.quick().parallel_widths
    expected = [
        "celery default: empty task",
        "celery ruvon-settings: empty task",
        "celery default: chain of 3 empty tasks",
        "ruvon: 3-step ASYNC, one queue",
        "ruvon: 3-step ASYNC, a queue per step",
        "celery default: .delay().get() p50",
        "celery ruvon-settings: .delay().get() p50",
        "ruvon: ASYNC step dispatch->commit p50",
        *(f"celery default: chord({w}) start->callback" for w in widths),
        *(f"celery ruvon-settings: chord({w}) start->callback" for w in widths),
        *(f"ruvon: PARALLEL({w}) start->join" for w in widths),
    ]
    for baseline in ("default", "ruvon-settings"):
        expected += [
            f"ratio vs {baseline}: ASYNC 1 queue",
            f"ratio vs {baseline}: ASYNC queue/step",
            f"ratio vs {baseline}: step p50 / .get() p50",
            *(f"ratio vs {baseline}: PARALLEL({w})" for w in widths),
        ]
    for name in expected:
        assert name in figures, name
        assert finite_positive(figures[name]["median"]), figures[name]
    markdown = (out / "results.md").read_text()
    for figure in data["targets"]:
        assert f"| {figure['name']} |" in markdown


def test_every_study_has_every_point(results: tuple[dict[str, Any], Path]) -> None:
    data, _ = results
    quick = Sizes.quick()
    expected_xs = {
        "state_size": list(quick.state_sizes_kb),
        "fan_out": list(quick.widths),
        "scaling": list(quick.process_counts),
    }
    studies = {study["key"]: study for study in data["studies"]}
    assert set(studies) == set(expected_xs)
    for key, study in studies.items():
        assert study["findings"], key
        for series in study["series"]:
            assert [point["x"] for point in series["points"]] == expected_xs[key], series
            for point in series["points"]:
                assert len(point["runs"]) == quick.runs
                assert all(finite_positive(value) for value in point["runs"]), (key, point)
                assert point["min"] <= point["median"] <= point["max"]


def test_fan_out_compares_like_with_like(results: tuple[dict[str, Any], Path]) -> None:
    data, _ = results
    study = next(s for s in data["studies"] if s["key"] == "fan_out")
    by_name = {series["name"]: series for series in study["series"]}
    total = by_name["ruvon: PARALLEL, start -> join committed"]["points"]
    per_branch = by_name["ruvon: per branch"]["points"]
    for whole, share in zip(total, per_branch, strict=True):
        assert share["median"] == pytest.approx(whole["median"] / whole["x"])


def test_writes_markdown_and_one_png_per_study(results: tuple[dict[str, Any], Path]) -> None:
    data, out = results
    markdown = (out / "results.md").read_text()
    for study in data["studies"]:
        assert study["title"] in markdown
        png = out / f"{study['key']}.png"
        assert png.read_bytes()[:8] == PNG_MAGIC, png
        assert png.stat().st_size > 10_000, png


@pytest.mark.timeout(120)
def test_server_suite_quick_run(capsys: pytest.CaptureFixture[str]) -> None:
    """``bench server --quick`` (its own cluster, ``ruvon server`` and live stream; ~15 s):
    every row present, positive and finite, and its three targets marked met or not."""
    assert main(["server", "--quick", "--json"]) == 0
    figures = {figure["name"]: figure for figure in json.loads(capsys.readouterr().out)}
    width = f"PARALLEL({ServerSizes.quick().fan_out_width:,})"
    prefixes = [
        *(f"list {name}:" for name in SERVER_LIST_QUERIES),
        f"workflow page /ui/workflows/{{id}}, {width}:",
        f"history JSON /api/v1/.../history, {width}:",
        "live stream (postgres): commit->event",
    ]
    expected = [f"{prefix} {stat}" for prefix in prefixes for stat in ("p50", "p95", "max")]
    assert sorted(figures) == sorted([*expected, "list, every query: p95"])
    for figure in figures.values():
        assert finite_positive(figure["median"]), figure
        assert figure["low"] <= figure["median"] <= figure["high"], figure
    marked = [f for f in figures.values() if f["target"].endswith((": met", ": NOT met"))]
    assert [f["name"] for f in marked] == [
        "list, every query: p95",
        f"workflow page /ui/workflows/{{id}}, {width}: p95",
        "live stream (postgres): commit->event max",
    ]
