"""Accuracy and early stopping against weights remaining, and training curves by round.

The functions take the results store's tables (rounds.csv, curves.csv, or a long table of several methods and
seeds with `method` and `seed` columns) and return a `matplotlib.figure.Figure`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
from matplotlib import colors as mcolors
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from mdp_prune.viz.style import (
    PERCENT_METRICS,
    axis_label,
    method_color,
    new_figure,
    ordered_methods,
    pct,
    remaining_axis,
    unit_scale,
)


def aggregate_by_round(frame: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Mean and std over seeds per method and round (per method and weights remaining without a round column):
    columns method, round, x (mean weights remaining), mean, std, n."""
    data = frame.dropna(subset=[metric, "weights_remaining"])
    keys = ["method", "round"] if "round" in data.columns else ["method", "weights_remaining"]
    out = data.groupby(keys, sort=True).agg(x=("weights_remaining", "mean"), mean=(metric, "mean"),
                                            std=(metric, "std"), n=(metric, "count")).reset_index()
    if "round" not in out.columns:
        out["round"] = out.groupby("method")["x"].rank(ascending=False, method="first").astype(int) - 1
    return out.sort_values(["method", "round"], kind="stable").reset_index(drop=True)


def _versus_remaining(frame: pd.DataFrame, metric: str, reference: float | None, reference_label: str,
                      title: str, ylabel: str | None = None) -> Figure:
    for column in ("method", "weights_remaining", metric):
        if column not in frame.columns:
            raise ValueError(f"the table has no column {column!r} (columns: {', '.join(map(str, frame.columns))})")
    scale = unit_scale(metric)
    agg = aggregate_by_round(frame, metric)
    fig = new_figure(10.0, 5.2)
    ax = fig.add_subplot()
    for method in ordered_methods(agg["method"].unique()):
        rows = agg[agg["method"] == method]
        x, mean, std = rows["x"] * 100, rows["mean"] * scale, rows["std"].fillna(0.0) * scale
        seeds = frame.loc[frame["method"] == method, "seed"].nunique() if "seed" in frame.columns else int(
            rows["n"].max())
        color = method_color(method)
        ax.plot(x, mean, marker="o", markersize=4, lw=1.8, color=color,
                label=f"{method} ({seeds} seed{'s' if seeds != 1 else ''})")
        upper = np.minimum(mean + std, 100.0) if metric in PERCENT_METRICS else mean + std  # no accuracy above 100 %
        ax.fill_between(x, mean - std, upper, color=color, alpha=0.18, lw=0)
    if reference is not None and np.isfinite(reference):
        ax.axhline(reference * scale, ls="--", lw=1.2, color="black",
                   label=f"{reference_label} ({reference * scale:.1f}{' %' if scale == 100 else ''})")
    remaining_axis(ax, agg["x"] * 100)
    ax.set_xlabel("Weights remaining (%, log scale; sparser to the right)")
    ax.set_ylabel(ylabel or axis_label(metric))
    ax.set_title(title)
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=9, title="mean ± std over seeds",
              title_fontsize=9, frameon=False)
    return fig


def accuracy_vs_remaining(frame: pd.DataFrame, dense_accuracy: float | None = None, metric: str = "test_accuracy",
                          title: str | None = None) -> Figure:
    """Accuracy (%) against weights remaining (%, log axis, inverted) per method, mean ± std band over seeds.

    `frame` is long: one row per method × seed × round, columns method, seed, (round,) weights_remaining and
    `metric`. Seeds are aggregated per method and round (weights remaining: their mean). `dense_accuracy` (0-1)
    draws the dense network as a dashed horizontal line.
    """
    name = axis_label(metric).split(" (")[0]
    title = title or f"{name} vs. weights remaining (IMP with rewinding)"
    return _versus_remaining(frame, metric, dense_accuracy, "dense network", title)


def early_stop_vs_remaining(frame: pd.DataFrame, dense_iteration: float | None = None,
                            metric: str = "early_stop_iteration", title: str | None = None) -> Figure:
    """The early-stopping iteration (minimum validation loss) against weights remaining, as
    `accuracy_vs_remaining`: winning tickets learn faster, so their curve dips below the dense line."""
    title = title or "Early-stopping iteration (min. validation loss) vs. weights remaining"
    return _versus_remaining(frame, metric, dense_iteration, "dense network", title)


def _pick_rounds(available: Sequence[int], wanted: int) -> list[int]:
    available = sorted(set(int(r) for r in available))
    if len(available) <= wanted:
        return available
    idx = np.unique(np.round(np.linspace(0, len(available) - 1, wanted)).astype(int))
    return [available[i] for i in idx]


def training_curves(curves: pd.DataFrame, rounds: Sequence[int] | pd.DataFrame | None = None,
                    rounds_table: pd.DataFrame | None = None, metric: str = "val_accuracy", max_rounds: int = 5,
                    title: str | None = None) -> Figure:
    """Validation accuracy (or `metric`) during training, one line per chosen round.

    `curves` is a run's curves.csv (round, iteration, val_loss, val_accuracy); with a `method` column, one panel per
    method. `rounds` lists the rounds to draw (default: up to `max_rounds` spread from the dense round 0 to the
    last). `rounds_table` (the run's rounds.csv, with a `method` column when `curves` has one) labels each round
    with its weights remaining. A rounds table given as `rounds` is taken as `rounds_table`. A dot marks each
    round's early-stopping iteration (minimum validation loss).
    """
    if isinstance(rounds, pd.DataFrame):
        rounds, rounds_table = None, rounds
    for column in ("round", "iteration", metric):
        if column not in curves.columns:
            raise ValueError(f"curves table has no column {column!r}")
    methods = ordered_methods(curves["method"].unique()) if "method" in curves.columns else [None]
    scale = unit_scale(metric)
    cols = min(len(methods), 3)
    nrows = math.ceil(len(methods) / cols)
    fig = new_figure(5.2 * cols + 1.0, 4.2 * nrows)
    axes = fig.subplots(nrows, cols, squeeze=False, sharey=True).ravel()
    for ax in axes[len(methods):]:
        ax.remove()
    for ax, method in zip(axes, methods, strict=False):
        data = curves if method is None else curves[curves["method"] == method]
        table = rounds_table
        if table is not None and method is not None and "method" in table.columns:
            table = table[table["method"] == method]
        chosen = [r for r in (rounds if rounds is not None else _pick_rounds(data["round"].unique(), max_rounds))
                  if r in set(data["round"])]
        cmap = mcolors.LinearSegmentedColormap.from_list("rounds", ["#08306b", "#2171b5", "#41ab5d", "#fe9929",
                                                                     "#cc4c02"])
        for i, r in enumerate(chosen):
            part = data[data["round"] == r].sort_values("iteration")
            color = cmap(i / max(1, len(chosen) - 1))
            label = f"round {r}"
            if table is not None and "weights_remaining" in table.columns:
                match = table.loc[table["round"] == r, "weights_remaining"]
                if len(match):
                    label += f": {pct(float(match.mean()) * 100)} % remaining"
            ax.plot(part["iteration"], part[metric] * scale, color=color, lw=1.6, label=label)
            if "val_loss" in part.columns and part["val_loss"].notna().any():
                best = part.loc[part["val_loss"].idxmin()]
                ax.plot(best["iteration"], best[metric] * scale, "o", color=color, markersize=6,
                        markeredgecolor="black", markeredgewidth=0.6)
        handles, _ = ax.get_legend_handles_labels()
        if "val_loss" in data.columns:
            handles.append(Line2D([], [], marker="o", ls="", color="grey", markeredgecolor="black",
                                  label="early stop (min. val. loss)"))
        ax.legend(handles=handles, fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2,
                  frameon=False)
        if data.groupby("round")["iteration"].size().min() >= 10:  # long runs: zoom past the first 10 % of training
            later = data.loc[data["iteration"] >= 0.1 * data["iteration"].max(), metric].dropna() * scale
            if len(later) and later.max() > later.min():
                span = later.max() - later.min()
                ax.set_ylim(later.min() - 0.08 * span, later.max() + 0.05 * span)
        ax.set_xlabel("Training iteration (optimizer steps)")
        ax.set_ylabel(axis_label(metric))
        ax.set_title(str(method))
        ax.grid(True, alpha=0.3)
    title = title or f"{axis_label(metric).split(' (')[0]} during training, by pruning round"
    if methods == [None]:
        axes[0].set_title(title)
    else:
        fig.suptitle(title)
    return fig
