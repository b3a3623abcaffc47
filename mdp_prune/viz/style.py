"""The look shared by every figure: method colours, axis labels and units, the log axis of weights remaining.

Figures are built without pyplot (`new_figure`), so they work under any backend (Agg included), never open a
window, and are not kept alive by pyplot's figure registry. Fractions in the tables (0-1) are shown in percent.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib import ticker
from matplotlib.axes import Axes
from matplotlib.figure import Figure

# Methods of the comparison in a fixed order, each with a fixed colour in every figure.
METHODS = ("qlearning", "lt", "global", "random", "lamp", "erk", "reinit", "random-prune", "qlearning-free")
_PALETTE = ("#d62728", "#1f77b4", "#2ca02c", "#7f7f7f", "#9467bd", "#8c564b", "#ff7f0e", "#e377c2",
            "#17becf", "#bcbd22")


METRIC_LABELS = {
    "test_accuracy": "Test accuracy (%)",
    "val_accuracy": "Validation accuracy (%)",
    "weights_remaining": "Weights remaining (%)",
    "early_stop_iteration": "Early-stopping iteration (training steps)",
    "val_loss": "Validation loss (cross-entropy, nats)",
    "train_iterations": "Training iterations (cumulative)",
    "seconds": "Wall-clock time (s, cumulative)",
}
PERCENT_METRICS = {"test_accuracy", "val_accuracy", "weights_remaining"}


def save_figure(fig: Figure, folder: str | Path | None, name: str, dpi: int = 150) -> Path | None:
    """Write `fig` as `<folder>/<name>.png` (nothing when folder is None); returns the path."""
    if folder is None:
        return None
    path = Path(folder) / f"{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, bbox_inches="tight", facecolor="white")
    return path


def method_color(method: str) -> str:
    if method in METHODS:
        return _PALETTE[METHODS.index(method)]
    return _PALETTE[(len(METHODS) + sum(map(ord, method))) % len(_PALETTE)]


def ordered_methods(methods: Sequence[str]) -> list[str]:
    known = [m for m in METHODS if m in set(methods)]
    return known + sorted(set(methods) - set(known))


def unit_scale(metric: str) -> float:
    return 100.0 if metric in PERCENT_METRICS else 1.0


def axis_label(metric: str) -> str:
    return METRIC_LABELS.get(metric, metric.replace("_", " "))


def pct(v: float) -> str:
    """Weights remaining as Frankle & Carbin print them: 100, 51.3, 21.1, 7.0, 3.6, 0.45."""
    if v >= 99.95:
        return "100"
    return f"{v:.1f}" if v >= 1 else f"{v:.2g}"


def remaining_axis(ax: Axes, xs_percent: Sequence[float]) -> None:
    """Log x axis of weights remaining (%), inverted so that sparsity grows to the right, ticked at the levels
    reached (thinned so that labels never overlap)."""
    xs = sorted({round(float(x), 2) for x in xs_percent if x > 0}, reverse=True)
    ax.set_xscale("log")
    if not xs:
        return
    hi, lo = xs[0], xs[-1]
    gap = max(math.log10(hi / lo) / 9, 0.035)
    ticks: list[float] = []
    for x in xs:
        if not ticks or math.log10(ticks[-1] / x) >= gap:
            ticks.append(x)
    if ticks[-1] != lo:  # always label the sparsest level reached, in place of a neighbour too close to it
        if len(ticks) > 1 and math.log10(ticks[-1] / lo) < gap:
            ticks[-1] = lo
        else:
            ticks.append(lo)
    ax.xaxis.set_major_locator(ticker.FixedLocator(ticks))
    ax.xaxis.set_major_formatter(ticker.FixedFormatter([pct(t) for t in ticks]))
    ax.xaxis.set_minor_locator(ticker.NullLocator())
    pad = 10 ** max(0.02, 0.04 * math.log10(hi / lo)) if hi > lo else 1.1
    ax.set_xlim(hi * pad, lo / pad)  # decreasing: inverted


def new_figure(width: float, height: float) -> Figure:
    return Figure(figsize=(width, height), layout="constrained")


def fmt_value(v: Any) -> str:
    return f"{v:g}" if isinstance(v, (int, float, np.integer, np.floating)) else str(v)
