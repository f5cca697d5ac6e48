"""PNG plots of the studies (matplotlib, no screen needed): one file per study.

Each series is a line through its medians with the min-max spread as error bars; series in a
second unit (e.g. ms per branch next to total ms) get a second panel. matplotlib is imported
here only, so the benchmarks run without it unless ``--plot`` is asked for.
"""

from __future__ import annotations

from pathlib import Path

from loadtests.studies.model import Study

__all__ = ["plot_study", "require_matplotlib"]


def require_matplotlib() -> None:
    """Exit with a clear message if matplotlib is missing (it is in the loadtest/dev extras)."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise SystemExit(
            "--plot needs matplotlib: install it with `scripts/install dev` "
            "(or `pip install -e '.[loadtest]'`)"
        ) from None


def plot_study(study: Study, directory: Path) -> Path:
    """Draw ``study`` into ``directory/<key>.png``; return the path."""
    require_matplotlib()
    import matplotlib

    matplotlib.use("Agg")  # files only: works on a machine without a display
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, LogLocator, NullLocator

    units = study.units
    figure, axes = plt.subplots(1, len(units), figsize=(6.4 * len(units), 4.6), squeeze=False)
    for axis, unit in zip(axes[0], units, strict=True):
        for series in study.series:
            if series.unit != unit:
                continue
            xs = [point.x for point in series.points]
            medians = [point.median for point in series.points]
            spread = [
                [point.median - point.low for point in series.points],
                [point.high - point.median for point in series.points],
            ]
            axis.errorbar(
                xs,
                medians,
                yerr=spread,
                marker="o",
                capsize=4,
                linestyle="--" if series.name.startswith(("raw", "  ")) else "-",
                label=series.name.strip(),
            )
        if study.log_x:
            axis.set_xscale("log")
        if study.log_y:
            axis.set_yscale("log")
            # 1-2-5 steps with plain numbers: a narrow log range still gets labelled ticks.
            axis.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
            axis.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
            axis.yaxis.set_minor_locator(NullLocator())
        axis.set_xticks(study.xs)
        axis.set_xticklabels([_tick(x, study.x_unit) for x in study.xs])
        axis.xaxis.set_minor_locator(NullLocator())
        axis.set_xlabel(study.x_label + (f" ({study.x_unit})" if study.x_unit else ""))
        axis.set_ylabel(unit)
        axis.grid(True, which="major", alpha=0.3)
        axis.legend(fontsize="small")
    figure.suptitle(study.title + "\n(median of runs, bars: min-max)", fontsize="medium")
    figure.tight_layout()
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{study.key}.png"
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def _tick(x: float, unit: str) -> str:
    if unit == "KiB" and x >= 1024:
        return f"{x / 1024:g} MiB"
    return f"{x:g}"
