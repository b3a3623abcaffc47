"""report.md of a comparison: one function per section, each returning its markdown lines.

Numbers come from comparison.csv (`frame`) and grid.csv (`table`); test accuracy appears here and nowhere in the
selection.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from gridsearch import markdown
from gridsearch.figures import write_figures
from gridsearch.grid import Grid
from gridsearch.markdown import mean_std, seed_cell
from gridsearch.stats import paired_difference
from gridsearch.summarize import against, convergence, environments_note, reaching
from mdp_prune.config import RunConfig
from mdp_prune.engine import data
from mdp_prune.engine.models import build_model, multiply_adds
from mdp_prune.store import io, paths

Lines = list[str]


def write_report(out: Path, frame: pd.DataFrame, table: pd.DataFrame, best: dict[str, Any], grid: Grid,
                 config: RunConfig, target: float) -> Path:
    methods = list(dict.fromkeys(frame["method"]))
    seeds = sorted(frame["seed"].unique())
    sections = [
        _header(out, frame, config, seeds),
        _grid_section(table, best, grid, config),
        _accuracy_section(frame, methods, len(seeds)),
        _target_section(frame, methods, len(seeds), target, config),
        _compression_section(out, frame, methods, config),
        _difference_section(frame),
        _against_section(frame),
        _convergence_section(out, frame),
        _figures_section(out, frame, table),
    ]
    report = out / paths.REPORT
    io.write_bytes(report, "\n".join(line for section in sections for line in section).encode())
    return report


def _header(out: Path, frame: pd.DataFrame, config: RunConfig, seeds: list[int]) -> Lines:
    t = config.train
    lines = [f"# Comparison: {t.dataset}, {t.model}, {config.rounds} rounds, seeds {', '.join(map(str, seeds))}", "",
             f"Training: {t.train_iterations} iterations per round, batch {t.batch_size}, {t.optimizer} lr {t.lr}, "
             f"rewind to iteration {t.rewind_iteration}. Every method shares the training code, data and seeds.", ""]
    note = environments_note([out / r for r in frame["run_dir"].unique()])
    return lines + ([f"**Note**: {note}", ""] if note else [])


def _grid_section(table: pd.DataFrame, best: dict[str, Any], grid: Grid, config: RunConfig) -> Lines:
    n_failed = int((table["status"] != "done").sum())
    scored = grid.scored_rounds(config)
    return ["## Grid search (validation only)", "",
            f"Grid `{grid.name}`: {len(table)} cells ({len(grid.combinations())} combinations × {len(grid.seeds)} "
            f"seeds), {n_failed} failed. Score: validation accuracy averaged over the pruned rounds"
            f"{f' 1–{scored}' if scored < config.rounds else ''} and the seeds.",
            "", f"Chosen: {', '.join(f'`{k}={v}`' for k, v in best.items()) or 'the only combination'}.", ""]


def _accuracy_section(frame: pd.DataFrame, methods: list[str], n_seeds: int) -> Lines:
    dense = frame[frame["round"] == 0]
    lines = ["## Test accuracy (%), mean ± std over seeds", "",
             f"Dense network (round 0): {mean_std(dense.drop_duplicates('seed')['test_accuracy'])} %. "
             "`qlearning` is the chosen configuration in budget mode (each round removes the lt baseline's share "
             "of weights); `qlearning-free` lets its reward set the pace and stops at the target; `reinit` is the "
             "chosen tickets' masks with fresh random weights. (n=k): only k seeds ran that round (a run stops "
             "at the target or on a plan that prunes nothing).", ""]
    by_round = []
    for r in sorted(frame["round"].unique()):
        row: dict[str, Any] = {"round": r}
        lt = frame[(frame["method"] == "lt") & (frame["round"] == r)]["weights_remaining"]
        row["weights remaining (lt) %"] = f"{lt.mean() * 100:.1f}" if len(lt) else "–"
        for m in methods:
            row[m] = seed_cell(frame[(frame["method"] == m) & (frame["round"] == r)]["test_accuracy"], n_seeds)
        by_round.append(row)
    remaining = frame.groupby(["method", "round"])["weights_remaining"].mean().unstack("method")[methods] * 100
    return lines + [markdown.table(pd.DataFrame(by_round)), "",
                    "Weights remaining (%) by round, mean over seeds:", "",
                    markdown.table(remaining.round(2).astype(object).reset_index().fillna("–")), ""]


def _target_section(frame: pd.DataFrame, methods: list[str], n_seeds: int, target: float,
                    config: RunConfig) -> Lines:
    lines = ["## Reaching the target", "",
             f"Target: {target * 100:.2f} % of weights remaining (the lt ladder after {config.rounds} rounds). "
             "Rounds, weights remaining, cumulative training iterations, the planner's proxy iterations (its "
             "short retrainings), their sum, and seconds until a method first reaches it, and the test accuracy "
             "there (mean ± std over seeds; seeds that never reach it are counted in the last column). Round 0, "
             "the dense network, is included for every method.", ""]
    pruning = frame[frame["method"].isin(_pruning_methods(methods))]
    return lines + [markdown.table(reaching(pruning, target, n_seeds)), ""]


def _pruning_methods(methods: list[str]) -> list[str]:
    # A control retrains single tickets: it has no pruning trajectory of its own.
    return [m for m in methods if m != "reinit"]


def _compression_section(out: Path, frame: pd.DataFrame, methods: list[str], config: RunConfig) -> Lines:
    lines = ["## Compression and theoretical speed-up at the last round", "",
             "Compression ratio = all prunable weights / remaining ones; speed-up = dense multiply-adds / "
             "multiply-adds of the remaining weights (per layer), for one example.", ""]
    macs = _multiply_adds(config)
    comp = []
    for m in _pruning_methods(methods):
        last = frame[frame["method"] == m].sort_values("round").groupby("seed").tail(1)
        speedups = [_speedup(macs, _last_per_layer(out / run)) for run in last["run_dir"]]
        comp.append({"method": m, "round": mean_std(last["round"], 1, 1),
                     "weights remaining %": mean_std(last["weights_remaining"]),
                     "compression ratio": f"{(1 / last['weights_remaining']).mean():.1f}",
                     "theoretical speed-up": f"{np.mean(speedups):.1f}",
                     "test accuracy %": mean_std(last["test_accuracy"]),
                     "training iterations": int(last["train_iterations"].mean()),
                     "seconds": f"{last['seconds'].mean():.1f}"})
    return lines + [markdown.table(pd.DataFrame(comp)), ""]


def _multiply_adds(config: RunConfig) -> dict[str, int]:
    t = config.train
    input_shape, num_classes = data.SHAPES[t.dataset]
    return multiply_adds(build_model(t.model, input_shape, num_classes, t.hidden_sizes, t.seed), input_shape)


def _last_per_layer(run: Path) -> dict[str, float]:
    """Fraction of each layer's weights remaining at the run's last round."""
    rounds = io.read_rounds(run)
    final = rounds.iloc[-1]
    return {c.split(":", 1)[1]: float(final[c]) for c in rounds.columns if c.startswith("remaining:")}


def _speedup(macs: dict[str, int], per_layer: dict[str, float]) -> float:
    return sum(macs.values()) / max(1e-12, sum(macs[n] * per_layer.get(n, 1.0) for n in macs))


def _difference_section(frame: pd.DataFrame) -> Lines:
    lines = ["## Q-planner minus lt, paired by seed", "",
             "Difference in test accuracy (percentage points), 95 % percentile-bootstrap interval over seeds, and "
             "the bootstrap probability that the Q-planner is better. With few seeds the interval is wide: read "
             "it as a statement of uncertainty, not a test.", ""]
    diffs = []
    for r in sorted(frame["round"].unique())[1:]:
        d = paired_difference(frame, "qlearning", "lt", r)
        diffs.append({"round": r, "mean (pp)": f"{d['mean'] * 100:+.2f}",
                      "95 % CI (pp)": markdown.interval(d["low"], d["high"]),
                      "P(improvement)": f"{d['p_improvement']:.2f}", "seeds": d["n"]})
    return lines + [markdown.table(pd.DataFrame(diffs)), ""]


def _against_section(frame: pd.DataFrame) -> Lines:
    return ["## Every method against lt, paired by seed", "",
            "Over the pruned rounds each method shares with lt at the same sparsity (free mode prunes to other "
            "sparsities, so it has no row of numbers): the mean over rounds of the paired difference in test "
            "accuracy, the same per seed, its 95 % bootstrap interval over seeds and the bootstrap probability "
            "that it is above 0 (a paired test of the whole ladder), the worst round, and the rounds where the "
            "method's mean is more than one standard deviation of lt's seeds below lt's mean, beside the number "
            "of such rounds lt itself would show against a second draw of its seeds (and the chance of none). "
            "Read it for every method alike: with a few seeds, a method no different from lt falls that far below"
            " it in some rounds.", "",
            markdown.table(against(frame, "lt")), ""]


def _convergence_section(out: Path, frame: pd.DataFrame) -> Lines:
    q_runs = frame[frame["method"].isin(["qlearning", "qlearning-free"])].drop_duplicates("run_dir")["run_dir"]
    return ["## Q-learning convergence", "",
            "Per run (`qlearning_rounds.csv`): rounds whose greedy plan stayed the same over the last 10 % of "
            "episodes, rounds whose greedy and committed plans were the round's exact optimum, rounds in which "
            "`--commit climb` moved the best played plan, and max |ΔQ| in a round's first and last episode.", "",
            markdown.table(convergence([out / r for r in q_runs]).drop(columns="run")), ""]


def _figures_section(out: Path, frame: pd.DataFrame, table: pd.DataFrame) -> Lines:
    figures = write_figures(out, frame, table)
    return ["## Figures", ""] + [f"![{name}]({paths.FIGURES}/{name}.png)" for name in figures] + [""]
