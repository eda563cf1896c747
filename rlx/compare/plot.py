"""Curves: chosen metrics against step, one labelled line per run, one panel per metric.

Uses matplotlib's object API on an Agg canvas (no pyplot global state, no display needed). Files are written
atomically through `rlx.fsutil`.
"""

from __future__ import annotations

import io
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass

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


def render(cmp: Comparison, keys: Sequence[str], smooth: float = 0.0, dpi: int = 100) -> Plot:
    """Draw `keys` for every run of `cmp`. `smooth` is a TensorBoard-style EMA weight in [0, 1)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if not 0.0 <= smooth < 1.0:
        from rlx.errors import UsageError

        raise UsageError(f"--smooth must be in [0, 1), got {smooth}", where="--smooth",
                          hint="0 draws the raw curves; 0.6 is TensorBoard's default")
    keys = list(dict.fromkeys(keys))
    n = max(1, len(keys))
    ncols = 1 if n == 1 else 2
    nrows = math.ceil(n / ncols)
    fig = Figure(figsize=(7 * ncols, 3.6 * nrows), dpi=dpi, layout="constrained")
    FigureCanvasAgg(fig)
    lines = 0
    empty = []
    for i, key in enumerate(keys):
        ax = fig.add_subplot(nrows, ncols, i + 1)
        drawn = 0
        for row in cmp.rows:
            steps, values = cmp.curve(row.run_id, key)
            if not steps:
                continue
            ax.plot(steps, ema(values, smooth), label=row.label, linewidth=1.4)
            drawn += 1
        lines += drawn
        ax.set_title(key + (f" (EMA {smooth:g})" if smooth else ""), fontsize=10)
        ax.set_xlabel("step")
        ax.grid(True, alpha=0.3)
        if drawn == 0:
            empty.append(key)
            ax.text(0.5, 0.5, "no selected run logged this metric", ha="center", va="center",
                    transform=ax.transAxes, color="gray")
        elif drawn <= MAX_LEGEND:
            ax.legend(fontsize=8, loc="best")
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return Plot(buf.getvalue(), lines, keys, empty)


def write_png(plot: Plot, path: str | os.PathLike) -> None:
    """Write the PNG atomically (never a half-written file)."""
    atomic_write_bytes(path, plot.png)
