"""What a study measures: series of points, each point one value per run (median and spread).

A :class:`Study` is the unit the harness prints as a table, writes as JSON and draws as a PNG
(:mod:`loadtests.plots`). It knows nothing about how its values were measured.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Point", "Series", "Study"]


@dataclass(frozen=True)
class Point:
    """One x of one series: a value per run."""

    x: float
    values: tuple[float, ...]

    @property
    def median(self) -> float:
        return statistics.median(self.values)

    @property
    def low(self) -> float:
        return min(self.values)

    @property
    def high(self) -> float:
        return max(self.values)

    def as_dict(self) -> dict[str, Any]:
        return {
            "x": self.x,
            "median": self.median,
            "min": self.low,
            "max": self.high,
            "runs": list(self.values),
        }


@dataclass(frozen=True)
class Series:
    """One line of a study (e.g. "ruvon" next to "raw celery"), in one unit."""

    name: str
    unit: str
    points: tuple[Point, ...]

    def at(self, x: float) -> Point:
        for point in self.points:
            if point.x == x:
                return point
        raise KeyError(f"series {self.name!r} has no point at x={x}")


@dataclass(frozen=True)
class Study:
    """A table and a plot: ``series`` over the same ``xs``; ``panels`` name the plot's panels.

    Series whose unit differs from the first series' unit are drawn in a second panel (e.g.
    total time next to time per branch). ``findings`` are one-line conclusions the harness
    derives from the figures (growth factors, ratios), printed under the table.
    """

    key: str
    title: str
    x_label: str
    x_unit: str
    series: tuple[Series, ...]
    log_x: bool = False
    log_y: bool = False
    findings: tuple[str, ...] = field(default=())

    @property
    def xs(self) -> list[float]:
        return sorted({point.x for series in self.series for point in series.points})

    @property
    def units(self) -> list[str]:
        return list(dict.fromkeys(series.unit for series in self.series))

    def table(self) -> str:
        """A plain-text table: one row per series and x, median with the min-max spread."""
        lines = [f"{self.title}", f"{'series':<46} {self.x_label:>12} {'median':>12} [min - max]"]
        for series in self.series:
            for point in series.points:
                lines.append(
                    f"{series.name:<46} {_number(point.x):>12} "
                    f"{_number(point.median):>12} [{_number(point.low)} - {_number(point.high)}]"
                    f" {series.unit}"
                )
        lines.extend(f"  -> {finding}" for finding in self.findings)
        return "\n".join(lines)

    def markdown(self) -> str:
        """The same figures as a Markdown table, one column per x."""
        header = f"| {self.x_label} | " + " | ".join(
            f"{_number(x)} {self.x_unit}".strip() for x in self.xs
        )
        lines = [header + " |", "|---" * (len(self.xs) + 1) + "|"]
        for series in self.series:
            cells = []
            for x in self.xs:
                try:
                    point = series.at(x)
                except KeyError:
                    cells.append("")
                    continue
                cells.append(
                    f"{_number(point.median)} ({_number(point.low)} - {_number(point.high)})"
                )
            lines.append(f"| {series.name} ({series.unit}) | " + " | ".join(cells) + " |")
        return "\n".join(lines)

    def as_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "title": self.title,
            "x_label": self.x_label,
            "x_unit": self.x_unit,
            "findings": list(self.findings),
            "series": [
                {
                    "name": series.name,
                    "unit": series.unit,
                    "points": [point.as_dict() for point in series.points],
                }
                for series in self.series
            ],
        }


def _number(value: float) -> str:
    if value == int(value) and abs(value) >= 1:
        return f"{int(value):,}"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:,.1f}"
    return f"{value:,.2f}"
