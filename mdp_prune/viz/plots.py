"""Every figure of the project: accuracy and early stopping versus weights remaining, training curves, Q-learning
convergence, greedy plans, the Q-table and its coverage, and the grid search.

Each plotting function takes DataFrames (the results store's CSV tables, read with pandas) or arrays and returns a
`matplotlib.figure.Figure` built without pyplot, so it works under any backend (Agg included), never opens a
window, and is not kept alive by pyplot's figure registry. In a notebook, `display(fig)` shows it; `save_figure`
writes it as PNG. Fractions in the tables (0-1) are shown in percent.

Readers for a comparison folder (`load_comparison`, `find_run`, `qtable_snapshot`) live here too, so that the
notebooks stay a sequence of calls.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib import colors as mcolors
from matplotlib import ticker
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Rectangle

from mdp_prune.store import paths

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
PARAM_LABELS = {
    "qlearning.alpha": "α (Q-learning rate)",
    "qlearning.gamma": "γ (discount)",
    "qlearning.epsilon": "ε (exploration, start)",
    "qlearning.epsilon_end": "ε (exploration, end of schedule)",
    "qlearning.episodes": "episodes per round",
    "qlearning.beta": "β (reward scale)",
    "qlearning.budget": "budget mode",
}
COMPARISON_COLUMNS = ("method", "seed", "round", "weights_remaining", "test_accuracy", "val_accuracy",
                      "early_stop_iteration", "run_dir")


# -- readers ---------------------------------------------------------------------------------------------------

def load_comparison(results_dir: str | Path) -> dict[str, Any]:
    """Read a comparison folder (what `make compare-baseline` writes, default `results/compare/`).

    Returns a dict: `root` (Path), `comparison` (DataFrame of comparison.csv), `grid` (DataFrame of grid.csv, or
    None), `runs` ({method: {seed: run folder}}, folders that exist), `dense_accuracy` (mean test accuracy of the
    dense round 0 over seeds, or None), `report` and `figures` (Paths, or None when absent).
    """
    root = Path(results_dir).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"results folder {root} does not exist: run `make compare-baseline` first, "
                                "or point RESULTS at a comparison folder")
    table = root / "comparison.csv"
    if not table.is_file():
        raise FileNotFoundError(f"{root} is not a comparison folder (no comparison.csv): expected the output of "
                                "`make compare-baseline` (default results/compare)")
    comparison = pd.read_csv(table)
    missing = [c for c in COMPARISON_COLUMNS if c not in comparison.columns]
    if missing:
        raise ValueError(f"{table} lacks the column(s) {', '.join(missing)}")
    grid = pd.read_csv(root / "grid.csv") if (root / "grid.csv").is_file() else None

    runs: dict[str, dict[int, Path]] = {}
    for (method, seed), group in comparison.groupby(["method", "seed"], sort=True):
        for rel in group["run_dir"].dropna().unique():
            run = root / str(rel)
            if run.is_dir():
                runs.setdefault(str(method), {})[int(seed)] = run
                break
    dense = comparison[comparison["round"] == 0].drop_duplicates("seed")["test_accuracy"].dropna()
    return {
        "root": root,
        "comparison": comparison,
        "grid": grid,
        "runs": runs,
        "dense_accuracy": float(dense.mean()) if len(dense) else None,
        "report": root / "report.md" if (root / "report.md").is_file() else None,
        "figures": root / "figures" if (root / "figures").is_dir() else None,
    }


def find_run(data: dict[str, Any], method: str = "qlearning", seed: int = 0) -> Path | None:
    """The run folder of `method` for `seed` from `load_comparison`'s result; else its first seed; else the first
    `<method>_<hash>` run folder under `root/runs/`; else None."""
    by_seed = data.get("runs", {}).get(method, {})
    if seed in by_seed:
        return by_seed[seed]
    if by_seed:
        return by_seed[min(by_seed)]
    runs = Path(data["root"]) / "runs"
    found = sorted(p for p in runs.glob(f"{method}_*") if paths.is_run_dir(p)) if runs.is_dir() else []
    return found[0] if found else None


def read_table(run: str | Path, name: str) -> pd.DataFrame | None:
    """A run's CSV table (e.g. `paths.QLEARNING_LOG`), or None when the run has none."""
    path = Path(run) / name
    return pd.read_csv(path) if path.is_file() and path.stat().st_size > 0 else None


def layer_names(run: str | Path) -> list[str]:
    """The run's prunable layers in order, from the `remaining:<layer>` columns of rounds.csv."""
    table = read_table(run, paths.ROUNDS)
    return [] if table is None else [c.split(":", 1)[1] for c in table.columns if c.startswith("remaining:")]


def qtable_snapshot(run: str | Path, round_: int | None = None) -> dict[str, Any]:
    """The keyword arguments of `qtable_heatmaps` and `coverage` for a run's Q-table after `round_` (default: the
    last saved round), read from `qtable/round_<r>.npz` and the run's config.json."""
    import json

    from qtable import Discretizer

    run = Path(run)
    saved = sorted(int(p.stem.split("_")[1]) for p in (run / "qtable").glob("round_*.npz"))
    if not saved:
        raise FileNotFoundError(f"{run} has no Q-table snapshots (qtable/round_<r>.npz): is it a qlearning run?")
    round_ = saved[-1] if round_ is None else int(round_)
    with np.load(paths.qtable_file(run, round_)) as npz:
        values, visits = np.array(npz["values"]), np.array(npz["visits"])
    config = json.loads((run / paths.CONFIG).read_text())
    acc = Discretizer(config["qlearning"]["accuracy_edges"])
    sparsity = Discretizer(config["qlearning"]["sparsity_edges"])
    n_cells = acc.n_buckets * sparsity.n_buckets
    layers = layer_names(run)
    n_layers = values.shape[0] // n_cells - 1
    if len(layers) != n_layers:
        layers = [f"layer {i}" for i in range(n_layers)]
    return {"values": values, "visits": visits, "space_sizes": (n_layers + 1, acc.n_buckets, sparsity.n_buckets),
            "actions": list(config["prune"]["actions"]), "accuracy_labels": acc.labels(),
            "sparsity_labels": sparsity.labels(), "layers": layers, "round_": round_}


def save_figure(fig: Figure, folder: str | Path | None, name: str, dpi: int = 150) -> Path | None:
    """Write `fig` as `<folder>/<name>.png` (nothing when folder is None); returns the path."""
    if folder is None:
        return None
    path = Path(folder) / f"{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, bbox_inches="tight", facecolor="white")
    return path


# -- small helpers ---------------------------------------------------------------------------------------------

def method_color(method: str) -> str:
    if method in METHODS:
        return _PALETTE[METHODS.index(method)]
    return _PALETTE[(len(METHODS) + sum(map(ord, method))) % len(_PALETTE)]


def _ordered_methods(methods: Sequence[str]) -> list[str]:
    known = [m for m in METHODS if m in set(methods)]
    return known + sorted(set(methods) - set(known))


def _scale(metric: str) -> float:
    return 100.0 if metric in PERCENT_METRICS else 1.0


def _label(metric: str) -> str:
    return METRIC_LABELS.get(metric, metric.replace("_", " "))


def _pct(v: float) -> str:
    """Weights remaining as Frankle & Carbin print them: 100, 51.3, 21.1, 7.0, 3.6, 0.45."""
    if v >= 99.95:
        return "100"
    return f"{v:.1f}" if v >= 1 else f"{v:.2g}"


def _remaining_axis(ax: Axes, xs_percent: Sequence[float]) -> None:
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
    ax.xaxis.set_major_formatter(ticker.FixedFormatter([_pct(t) for t in ticks]))
    ax.xaxis.set_minor_locator(ticker.NullLocator())
    pad = 10 ** max(0.02, 0.04 * math.log10(hi / lo)) if hi > lo else 1.1
    ax.set_xlim(hi * pad, lo / pad)  # decreasing: inverted


def _new_figure(width: float, height: float) -> Figure:
    return Figure(figsize=(width, height), layout="constrained")


# -- accuracy and early stopping versus weights remaining ------------------------------------------------------

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
    scale = _scale(metric)
    agg = aggregate_by_round(frame, metric)
    fig = _new_figure(10.0, 5.2)
    ax = fig.add_subplot()
    for method in _ordered_methods(agg["method"].unique()):
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
    _remaining_axis(ax, agg["x"] * 100)
    ax.set_xlabel("Weights remaining (%, log scale; sparser to the right)")
    ax.set_ylabel(ylabel or _label(metric))
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
    name = _label(metric).split(" (")[0]
    title = title or f"{name} vs. weights remaining (IMP with rewinding)"
    return _versus_remaining(frame, metric, dense_accuracy, "dense network", title)


def early_stop_vs_remaining(frame: pd.DataFrame, dense_iteration: float | None = None,
                            metric: str = "early_stop_iteration", title: str | None = None) -> Figure:
    """The early-stopping iteration (minimum validation loss) against weights remaining, as
    `accuracy_vs_remaining`: winning tickets learn faster, so their curve dips below the dense line."""
    title = title or "Early-stopping iteration (min. validation loss) vs. weights remaining"
    return _versus_remaining(frame, metric, dense_iteration, "dense network", title)


# -- training curves -------------------------------------------------------------------------------------------

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
    methods = _ordered_methods(curves["method"].unique()) if "method" in curves.columns else [None]
    scale = _scale(metric)
    cols = min(len(methods), 3)
    nrows = math.ceil(len(methods) / cols)
    fig = _new_figure(5.2 * cols + 1.0, 4.2 * nrows)
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
                    label += f": {_pct(float(match.mean()) * 100)} % remaining"
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
        ax.set_ylabel(_label(metric))
        ax.set_title(str(method))
        ax.grid(True, alpha=0.3)
    title = title or f"{_label(metric).split(' (')[0]} during training, by pruning round"
    if methods == [None]:
        axes[0].set_title(title)
    else:
        fig.suptitle(title)
    return fig


# -- Q-learning convergence ------------------------------------------------------------------------------------

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
    fig = _new_figure(11, 8.5)
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
    fig = _new_figure(max(6.5, 3.0 + 1.2 * len(names)), max(3.6, 1.8 + 0.3 * len(rounds)))
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


# -- the Q-table -----------------------------------------------------------------------------------------------

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
    fig = _new_figure(3.6 + 0.75 * len(actions), 1.4 + 0.27 * sum(heights) + 0.9 * n_layers)
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


# -- grid search -----------------------------------------------------------------------------------------------

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


def _fmt_value(v: Any) -> str:
    return f"{v:g}" if isinstance(v, (int, float, np.integer, np.floating)) else str(v)


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
    scale = _scale(score)
    eps_values = sorted(ok[eps].unique(), key=str) if ok[eps].dtype == object else sorted(ok[eps].unique())
    a_values, g_values = sorted(ok[alpha].unique()), sorted(ok[gamma].unique())
    stats = ok.groupby([eps, gamma, alpha])[score].agg(["mean", "std", "count"]) * [scale, scale, 1]
    vmin, vmax = float(stats["mean"].min()), float(stats["mean"].max())
    if vmax - vmin < 1e-9:
        vmin, vmax = vmin - 0.5, vmax + 0.5
    best = stats["mean"].idxmax()
    cols = min(len(eps_values), 3)
    nrows = math.ceil(len(eps_values) / cols)
    fig = _new_figure(1.6 + cols * (1.2 + 1.1 * len(a_values)), 1.3 + nrows * (1.0 + 0.8 * len(g_values)))
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
        ax.set_xticks(range(len(a_values)), [_fmt_value(a) for a in a_values])
        ax.set_yticks(range(len(g_values)), [_fmt_value(g) for g in g_values])
        ax.set_xlabel(_param_label(alpha))
        ax.set_ylabel(_param_label(gamma))
        ax.set_title(f"{_param_label(eps)} = {_fmt_value(e)}", fontsize=10)
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
    scale = _scale(score)
    cols = min(len(params), 3)
    nrows = math.ceil(len(params) / cols)
    fig = _new_figure(1.0 + 3.8 * cols, 0.8 + 3.3 * nrows)
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
        ax.set_xticks(xs, [_fmt_value(v) for v in values])
        ax.set_xlim(-0.5, len(values) - 0.5)
        ax.set_xlabel(_param_label(param))
        ax.set_ylabel(_label(score))
        ax.set_title(f"Effect of {_param_label(param)}", fontsize=10)
        ax.grid(True, axis="y", alpha=0.3)
        ax.legend(fontsize=8, loc="best")
    failed = f" ({n_failed} failed cell{'s' if n_failed != 1 else ''} left out)" if n_failed else ""
    fig.suptitle(title or f"Grid search: marginal effect of each hyperparameter on {score.replace('_', ' ')}"
                          f"{failed}", fontsize=11)
    return fig
