"""Curves: chosen metrics against step, one labelled line per run, one panel per metric.

Uses matplotlib's object API on an Agg canvas (no pyplot global state, no display needed). Files are written
atomically through `rlx.fsutil`.
"""

from __future__ import annotations

import io
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field

from rlx.compare.core import Comparison
from rlx.compare.metrics import smooth as ema
from rlx.fsutil import atomic_write_bytes

MAX_LEGEND = 20  # beyond this many runs a legend hides the curves: lines stay, labels go


@dataclass
class Plot:
    """A rendered figure: PNG bytes, how many run lines it drew, and the panels (metric keys) it has."""

    png: bytes
    lines: int
    panels: list[str]
    empty: list[str]  # metrics no selected run logged (their panel says so)
    legends: dict[str, list[str]] = field(default_factory=dict)  # panel -> its legend's entries, as drawn


def default_keys(cmp: Comparison) -> list[str]:
    """The curves `--plot` and `--html` draw: every metric column of the table (the key metrics the runs logged,
    the validation headlines, `--metric` extras; with `--only-metric` exactly those)."""
    return [m.key for m in cmp.metrics]


def legend_label(row) -> str:
    """A line's legend entry: the run's table label and its algorithm, e.g. `gspo-copy-3f9a (gspo)`."""
    return f"{row.label} ({row.algorithm})" if row.algorithm else row.label


def _check_smooth(smooth: float) -> None:
    if not 0.0 <= smooth < 1.0:
        from rlx.errors import UsageError

        raise UsageError(
            f"--smooth must be in [0, 1), got {smooth}",
            where="--smooth",
            hint="0 draws the raw curves; 0.6 is TensorBoard's default",
        )


def title(key: str, smooth: float = 0.0) -> str:
    """A panel's title: the full metric key, with the smoothing when there is some."""
    return key + (f" (EMA {smooth:g})" if smooth else "")


def _panel(ax, cmp: Comparison, key: str, smooth: float) -> int:
    """Draw one metric's lines on `ax`; returns how many runs had points."""
    drawn = 0
    for row in cmp.rows:
        steps, values = cmp.curve(row.run_id, key)
        if not steps:
            continue
        ax.plot(steps, ema(values, smooth), label=legend_label(row), linewidth=1.4)
        drawn += 1
    ax.set_title(title(key, smooth), fontsize=10)
    ax.set_xlabel("step")
    ax.xaxis.get_major_locator().set_params(integer=True)  # steps are whole numbers: no 1.25 ticks on short runs
    ax.grid(True, alpha=0.3)
    if drawn == 0:
        ax.text(
            0.5,
            0.5,
            "no selected run logged this metric",
            ha="center",
            va="center",
            transform=ax.transAxes,
            color="gray",
        )
    elif drawn <= MAX_LEGEND:
        ax.legend(fontsize=8, loc="best")
    return drawn


def render(cmp: Comparison, keys: Sequence[str], smooth: float = 0.0, dpi: int = 100) -> Plot:
    """Draw `keys` for every run of `cmp`, one panel each, in one figure. `smooth` is a TensorBoard-style EMA
    weight in [0, 1)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    _check_smooth(smooth)
    keys = list(dict.fromkeys(keys))
    n = max(1, len(keys))
    ncols = 1 if n == 1 else 2
    nrows = math.ceil(n / ncols)
    fig = Figure(figsize=(7 * ncols, 3.6 * nrows), dpi=dpi, layout="constrained")
    FigureCanvasAgg(fig)
    lines = 0
    empty = []
    legends = {}
    for i, key in enumerate(keys):
        ax = fig.add_subplot(nrows, ncols, i + 1)
        drawn = _panel(ax, cmp, key, smooth)
        lines += drawn
        if drawn == 0:
            empty.append(key)
        legend = ax.get_legend()
        legends[key] = [t.get_text() for t in legend.get_texts()] if legend is not None else []
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return Plot(buf.getvalue(), lines, keys, empty, legends)


def render_each(cmp: Comparison, keys: Sequence[str], smooth: float = 0.0, dpi: int = 90) -> list[tuple[str, bytes]]:
    """One PNG per metric, [(key, png)] in `keys` order: the HTML page gives each chart its own caption."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    _check_smooth(smooth)
    out = []
    for key in dict.fromkeys(keys):
        fig = Figure(figsize=(6.4, 3.4), dpi=dpi, layout="constrained")
        FigureCanvasAgg(fig)
        _panel(fig.add_subplot(1, 1, 1), cmp, key, smooth)
        buf = io.BytesIO()
        fig.savefig(buf, format="png")
        out.append((key, buf.getvalue()))
    return out


def write_png(plot: Plot, path: str | os.PathLike) -> None:
    """Write the PNG atomically (never a half-written file)."""
    atomic_write_bytes(path, plot.png)
