"""The grid search's figures (from grid.csv), and the figures `compare` writes next to report.md."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from mdp_prune import viz
from mdp_prune.store import paths
from mdp_prune.viz.style import axis_label, fmt_value, new_figure, unit_scale

PARAM_LABELS = {
    "qlearning.alpha": "α (Q-learning rate)",
    "qlearning.gamma": "γ (discount)",
    "qlearning.epsilon": "ε (exploration, start)",
    "qlearning.epsilon_end": "ε (exploration, end of schedule)",
    "qlearning.episodes": "episodes per round",
    "qlearning.beta": "β (reward scale)",
    "qlearning.budget": "budget mode",
}


def _successful(grid: pd.DataFrame, score: str) -> tuple[pd.DataFrame, int]:
    if score not in grid.columns:
        raise ValueError(f"grid.csv has no column {score!r}")
    failed = grid["status"].astype(str).eq("failed") if "status" in grid.columns else pd.Series(False, grid.index)
    ok = grid[~failed & grid[score].notna()]
    if ok.empty:
        raise ValueError(f"no successful grid cell has a {score} (all {len(grid)} failed or unscored)")
    return ok, int(len(grid) - len(ok))


def grid_parameters(grid: pd.DataFrame) -> list[str]:
    """The hyperparameters (dotted configuration names) that take more than one value among the grid's cells."""
    return [c for c in grid.columns if "." in str(c) and grid[c].nunique(dropna=False) > 1]


def _param_label(name: str) -> str:
    return PARAM_LABELS.get(name, name)


def grid_heatmaps(grid: pd.DataFrame, score: str = "val_accuracy", title: str | None = None) -> Figure:
    """α × γ heat maps of the grid's `score` (mean over seeds and every other hyperparameter), one panel per ε value
    (`qlearning.epsilon_end` if it varies, else `qlearning.epsilon`). Failed cells are left out; the best cell
    is outlined."""
    ok, n_failed = _successful(grid, score)
    ok, everything = ok.copy(), grid.copy()
    alpha, gamma = "qlearning.alpha", "qlearning.gamma"
    eps = "qlearning.epsilon_end"
    if eps not in ok.columns or ok[eps].nunique() <= 1:
        eps = "qlearning.epsilon"
    for column in (alpha, gamma, eps):
        if column not in ok.columns:
            ok[column] = everything[column] = "default"
    tried = set(everything[[eps, gamma, alpha]].itertuples(index=False, name=None))
    scale = unit_scale(score)
    eps_values = sorted(ok[eps].unique(), key=str) if ok[eps].dtype == object else sorted(ok[eps].unique())
    a_values, g_values = sorted(ok[alpha].unique()), sorted(ok[gamma].unique())
    stats = ok.groupby([eps, gamma, alpha])[score].agg(["mean", "std", "count"]) * [scale, scale, 1]
    vmin, vmax = float(stats["mean"].min()), float(stats["mean"].max())
    if vmax - vmin < 1e-9:
        vmin, vmax = vmin - 0.5, vmax + 0.5
    best = stats["mean"].idxmax()
    cols = min(len(eps_values), 3)
    nrows = math.ceil(len(eps_values) / cols)
    fig = new_figure(1.6 + cols * (1.2 + 1.1 * len(a_values)), 1.3 + nrows * (1.0 + 0.8 * len(g_values)))
    axes = fig.subplots(nrows, cols, squeeze=False).ravel()
    for ax in axes[len(eps_values):]:
        ax.remove()
    image = None
    for ax, e in zip(axes, eps_values, strict=False):
        mean = np.full((len(g_values), len(a_values)), np.nan)
        for (i, g), (j, a) in ((ig, ja) for ig in enumerate(g_values) for ja in enumerate(a_values)):
            if (e, g, a) in stats.index:
                m, s, n = stats.loc[(e, g, a)]
                mean[i, j] = m
                label = f"{m:.1f}" + (f"\n± {s:.1f}" if np.isfinite(s) else "") + f"\nn={int(n)}"
                ax.text(j, i, label, ha="center", va="center", fontsize=8,
                        color="white" if (m - vmin) / (vmax - vmin) < 0.45 else "black")
                if (e, g, a) == best:
                    ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, edgecolor="#ff2020", lw=2.2))
            else:
                ax.text(j, i, "failed" if (e, g, a) in tried else "not run", ha="center", va="center", fontsize=8,
                        color="#505050")
        image = ax.imshow(np.ma.masked_invalid(mean), cmap="viridis", vmin=vmin, vmax=vmax, aspect="auto",
                          origin="lower")
        ax.set_facecolor("#e6e6e6")
        ax.set_xticks(range(len(a_values)), [fmt_value(a) for a in a_values])
        ax.set_yticks(range(len(g_values)), [fmt_value(g) for g in g_values])
        ax.set_xlabel(_param_label(alpha))
        ax.set_ylabel(_param_label(gamma))
        ax.set_title(f"{_param_label(eps)} = {fmt_value(e)}", fontsize=10)
    unit = " (%)" if scale == 100 else ""
    if image is not None:
        fig.colorbar(image, ax=list(axes[: len(eps_values)]), label=f"Mean {score.replace('_', ' ')}{unit}",
                     shrink=0.9)
    failed = f"; {n_failed} failed cell{'s' if n_failed != 1 else ''} left out" if n_failed else ""
    fig.suptitle(title or f"Grid search: mean {score.replace('_', ' ')} ± std over seeds and other "
                          f"hyperparameters (red box: best{failed})", fontsize=11)
    return fig


def grid_effects(grid: pd.DataFrame, score: str = "val_accuracy", title: str | None = None) -> Figure:
    """Each varied hyperparameter's marginal effect: the mean ± std of `score` over all successful cells (every
    seed and every value of the other hyperparameters) per value, with the cells themselves as dots."""
    ok, n_failed = _successful(grid, score)
    params = grid_parameters(ok)
    if not params:
        raise ValueError("no hyperparameter takes more than one value in the grid")
    scale = unit_scale(score)
    cols = min(len(params), 3)
    nrows = math.ceil(len(params) / cols)
    fig = new_figure(1.0 + 3.8 * cols, 0.8 + 3.3 * nrows)
    axes = fig.subplots(nrows, cols, squeeze=False, sharey=True).ravel()
    for ax in axes[len(params):]:
        ax.remove()
    rng = np.random.default_rng(0)
    for ax, param in zip(axes, params, strict=False):
        values = sorted(ok[param].unique(), key=lambda v: (isinstance(v, str), v))
        stats = ok.groupby(param)[score].agg(["mean", "std", "count"])
        xs = np.arange(len(values))
        for x, v in zip(xs, values, strict=True):
            cell = ok.loc[ok[param] == v, score] * scale
            ax.scatter(x + rng.uniform(-0.12, 0.12, len(cell)), cell, s=12, color="#7f7f7f", alpha=0.6,
                       label="one run (cell × seed)" if x == 0 else None, zorder=2)
        mean = stats.loc[values, "mean"].to_numpy() * scale
        std = stats.loc[values, "std"].fillna(0).to_numpy() * scale
        ax.errorbar(xs, mean, yerr=std, color="#d62728", marker="o", capsize=4, lw=1.6, label="mean ± std",
                    zorder=3)
        ax.set_xticks(xs, [fmt_value(v) for v in values])
        ax.set_xlim(-0.5, len(values) - 0.5)
        ax.set_xlabel(_param_label(param))
        ax.set_ylabel(axis_label(score))
        ax.set_title(f"Effect of {_param_label(param)}", fontsize=10)
        ax.grid(True, axis="y", alpha=0.3)
        ax.legend(fontsize=8, loc="best")
    failed = f" ({n_failed} failed cell{'s' if n_failed != 1 else ''} left out)" if n_failed else ""
    fig.suptitle(title or f"Grid search: marginal effect of each hyperparameter on {score.replace('_', ' ')}"
                          f"{failed}", fontsize=11)
    return fig


def write_figures(out: Path, frame: pd.DataFrame, table: pd.DataFrame) -> list[str]:
    """The report's figures as PNG under `out/figures/`: accuracy and early stopping against weights remaining,
    and the grid's heat maps when it has more than one cell. Returns their names."""
    dense = float(frame[frame["round"] == 0].drop_duplicates("seed")["test_accuracy"].mean())
    figures = {"accuracy_vs_remaining": viz.accuracy_vs_remaining(frame, dense_accuracy=dense),
               "early_stop_vs_remaining": viz.early_stop_vs_remaining(frame)}
    if len(table) > 1:
        figures["grid_heatmaps"] = grid_heatmaps(table)
    for name, fig in figures.items():
        viz.save_figure(fig, out / paths.FIGURES, name, dpi=120)
    return list(figures)
