"""The Q-learning planner's figures: convergence over episodes, the plan per round, the Q-table and its coverage.

They read a run's qlearning.csv, qlearning_rounds.csv or plans.csv and its Q-table snapshots (`runs.qtable_snapshot`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
from matplotlib import colors as mcolors
from matplotlib import ticker
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from mdp_prune.viz.style import new_figure


def _episode_index(qlog: pd.DataFrame) -> tuple[pd.DataFrame, list[tuple[int, float, float]]]:
    log = qlog.sort_values(["round", "episode"], kind="stable").reset_index(drop=True)
    log["step"] = np.arange(len(log))
    spans = [(int(r), float(g["step"].min()) - 0.5, float(g["step"].max()) + 0.5)
             for r, g in log.groupby("round", sort=True)]
    return log, spans


def _mark_rounds(ax: Axes, spans: list[tuple[int, float, float]], label_top: bool) -> None:
    for _, start, _ in spans[1:]:
        ax.axvline(start, color="black", lw=0.8, ls=":", alpha=0.7)
    if label_top and spans:
        top = ax.secondary_xaxis("top")
        step = max(1, math.ceil(len(spans) / 20))
        shown = spans[::step]
        top.set_xticks([(a + b) / 2 for _, a, b in shown], [str(r) for r, _, _ in shown])
        top.tick_params(length=0, labelsize=8)
        top.set_xlabel("Pruning round (dotted lines: round boundaries)", fontsize=9)


def q_convergence(qlog: pd.DataFrame, title: str | None = None) -> Figure:
    """Convergence of the Q-learning planner from qlearning.csv: max and mean |ΔQ| per episode (log scale), the
    episode return, and the ε and α schedules, over the episodes of every round in sequence."""
    for column in ("round", "episode", "max_abs_dq", "mean_abs_dq", "return", "epsilon"):
        if column not in qlog.columns:
            raise ValueError(f"the Q-learning log has no column {column!r}")
    log, spans = _episode_index(qlog)
    fig = new_figure(11, 8.5)
    ax_dq, ax_ret, ax_eps = fig.subplots(3, 1, sharex=True, height_ratios=(1.3, 1, 0.7))
    for column, label, color in (("max_abs_dq", "max |ΔQ| over the episode's updates", "#d62728"),
                                 ("mean_abs_dq", "mean |ΔQ| over the episode's updates", "#1f77b4")):
        y = log[column].where(log[column] > 0)
        ax_dq.plot(log["step"], y, lw=0.8, color=color, label=label)
    ax_dq.set_yscale("log")
    ax_dq.set_ylabel("|ΔQ| per episode (reward units, log)")
    ax_dq.set_title("Size of the Q-value updates (zero updates not shown)")
    ax_dq.legend(fontsize=8, loc="lower left")

    per_round = int(log.groupby("round")["episode"].size().median())
    window = min(per_round, max(5, per_round // 20))
    ax_ret.plot(log["step"], log["return"], lw=0.6, color="#7f7f7f", alpha=0.7, label="return of each episode")
    if window > 1:
        smooth = log.groupby("round", sort=False)["return"].transform(
            lambda s: s.rolling(window, min_periods=1).mean())
        ax_ret.plot(log["step"], smooth, lw=1.6, color="#2ca02c", label=f"moving mean ({window} episodes)")
    ax_ret.set_ylabel("Return (sum of rewards)")
    ax_ret.set_title("Episode return (exploratory episodes included)")
    ax_ret.legend(fontsize=8, loc="lower right")

    ax_eps.plot(log["step"], log["epsilon"], color="#ff7f0e", lw=1.2, label="ε (exploration probability)")
    if "alpha" in log.columns:
        ax_eps.plot(log["step"], log["alpha"], color="#9467bd", lw=1.2, label="α (learning rate)")
    ax_eps.set_ylim(-0.05, 1.05)
    ax_eps.set_ylabel("Schedule value (0-1)")
    ax_eps.set_title("Exploration and learning-rate schedules (restart every round)")
    ax_eps.legend(fontsize=8, loc="upper right")
    for i, ax in enumerate((ax_dq, ax_ret, ax_eps)):
        _mark_rounds(ax, spans, label_top=i == 0)
        ax.grid(True, alpha=0.3)
        ax.set_xlabel("Episode (cumulative over rounds)")
        ax.set_xlim(-0.5, len(log) - 0.5)
    fig.suptitle(title or "Q-learning convergence across pruning rounds")
    return fig


def _plan_matrix(frame: pd.DataFrame, layers: Sequence[str] | None) -> tuple[np.ndarray, list[int], list[str]]:
    fraction_cols = [c for c in frame.columns if str(c).startswith("fraction:")]
    if fraction_cols:  # plans.csv: what was committed (after budget matching)
        table = frame.sort_values("round")
        return (table[fraction_cols].to_numpy(float), table["round"].astype(int).tolist(),
                [c.split(":", 1)[1] for c in fraction_cols])
    if "greedy_plan" not in frame.columns:
        raise ValueError("expected a qlearning.csv, qlearning_rounds.csv or plans.csv table "
                         "(a greedy_plan or fraction:<layer> column)")
    table = frame.sort_values(["round", "episode"] if "episode" in frame.columns else ["round"])
    table = table.groupby("round", sort=True).tail(1)  # per-episode log: the greedy plan after the last episode
    plans = [[float(v) for v in str(p).split("/")] for p in table["greedy_plan"]]
    width = max(len(p) for p in plans)
    matrix = np.array([p + [np.nan] * (width - len(p)) for p in plans])
    names = list(layers) if layers is not None and len(layers) == width else [f"layer {i}" for i in range(width)]
    return matrix, table["round"].astype(int).tolist(), names


def greedy_plans(frame: pd.DataFrame, layers: Sequence[str] | None = None, title: str | None = None) -> Figure:
    """Heat map round × layer of the plan per round: the share of each layer's remaining weights it prunes.

    `frame` is qlearning.csv (the greedy plan after each round's last episode), qlearning_rounds.csv (the greedy
    plan per round) or plans.csv (the fractions committed, after budget matching; any planner).
    """
    matrix, rounds, names = _plan_matrix(frame, layers)
    fig = new_figure(max(6.5, 3.0 + 1.2 * len(names)), max(3.6, 1.8 + 0.3 * len(rounds)))
    ax = fig.add_subplot()
    vmax = max(0.5, float(np.nanmax(matrix)) if np.isfinite(matrix).any() else 0.5) * 100
    image = ax.imshow(matrix * 100, cmap="YlOrRd", vmin=0, vmax=vmax, aspect="auto")
    for (i, j), v in np.ndenumerate(matrix):
        if np.isfinite(v):
            ax.text(j, i, f"{v * 100:.0f}", ha="center", va="center", fontsize=8,
                    color="white" if v * 100 > 0.6 * vmax else "black")
    ax.set_xticks(range(len(names)), names)
    ax.set_yticks(range(len(rounds)), [str(r) for r in rounds])
    ax.set_xlabel("Prunable layer (input → output)")
    ax.set_ylabel("Round (plan made after its training)")
    ax.set_title(title or "Plan per round: % of each layer's remaining weights pruned")
    fig.colorbar(image, ax=ax, label="Pruned (% of remaining)", shrink=0.9)
    return fig


def _state_rows(visits: np.ndarray, space_sizes: Sequence[int], layer: int) -> list[tuple[int, int, int]]:
    """(flat state, accuracy bucket, sparsity bucket) of the visited states of `layer`."""
    _, n_acc, n_sp = space_sizes
    rows = []
    for a in range(n_acc):
        for s in range(n_sp):
            state = int(np.ravel_multi_index((layer, a, s), tuple(space_sizes)))
            if visits[state].sum() > 0:
                rows.append((state, a, s))
    return rows


def _state_panels(matrix: np.ndarray, visits: np.ndarray, space_sizes: Sequence[int], actions: Sequence[float],
                  accuracy_labels: Sequence[str], sparsity_labels: Sequence[str], layers: Sequence[str] | None,
                  kind: str, title: str) -> Figure:
    space_sizes = tuple(int(v) for v in space_sizes)
    if matrix.shape != visits.shape or matrix.shape[0] != int(np.prod(space_sizes)):
        raise ValueError(f"table shape {matrix.shape} does not match the state space {space_sizes} "
                         f"and visits {visits.shape}")
    n_layers = space_sizes[0] - 1
    names = list(layers) if layers is not None and len(layers) == n_layers else [f"layer {i}" for i in
                                                                                 range(n_layers)]
    per_layer = [_state_rows(visits, space_sizes, layer) for layer in range(n_layers)]
    heights = [max(3, len(r)) for r in per_layer]
    fig = new_figure(3.6 + 0.75 * len(actions), 1.4 + 0.27 * sum(heights) + 0.9 * n_layers)
    axes = fig.subplots(n_layers, 1, squeeze=False, height_ratios=heights).ravel()
    visited = visits > 0
    if kind == "q":
        shown = matrix[visited] if visited.any() else np.zeros(1)
        low, high = float(shown.min()), float(shown.max())
        norm: mcolors.Normalize = mcolors.Normalize(low, high if high > low else low + 1.0)
        cmap, clabel = "viridis", "Q(s, a): expected return (reward units)"
    else:
        top = max(2, int(matrix.max()))
        norm = mcolors.LogNorm(1, top) if top > 20 else mcolors.Normalize(0, top)
        cmap = mcolors.LinearSegmentedColormap.from_list("visits", ["#c6dbef", "#4292c6", "#08306b"])
        clabel = "Visits N(s, a) (count" + (", log scale)" if top > 20 else ")")
    image = None
    greedy = np.argmax(matrix, axis=1) if kind == "q" else None  # the planner's tie rule: lowest index
    for ax, rows, name, layer in zip(axes, per_layer, names, range(n_layers), strict=True):
        ax.set_xticks(range(len(actions)), [f"{a * 100:g}" for a in actions])
        ax.set_xlabel("Action: prune % of the layer's remaining weights")
        ax.set_ylabel("State", fontsize=9)
        if not rows:
            ax.set_yticks([])
            ax.text(0.5, 0.5, "no visited states", transform=ax.transAxes, ha="center", va="center")
            ax.set_title(f"Layer {layer} ({name}): no visited states", fontsize=10)
            continue
        states = [s for s, _, _ in rows]
        data = np.ma.masked_where(~visited[states], matrix[states].astype(float))
        image = ax.imshow(data, cmap=cmap, norm=norm, aspect="auto", interpolation="nearest")
        ax.set_facecolor("#f2f2f2")
        ax.set_yticks(range(len(rows)), [f"drop {accuracy_labels[a]} | rem. {sparsity_labels[s]}"
                                         for _, a, s in rows], fontsize=8)
        annotate = len(rows) * len(actions) <= 240
        for i, state in enumerate(states):
            for j in range(len(actions)):
                if not visited[state, j]:
                    if annotate:
                        ax.text(j, i, "·", ha="center", va="center", fontsize=8, color="#808080")
                    continue
                if annotate:
                    v = matrix[state, j]
                    text = f"{v:.2f}" if kind == "q" else f"{int(v)}"
                    lum = np.mean(image.cmap(image.norm(v))[:3])
                    ax.text(j, i, text, ha="center", va="center", fontsize=7,
                            color="white" if lum < 0.5 else "black")
            if greedy is not None:
                ax.add_patch(Rectangle((greedy[state] - 0.5, i - 0.5), 1, 1, fill=False, edgecolor="#ff2020",
                                       lw=1.8))
        pairs = int(visited[states].sum())
        ax.set_title(f"Layer {layer} ({name}): {len(rows)} visited states, {pairs} of "
                     f"{len(rows) * len(actions)} of their actions tried", fontsize=10)
    if image is not None:
        bar = fig.colorbar(image, ax=list(axes), label=clabel, shrink=0.8, aspect=30)
        if kind != "q":
            bar.ax.yaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
            bar.ax.yaxis.set_minor_formatter(ticker.NullFormatter())
    fig.suptitle(f"{title}\nRows: proxy-accuracy drop bucket | weights-remaining bucket (fraction); "
                 "grey '·': never tried", fontsize=10)
    return fig


def qtable_heatmaps(values: np.ndarray, visits: np.ndarray, space_sizes: Sequence[int], actions: Sequence[float],
                    accuracy_labels: Sequence[str], sparsity_labels: Sequence[str],
                    layers: Sequence[str] | None = None, round_: int | None = None,
                    title: str | None = None) -> Figure:
    """The Q-table as heat maps, one panel per layer: rows are the visited (accuracy-drop bucket, weights-remaining
    bucket) states of that layer, columns the action fractions. Untried pairs are grey (their value is the initial
    one); a red box marks the greedy action of each state.

    The flat state index is `np.ravel_multi_index((layer, acc_bucket, sparsity_bucket), space_sizes)` with
    `space_sizes = (n_layers + 1, n_accuracy_buckets, n_sparsity_buckets)`; `qtable_snapshot` builds all arguments.
    """
    when = f" after round {round_}" if round_ is not None else ""
    title = title or f"Q-table{when}: value of each action in each visited state (red box: greedy action)"
    return _state_panels(np.asarray(values, float), np.asarray(visits), space_sizes, actions, accuracy_labels,
                         sparsity_labels, layers, "q", title)


def coverage(visits: np.ndarray, space_sizes: Sequence[int], actions: Sequence[float],
             accuracy_labels: Sequence[str], sparsity_labels: Sequence[str], layers: Sequence[str] | None = None,
             round_: int | None = None, title: str | None = None, values: np.ndarray | None = None) -> Figure:
    """State–action visit counts N(s, a) (cumulative over rounds), laid out as `qtable_heatmaps`."""
    visits = np.asarray(visits)
    when = f" up to round {round_}" if round_ is not None else ""
    total = int((visits > 0).sum())
    title = title or (f"State–action coverage{when}: {total} of {visits.size} pairs visited "
                      f"({int(visits.sum())} updates)")
    return _state_panels(visits, visits, space_sizes, actions, accuracy_labels, sparsity_labels, layers, "visits",
                         title)
