"""The grid search, the selection on validation, and the comparison against every baseline.

Protocol: the grid's Q-learning cells are scored by validation accuracy alone (mean over the pruned rounds up
to the grid's `search_rounds`, and over the seeds); the chosen configuration then meets `lt`, `global`,
`random`, `lamp` and `erk`, plus the random-reinitialisation control of its tickets and the same
configuration in free mode, all on the same seeds, data, training code and budgets. Test accuracy is read
only for this final comparison.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from joblib import Parallel, delayed
from scipy.stats import bootstrap

from gridsearch.grid import Grid
from gridsearch.runner import run_configs
from gridsearch.summarize import _markdown, _pm, convergence
from mdp_prune.config import QLearningConfig, RunConfig
from mdp_prune.errors import UserError
from mdp_prune.store import io, paths

GRID_CSV = "grid.csv"
COMPARISON_CSV = "comparison.csv"
REPORT = "report.md"
FIGURES = "figures"
BASELINES = ("lt", "global", "random", "lamp", "erk")


def runs_dir(out: Path) -> Path:
    return out / "runs"


def _rounds(run: Path) -> pd.DataFrame:
    return io.read_csv(run / paths.ROUNDS)


def search(grid: Grid, out: Path, overrides: dict[str, Any] | None = None, preset: str | None = None,
           n_jobs: int = 2, backend: str = "loky", scheduler: str | None = None,
           progress: bool = True) -> pd.DataFrame:
    """Run every cell of the grid and write grid.csv (validation figures only)."""
    cells = grid.cells(overrides, preset)
    scored = grid.scored_rounds(cells[0].config)
    results = run_configs([c.config.replace(rounds=scored) for c in cells], runs_dir(out), n_jobs, backend,
                          scheduler, progress, desc=f"grid {grid.name}")
    rows = []
    for cell, result in zip(cells, results, strict=True):
        run = Path(result["run_dir"])
        row = {"cell": cell.index, "seed": cell.seed, **cell.params,
               "run_dir": str(run.relative_to(out)), "status": result["status"], "error": result["error"]}
        rounds = _rounds(run) if result["status"] == "done" else pd.DataFrame()
        if not rounds.empty:
            # A chosen cell extended by `compare` must score as it did when it was chosen.
            rounds = rounds[rounds["round"] <= scored]
            pruned = rounds[rounds["round"] > 0]
            row.update(val_accuracy=float((pruned if len(pruned) else rounds)["val_accuracy"].mean()),
                       final_val_accuracy=float(rounds["val_accuracy"].iloc[-1]),
                       weights_remaining=float(rounds["weights_remaining"].iloc[-1]),
                       rounds_done=int(rounds["round"].iloc[-1]))
        rows.append(row)
    table = pd.DataFrame(rows)
    io.write_csv(out / GRID_CSV, table)
    return table


def select(table: pd.DataFrame, params: list[str]) -> dict[str, Any]:
    """The combination with the best mean validation accuracy over seeds (only combinations whose every
    seed finished); ties go to the first in grid order. Test accuracy plays no part."""
    done = table[table["status"] == "done"]
    complete = done.groupby(params, sort=False).filter(
        lambda g: len(g) == int((table[params] == g[params].iloc[0]).all(axis=1).sum())) if params else done
    if complete.empty:
        raise UserError("no grid combination finished on every seed; see the error column of grid.csv")
    if not params:
        return {}
    scores = complete.groupby(params, sort=False)["val_accuracy"].mean()
    best = scores.idxmax()
    best = best if isinstance(best, tuple) else (best,)
    return {k: (v.item() if hasattr(v, "item") else v) for k, v in zip(params, best, strict=True)}


def _lt_remaining(config: RunConfig) -> float:
    """Fraction of weights the lt ladder keeps after `config.rounds` rounds (for the free-mode target)."""
    from mdp_prune.engine.models import layer_kinds, prunable_weights
    from mdp_prune.experiments.imp import Setup

    model = Setup(config).model()
    p = config.prune
    rate = {"conv": p.prune_conv, "fc": p.prune_fc, "output": p.prune_output}
    kept = {n: w.numel() for n, w in prunable_weights(model).items()}
    total = sum(kept.values())
    kinds = layer_kinds(model)
    for _ in range(config.rounds):
        kept = {n: k - min(k, int(round(rate[kinds[n]] * k))) for n, k in kept.items()}
    return sum(kept.values()) / total


def compare(grid: Grid, out: Path, overrides: dict[str, Any] | None = None, preset: str | None = None,
            n_jobs: int = 2, backend: str = "loky", scheduler: str | None = None, progress: bool = True,
            baselines: tuple[str, ...] = BASELINES) -> Path:
    """Grid search, selection, all methods on the grid's seeds, report. Returns the report's path."""
    table = search(grid, out, overrides, preset, n_jobs, backend, scheduler, progress)
    params = list(grid.params)
    best = select(table, params)
    cells = [c for c in grid.cells(overrides, preset) if all(c.params.get(k) == v for k, v in best.items())]
    chosen = {c.seed: c.config for c in cells}
    target = _lt_remaining(next(iter(chosen.values())))

    methods: dict[str, dict[int, RunConfig]] = {"qlearning": chosen}
    methods["qlearning-free"] = {s: c.replace(**{"qlearning.budget": "free", "prune.target_remaining": target})
                                 for s, c in chosen.items()}
    for planner in baselines:
        # Baselines keep the training and pruning settings and drop the Q-learning ones (not theirs to hash).
        methods[planner] = {s: RunConfig(train=c.train, prune=c.prune, qlearning=QLearningConfig(), rounds=c.rounds,
                                         data_dir=c.data_dir, device=c.device).replace(**{"prune.planner": planner})
                            for s, c in chosen.items()}
    flat = [(m, s, c) for m, by_seed in methods.items() for s, c in by_seed.items()]
    results = run_configs([c for _, _, c in flat], runs_dir(out), n_jobs, backend, scheduler, progress,
                          desc="comparison")
    failed = [f"{m} seed {s}: {r['error']}" for (m, s, _), r in zip(flat, results, strict=True)
              if r["status"] != "done"]
    if failed:
        raise UserError("comparison runs failed: " + "; ".join(failed))

    from mdp_prune.experiments.controls import run_control

    q_runs = [paths.run_dir(runs_dir(out), c) for c in chosen.values()]
    Parallel(n_jobs=n_jobs)(delayed(run_control)(run, "reinit", None, False) for run in q_runs)

    frame = comparison_frame(out, {m: {s: paths.run_dir(runs_dir(out), c) for s, c in by_seed.items()}
                                   for m, by_seed in methods.items()})
    io.write_csv(out / COMPARISON_CSV, frame)
    return write_report(out, frame, table, best, grid, next(iter(chosen.values())), target)


def comparison_frame(out: Path, runs: dict[str, dict[int, Path]]) -> pd.DataFrame:
    """Long table of every method's rounds (and the reinit control of the chosen Q-learning tickets)."""
    columns = ["round", "weights_remaining", "test_accuracy", "val_accuracy", "early_stop_iteration",
               "train_iterations", "seconds"]
    parts = []
    for method, by_seed in runs.items():
        for seed, run in by_seed.items():
            rows = _rounds(run)[columns].assign(method=method, seed=seed, run_dir=str(run.relative_to(out)))
            parts.append(rows)
            if method == "qlearning":
                control = io.read_csv(paths.control_file(run, "reinit"))
                if not control.empty:
                    dense = rows[rows["round"] == 0]
                    parts.append(pd.concat([dense, control[columns].assign(
                        method="reinit", seed=seed, run_dir=str(run.relative_to(out)))]).assign(method="reinit"))
    frame = pd.concat(parts, ignore_index=True)
    return frame[["method", "seed", *columns, "run_dir"]]


def _speedup(config: RunConfig, per_layer: dict[str, float]) -> float:
    from mdp_prune.engine.models import multiply_adds
    from mdp_prune.experiments.imp import Setup

    setup = Setup(config)
    macs = multiply_adds(setup.model(), setup.splits.input_shape)
    return sum(macs.values()) / max(1e-12, sum(macs[n] * per_layer.get(n, 1.0) for n in macs))


def paired_difference(frame: pd.DataFrame, a: str, b: str, round_: int, seed: int = 0) -> dict[str, float]:
    """Test accuracy of method a minus b at one round, paired by seed: mean, 95 % bootstrap CI, P(a > b)."""
    x = frame[(frame["method"] == a) & (frame["round"] == round_)].set_index("seed")["test_accuracy"]
    y = frame[(frame["method"] == b) & (frame["round"] == round_)].set_index("seed")["test_accuracy"]
    diff = (x - y).dropna().to_numpy()
    if len(diff) < 2 or np.all(diff == diff[0]):
        return {"mean": float(diff.mean()) if len(diff) else math.nan, "low": math.nan, "high": math.nan,
                "p_improvement": float(np.mean(diff > 0)) if len(diff) else math.nan, "n": len(diff)}
    rng = np.random.default_rng(seed)
    ci = bootstrap((diff,), np.mean, confidence_level=0.95, n_resamples=4000, method="percentile", random_state=rng)
    means = rng.choice(diff, size=(4000, len(diff))).mean(axis=1)
    return {"mean": float(diff.mean()), "low": float(ci.confidence_interval.low),
            "high": float(ci.confidence_interval.high), "p_improvement": float(np.mean(means > 0)), "n": len(diff)}


def seed_cell(values: pd.Series, n_seeds: int) -> str:
    """mean ± std, marked with the number of seeds when some runs ended before this round."""
    return _pm(values) + (f" (n={len(values)})" if 0 < len(values) < n_seeds else "")


def write_report(out: Path, frame: pd.DataFrame, table: pd.DataFrame, best: dict[str, Any], grid: Grid,
                 config: RunConfig, target: float) -> Path:
    t = config.train
    methods = list(dict.fromkeys(frame["method"]))
    seeds = sorted(frame["seed"].unique())
    lines = [f"# Comparison: {t.dataset}, {t.model}, {config.rounds} rounds, seeds {', '.join(map(str, seeds))}", "",
             f"Training: {t.train_iterations} iterations per round, batch {t.batch_size}, {t.optimizer} lr {t.lr}, "
             f"rewind to iteration {t.rewind_iteration}. Every method shares the training code, data and seeds.", ""]

    n_failed = int((table["status"] != "done").sum())
    scored = grid.scored_rounds(config)
    lines += ["## Grid search (validation only)", "",
              f"Grid `{grid.name}`: {len(table)} cells ({len(grid.combinations())} combinations × {len(grid.seeds)} "
              f"seeds), {n_failed} failed. Score: validation accuracy averaged over the pruned rounds"
              f"{f' 1–{scored}' if scored < config.rounds else ''} and the seeds.",
              "", f"Chosen: {', '.join(f'`{k}={v}`' for k, v in best.items()) or 'the only combination'}.", ""]

    dense = frame[frame["round"] == 0]
    lines += ["## Test accuracy (%), mean ± std over seeds", "",
              f"Dense network (round 0): {_pm(dense.drop_duplicates('seed')['test_accuracy'])} %. "
              "`qlearning` is the chosen configuration in budget mode (each round removes the lt baseline's share "
              "of weights); `qlearning-free` lets its reward set the pace and stops at the target; `reinit` is the "
              "chosen tickets' masks with fresh random weights. (n=k): only k seeds ran that round (a run stops "
              "at the target or on a plan that prunes nothing).", ""]
    rounds = sorted(frame["round"].unique())
    by_round = []
    for r in rounds:
        row: dict[str, Any] = {"round": r}
        lt = frame[(frame["method"] == "lt") & (frame["round"] == r)]["weights_remaining"]
        row["weights remaining (lt) %"] = f"{lt.mean() * 100:.1f}" if len(lt) else "–"
        for m in methods:
            row[m] = seed_cell(frame[(frame["method"] == m) & (frame["round"] == r)]["test_accuracy"], len(seeds))
        by_round.append(row)
    lines += [_markdown(pd.DataFrame(by_round)), ""]
    remaining = frame.groupby(["method", "round"])["weights_remaining"].mean().unstack("method")[methods] * 100
    lines += ["Weights remaining (%) by round, mean over seeds:", "",
              _markdown(remaining.round(2).astype(object).reset_index().fillna("–")), ""]

    lines += ["## Reaching the target", "",
              f"Target: {target * 100:.2f} % of weights remaining (the lt ladder after {config.rounds} rounds). "
              "Rounds, cumulative training iterations and seconds until a method first reaches it, and the test "
              "accuracy there (mean ± std over seeds; seeds that never reach it are counted in the last column).", ""]
    reach = []
    for m in methods:
        if m == "reinit":  # a control retrains single tickets: it has no pruning trajectory of its own
            continue
        hits = []
        for _, g in frame[frame["method"] == m].groupby("seed"):
            hit = g[g["weights_remaining"] <= target + 1e-9]
            if len(hit):
                hits.append(hit.iloc[0])
        sub = pd.DataFrame(hits)
        reach.append({"method": m, "rounds": _pm(sub["round"], 1, 1) if len(sub) else "–",
                      "training iterations": _pm(sub["train_iterations"], 1, 0) if len(sub) else "–",
                      "seconds": _pm(sub["seconds"], 1, 1) if len(sub) else "–",
                      "test accuracy %": _pm(sub["test_accuracy"]) if len(sub) else "–",
                      "seeds not reaching": len(seeds) - len(sub)})
    lines += [_markdown(pd.DataFrame(reach)), ""]

    lines += ["## Compression and theoretical speed-up at the last round", "",
              "Compression ratio = all prunable weights / remaining ones; speed-up = dense multiply-adds / "
              "multiply-adds of the remaining weights (per layer), for one example.", ""]
    comp = []
    for m in methods:
        if m == "reinit":
            continue
        last = frame[frame["method"] == m].sort_values("round").groupby("seed").tail(1)
        speedups = []
        for _, row in last.iterrows():
            r = _rounds(out / row["run_dir"])
            final = r.iloc[-1]
            per_layer = {c.split(":", 1)[1]: float(final[c]) for c in r.columns if c.startswith("remaining:")}
            speedups.append(_speedup(config, per_layer))
        comp.append({"method": m, "round": _pm(last["round"], 1, 1),
                     "weights remaining %": _pm(last["weights_remaining"]),
                     "compression ratio": f"{(1 / last['weights_remaining']).mean():.1f}",
                     "theoretical speed-up": f"{np.mean(speedups):.1f}",
                     "test accuracy %": _pm(last["test_accuracy"]),
                     "training iterations": int(last["train_iterations"].mean()),
                     "seconds": f"{last['seconds'].mean():.1f}"})
    lines += [_markdown(pd.DataFrame(comp)), ""]

    lines += ["## Q-planner minus lt, paired by seed", "",
              "Difference in test accuracy (percentage points), 95 % percentile-bootstrap interval over seeds, and "
              "the bootstrap probability that the Q-planner is better. With few seeds the interval is wide: read "
              "it as a statement of uncertainty, not a test.", ""]
    diffs = []
    for r in rounds[1:]:
        d = paired_difference(frame, "qlearning", "lt", r)
        ci = "–" if math.isnan(d["low"]) else f"[{d['low'] * 100:+.2f}, {d['high'] * 100:+.2f}]"
        diffs.append({"round": r, "mean (pp)": f"{d['mean'] * 100:+.2f}", "95 % CI (pp)": ci,
                      "P(improvement)": f"{d['p_improvement']:.2f}", "seeds": d["n"]})
    lines += [_markdown(pd.DataFrame(diffs)), ""]

    q_runs = frame[frame["method"].isin(["qlearning", "qlearning-free"])].drop_duplicates("run_dir")["run_dir"]
    lines += ["## Q-learning convergence", "",
              "Per run (`qlearning_rounds.csv`): rounds whose greedy plan stayed the same over the last 10 % of "
              "episodes, and max |ΔQ| in a round's first and last episode.", "",
              _markdown(convergence([out / r for r in q_runs]).drop(columns="run")), ""]

    figures = write_figures(out, frame, table)
    lines += ["## Figures", ""] + [f"![{name}]({FIGURES}/{name}.png)" for name in figures] + [""]
    report = out / REPORT
    io.write_bytes(report, "\n".join(lines).encode())
    return report


def write_figures(out: Path, frame: pd.DataFrame, table: pd.DataFrame) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from mdp_prune.viz import plots

    folder = out / FIGURES
    folder.mkdir(parents=True, exist_ok=True)
    dense = float(frame[frame["round"] == 0].drop_duplicates("seed")["test_accuracy"].mean())
    figures = {"accuracy_vs_remaining": plots.accuracy_vs_remaining(frame, dense_accuracy=dense),
               "early_stop_vs_remaining": plots.early_stop_vs_remaining(frame)}
    if len(table) > 1:
        figures["grid_heatmaps"] = plots.grid_heatmaps(table)
    for name, fig in figures.items():
        fig.savefig(folder / f"{name}.png", dpi=120, bbox_inches="tight")
        plt.close(fig)
    return list(figures)
