"""``python -m loadtests.bench all [--plot] [--quick] [--out DIR]``: every benchmark, one run.

In order: the ``embedded``, ``postgres`` and ``distributed`` suites (their tables, as the single
suites print them), then the three studies (:mod:`loadtests.studies`): state size and fan-out
width on the distributed suite's cluster (one prefork worker, concurrency 2), scaling on its own
clusters of 1, 2 and 4 worker processes. Each section prints as soon as it is measured. The
results go to ``--out`` (default ``loadtests/results/bench-all-<UTC time>/``): ``results.json``
(every figure with its runs, the studies' series, the machine), ``results.md`` (the tables in
Markdown) and, with ``--plot``, one PNG per study. ``--quick`` shrinks every count (a smoke run
of a minute, not a measurement).
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import subprocess
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from loadtests.bench import Figure, bench_embedded, header
from loadtests.bench_distributed import bench_distributed, distributed_cluster
from loadtests.bench_postgres import bench_postgres
from loadtests.studies.fan_out import WIDTHS, fan_out_study
from loadtests.studies.model import Study
from loadtests.studies.scaling import PROCESS_COUNTS, scaling_study
from loadtests.studies.state_size import SIZES_KB, state_size_study

__all__ = ["AllResults", "Sizes", "run_all"]

RESULTS_ROOT = Path(__file__).with_name("results")
_T = TypeVar("_T")


@dataclass(frozen=True)
class Sizes:
    """How much each section measures; :meth:`quick` is the smoke-test size."""

    runs: int = 3
    embedded_workflows: int = 2000
    postgres_workflows: int = 500
    tasks: int = 1000
    workflows: int = 200
    fan_outs: int = 100
    chords: int = 100
    samples: int = 200
    state_sizes_kb: tuple[int, ...] = SIZES_KB
    state_scale: float = 1.0
    widths: tuple[int, ...] = WIDTHS
    process_counts: tuple[int, ...] = PROCESS_COUNTS

    @classmethod
    def quick(cls, runs: int = 1) -> Sizes:
        return cls(
            runs=runs,
            embedded_workflows=100,
            postgres_workflows=50,
            tasks=20,
            workflows=5,
            fan_outs=2,
            chords=2,
            samples=5,
            state_sizes_kb=(1, 16, 64),
            state_scale=0.1,
            widths=(5, 10, 20),
            process_counts=(1, 2),
        )


@dataclass
class AllResults:
    """What ``all`` measured: the suites' figures by suite, and the studies."""

    suites: dict[str, list[Figure]] = field(default_factory=dict)
    studies: list[Study] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)

    def ratios(self) -> list[Figure]:
        """Every figure with a target: the headline ratios and the embedded targets."""
        return [f for figures in self.suites.values() for f in figures if f.target]

    def as_dict(self, sizes: Sizes) -> dict[str, Any]:
        return {
            "machine": _machine(),
            "sizes": asdict(sizes),
            "seconds": self.seconds,
            "suites": {name: [asdict(f) for f in figs] for name, figs in self.suites.items()},
            "studies": [study.as_dict() for study in self.studies],
            "targets": [asdict(f) for f in self.ratios()],
        }

    def markdown(self) -> str:
        parts = []
        for name, figures in self.suites.items():
            parts.append(f"### {name}\n")
            parts.append("| benchmark | median | unit | min - max | target |")
            parts.append("|---|---|---|---|---|")
            for f in figures:
                digits = 2 if abs(f.median) < 10 else 1
                parts.append(
                    f"| {f.name.strip()} | {f.median:,.{digits}f} | {f.unit} | "
                    f"{f.low:,.{digits}f} - {f.high:,.{digits}f} | {f.target} |"
                )
            parts.append("")
        for study in self.studies:
            parts.append(f"### {study.title}\n")
            parts.append(study.markdown())
            parts.append("")
            parts.extend(f"- {finding}" for finding in study.findings)
            parts.append("")
        return "\n".join(parts)


def run_all(
    sizes: Sizes,
    out: Path | None = None,
    *,
    plot: bool = False,
    postgres_url: str | None = None,
    echo: Callable[[str], None] = print,
) -> tuple[AllResults, Path]:
    """Measure everything, printing each section; write JSON, Markdown and PNGs to ``out``."""
    out = out or RESULTS_ROOT / f"bench-all-{_utc_stamp()}"
    out.mkdir(parents=True, exist_ok=True)
    results = AllResults()

    def timed(section: str, measure: Callable[[], _T]) -> _T:
        started = time.perf_counter()
        value = measure()
        results.seconds[section] = round(time.perf_counter() - started, 1)
        return value

    def suite(name: str, measure: Callable[[], list[Figure]]) -> None:
        results.suites[name] = timed(name, measure)
        echo(_suite_table(name, results.suites[name], results.seconds[name]))

    def study(measure: Callable[[], Study]) -> None:
        started = time.perf_counter()
        one = measure()
        results.seconds[one.key] = round(time.perf_counter() - started, 1)
        results.studies.append(one)
        echo(f"{one.table()}\n({results.seconds[one.key]:.1f} s)\n")

    runs = sizes.runs
    suite("embedded", lambda: bench_embedded(sizes.embedded_workflows, runs))
    suite("postgres", lambda: bench_postgres(sizes.postgres_workflows, runs, postgres_url))
    # Worker logs go to a temporary directory, kept (and its path logged) only if a run fails.
    with distributed_cluster() as cluster:
        suite(
            "distributed",
            lambda: bench_distributed(
                cluster,
                tasks=sizes.tasks,
                workflows=sizes.workflows,
                fan_outs=sizes.fan_outs,
                chords=sizes.chords,
                samples=sizes.samples,
                runs=runs,
            ).figures(),
        )
        study(
            lambda: state_size_study(
                cluster,
                sizes.state_sizes_kb,
                runs,
                scale=sizes.state_scale,
                postgres_url=postgres_url,
            )
        )
        study(lambda: fan_out_study(cluster, sizes.widths, runs))
    study(
        lambda: scaling_study(
            sizes.process_counts,
            tasks=sizes.tasks,
            workflows=sizes.workflows,
            runs=runs,
        )
    )
    if plot:
        from loadtests.plots import plot_study

        for one in results.studies:
            echo(f"plot: {plot_study(one, out)}")
    (out / "results.json").write_text(json.dumps(results.as_dict(sizes), indent=2) + "\n")
    (out / "results.md").write_text(results.markdown())
    echo(_targets_table(results.ratios()))
    return results, out


def _suite_table(name: str, figures: list[Figure], seconds: float) -> str:
    lines = [f"== {name} ({seconds:.1f} s)"]
    lines.append(header())
    lines.extend(figure.row() for figure in figures)
    return "\n".join(lines) + "\n"


def _targets_table(figures: list[Figure]) -> str:
    lines = ["== every figure with a target"]
    lines.extend(figure.row() for figure in figures)
    return "\n".join(lines)


def _utc_stamp() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")


def _machine() -> dict[str, Any]:
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=False,
            cwd=Path(__file__).parent,
        ).stdout.strip()
    except OSError:
        commit = ""
    return {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "commit": commit,
    }
